"""Every `trt.` name swin-deploy uses exists in the real TensorRT Python bindings, checked without TensorRT or a GPU.

The name lists in tests/tensorrt_api/ are the identifiers compiled into `tensorrt.so` of NVIDIA's
`tensorrt-cu12-bindings` wheels from the package index (pybind11 registers every class, enum value, method and
property under its own NUL-terminated string); `update` rebuilds them. `check` scans Python files for attribute
chains on `trt` (and on any `import tensorrt as NAME` alias) and, with `--defined`, the names a stand-in module
defines, and reports each name that is in no list. It is a spelling and existence check, not a type check.

    python scripts/tensorrt_names.py check swin_deploy/ calibration/ cli.py --defined tests/stand_in_tensorrt.py
    python scripts/tensorrt_names.py update 10.16.1.11 11.4.0.106      # downloads the two wheels (about 1.3 MB each)

tests/test_tensorrt_names.py runs `check` in the test suite. Exit status: 0 clean, 1 a name is missing everywhere.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

LISTS = Path(__file__).resolve().parent.parent / "tests" / "tensorrt_api"
IDENT = re.compile(rb"^[A-Za-z_][A-Za-z0-9_]{1,80}$")


def extract(version: str) -> list[str]:
    """The identifiers in tensorrt.so of tensorrt-cu12-bindings==`version` (downloaded from the package index)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "-d", tmp,
               f"tensorrt-cu12-bindings=={version}"]
        subprocess.run(cmd, check=True, capture_output=True)
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            blob = zf.read(next(n for n in zf.namelist() if n.endswith("tensorrt.so")))
    words = {chunk.decode() for chunk in blob.split(b"\0") if IDENT.match(chunk) and not chunk.startswith(b"_Z")}
    return sorted(words)


def load_lists() -> dict[str, list[str]]:
    return {p.stem: p.read_text().split() for p in sorted(LISTS.glob("*.txt"))}


def known(name: str, words: list[str]) -> bool:
    """In the list, or the tail of a listed string (a linker may store "Logger" inside "ILogger")."""
    return any(w == name or w.endswith(name) for w in words)


def _chain(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def used_names(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every attribute chain on the tensorrt module in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = {"trt"} | {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                         if a.name == "tensorrt"}
    found, seen = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and not isinstance(getattr(node, "parent", None), ast.Attribute):
            chain = _chain(node)
            if chain and chain[0] in aliases and len(chain) > 1 and ".".join(chain) not in seen:
                seen.add(".".join(chain))
                found.append((node.lineno, ".".join(chain[1:])))
    return found


def defined_names(path: Path) -> list[tuple[int, str]]:
    """Public classes, functions, methods and class attributes a stand-in module defines."""
    out = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and not node.name.startswith("_"):
            out.append((node.lineno, node.name))
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.ClassDef) and not item.name.startswith("_"):
                    out.append((item.lineno, item.name))
                elif isinstance(item, ast.Assign | ast.AnnAssign):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    out += [(item.lineno, t.id) for t in targets if isinstance(t, ast.Name) and not t.id.startswith("_")]
    return out


def check(paths: list[Path], defined: list[Path] = (), lists: dict[str, list[str]] | None = None) -> list[str]:
    """One line per name found in no version's list ("file:line: trt.NAME ..."); empty when all exist."""
    lists = lists or load_lists()
    if not lists:
        raise SystemExit(f"no name lists in {LISTS}: run `python scripts/tensorrt_names.py update VERSION...`")
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    problems = []
    for f in files:
        if "tensorrt" not in f.read_text(errors="ignore"):
            continue
        for line, name in used_names(f):
            if not any(all(known(part, words) for part in name.split(".")) for words in lists.values()):
                problems.append(f"{f}:{line}: trt.{name} is in none of TensorRT {', '.join(lists)}")
    for f in defined:
        for line, name in defined_names(f):
            if not any(known(name, words) for words in lists.values()):
                problems.append(f"{f}:{line}: defines {name}, which is in none of TensorRT {', '.join(lists)}")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("paths", nargs="+", type=Path)
    c.add_argument("--defined", nargs="*", type=Path, default=[])
    u = sub.add_parser("update")
    u.add_argument("versions", nargs="+")
    args = ap.parse_args()
    if args.command == "update":
        LISTS.mkdir(parents=True, exist_ok=True)
        for version in args.versions:
            words = extract(version)
            (LISTS / f"{version}.txt").write_text("\n".join(words) + "\n")
            print(f"TensorRT {version}: {len(words)} identifiers -> {LISTS / f'{version}.txt'}")
        return 0
    problems = check(args.paths, args.defined)
    print("\n".join(problems) or f"every trt. name exists in TensorRT {', '.join(load_lists())}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
