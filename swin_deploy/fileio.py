"""Atomic file output, content hashes, JUnit XML."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import UserError, out_of_space
from .parsing import one_or_many


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> str:
    """What identifies content kept in one file or several (a model and the weights beside it, shards): the one file's
    sha256, or the sha256 of the files' sha256s in the order given."""
    paths = list(paths)
    if len(paths) == 1:
        return sha256_file(paths[0])
    return hashlib.sha256("".join(sha256_file(p) for p in paths).encode()).hexdigest()


def path_list(paths: Iterable[str | Path] | str | Path) -> list[Path]:
    """One path or several as a list of Paths, for library callers that pass one alone (a str would otherwise be
    taken apart into one-letter paths)."""
    return [Path(p) for p in one_or_many(paths)]


def check_writable_dir(path: str | Path, option: str = "output") -> Path:
    """The folder an output will go to, or a UserError saying why it can't (naming the `option` that chose it)."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        _refuse_file_in_the_way(folder, option)
        raise UserError(f"output folder {folder} does not exist: create it or choose another `{option}` path")
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder {folder} is not writable: choose another `{option}` path")
    return folder


def check_outputs(inputs: Iterable[str | Path] = (), **paths: str | Path | None) -> None:
    """Check each output path given (None: not asked for; "-": stdout) before the work that fills it, so a mistyped
    folder costs a second, not a whole run, and a slip that names one of the command's `inputs` does not replace
    it. Two outputs naming one file (or both stdout) are refused: the second would replace the first."""
    taken: dict = {}
    for option, path in paths.items():
        if path is None:
            continue
        key = "-" if str(path) == "-" else Path(path).resolve()
        if key in taken:
            raise UserError(f"`{taken[key]}` and `{option}` both write {'stdout' if key == '-' else path}: give each "
                            "its own path")
        taken[key] = option
        if key == "-":
            continue
        if Path(path).is_dir():
            raise UserError(f"{path} is a folder: `{option}` takes a file path")
        for given in inputs:
            if Path(given).is_file() and Path(path).resolve() == Path(given).resolve():
                raise UserError(f"{path} is this command's input: writing `{option}` there would replace it; choose "
                                f"another `{option}` path")
        check_writable_dir(path, option)


def _choose_another(option: str | None) -> str:
    return f"choose another {f'`{option}`' if option else 'output'} path"


def _cannot_write(folder: Path, error: OSError, option: str | None = None) -> UserError:
    # os.access says yes to root everywhere, and some places refuse new files whatever the mode bits say (/proc, a
    # read-only mount): the failed create is the one sure answer
    return UserError(f"cannot write in {folder} ({error.strerror or error}): {_choose_another(option)}")


def _refuse_file_in_the_way(folder: Path, option: str | None) -> None:
    """A UserError where `folder`, or the nearest of its parents that exists, is a file: no folder can be made there."""
    nearest = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if nearest is not None and not nearest.is_dir():
        raise UserError(f"{nearest} is a file, not a folder: {_choose_another(option)}")


def make_folder(path: str | Path, option: str | None = None) -> Path:
    """`path` as a folder new files can be written in, created with its parents if missing, or a UserError saying
    why it can't be (naming the `option` that chose it, if one did)."""
    path = Path(path)
    _refuse_file_in_the_way(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".swin-deploy-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _cannot_write(path, e, option) from e
    return path


def staging_folder(path: str | Path) -> Path:
    """A new hidden temporary folder beside the output `path`, for outputs made of several files."""
    path = Path(path)
    folder = check_writable_dir(path)
    try:
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=folder))
    except OSError as e:
        raise _cannot_write(folder, e) from e


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the destination folder; rename it to `path` only on success.

    A failed or interrupted run (exception, Ctrl-C, SIGTERM through the CLI) leaves nothing at `path` and no temp
    file; a full disk is a UserError.
    """
    path = Path(path)
    folder = check_writable_dir(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=folder)
    except OSError as e:
        raise _cannot_write(folder, e) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the artifact the permissions a plain open() would (0666 less umask)
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as e:
        _raise_out_of_space(e, path)
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def _raise_out_of_space(error: OSError, path: Path) -> None:
    """A full disk while an output is written is the user's to fix (free space, another disk), not a crash."""
    full = out_of_space(error, str(path))
    if full is not None:
        raise full from error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path` (an existing `path` is moved aside
    first and removed only after). A failed or interrupted run leaves `path` as it was and no temp folder."""
    path = Path(path)
    staging = staging_folder(path)
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp creates 0700; as a plain mkdir would
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        try:
            os.replace(staging, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        _raise_out_of_space(e, path)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def junit_class(name: str, described: dict, keys: tuple[str, ...]) -> str:
    """A JUnit class naming an artifact and what ran it (`keys` of its runner's description, those it has):
    `model.int8.onnx [openvino, bf16]`. CI dashboards key results on class and name, so runs of two artifacts of one
    model, or of one artifact on two runtimes, stay separate tests when their reports are merged."""
    ran = [described.get(k) for k in keys]
    return f"{name} [{', '.join(str(r) for r in ran if r)}]"


def junit_xml(suite_name: str, cases: list[tuple[str, str, str | None]], seconds: float) -> str:
    """A JUnit testsuite of (classname, name, failure message or None) cases, as CI systems read it."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name=suite_name, tests=str(len(cases)),
                       failures=str(sum(f is not None for *_, f in cases)), errors="0", time=f"{seconds:.3f}")
    for classname, name, failure in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name)
        if failure is not None:
            ET.SubElement(case, "failure", message=failure)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
