"""The user documentation says what the code does: its command lines name real options, and the README's Python API
example runs as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code_in(text: str) -> list[str]:
    """The code of a Markdown text: fenced blocks and inline spans, which a wrapped paragraph may break over two lines
    (a `|` inside a span is `\\|` in a table)."""
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    spans = re.findall(r"`([^`\n]+(?:\n[^`\n]+)?)`", prose)
    return fenced + [span.replace("\n", " ").replace("\\|", "|") for span in spans]


def command_lines(text: str) -> list[tuple[str, list[str]]]:
    """(command, its --options) for every `swin-deploy COMMAND ...` in the code of `text`; a fenced block's
    continuation lines (YAML's folded `run:`) belong to the command above them."""
    found = []
    for code in code_in(text):
        joined = re.sub(r"\n\s+(?=--)", " ", code)
        for m in re.finditer(r"swin-deploy ([a-z][a-z-]*)([^\n]*)", joined):
            found.append((m[1], re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m[2])))
    return found


def test_every_documented_command_line_names_options_the_command_has():
    import typer.main

    import cli

    group = typer.main.get_command(cli.app)
    options = {name: {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
               for name, cmd in group.commands.items()}
    seen, wrong = 0, []
    for doc in DOCS:
        for command, flags in command_lines(doc.read_text()):
            if command not in options:
                wrong.append(f"{doc.name}: swin-deploy {command}: no such command")
                continue
            seen += 1
            wrong += [f"{doc.name}: swin-deploy {command} {flag}: no such option" for flag in flags
                      if flag not in options[command]]
    assert seen >= 30 and not wrong, wrong  # the floor: the docs' command lines were found at all


def test_the_readmes_command_table_lists_every_command():
    import typer.main

    import cli

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Commands"):readme.index("\n## ", readme.index("## Commands") + 1)]
    listed = {m[1] for m in re.finditer(r"^\| `swin-deploy ([a-z][a-z-]*)", table, flags=re.M)}
    assert listed == set(typer.main.get_command(cli.app).commands), listed


def test_the_checker_catches_a_planted_option():
    planted = ("Run `swin-deploy verify m.onnx --no-such-flag`, then\n```bash\nswin-deploy bench a.onnx\n  --max-rss 1G\n```"
               " and `swin-deploy predict m.onnx\n--no-such-option` wrapped")
    assert command_lines(planted) == [("bench", ["--max-rss"]), ("verify", ["--no-such-flag"]),
                                      ("predict", ["--no-such-option"])]


def test_the_readmes_python_api_example_runs(demo, tmp_path, monkeypatch, capsys):
    """The README's example, with its demo-data paths pointing at the demo images: it exports, quantizes to INT8 and
    passes verify (its last line prints `True []`)."""
    folder, _ = demo
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, flags=re.S)[1]
    (tmp_path / "out" / "demo").mkdir(parents=True)
    (tmp_path / "out" / "demo" / "data").symlink_to(folder / "data")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "example.py").write_text(example)
    runpy.run_path(str(tmp_path / "example.py"), run_name="__main__")
    assert capsys.readouterr().out.strip() == "True []"
    assert (tmp_path / "m.onnx").is_file()


def test_the_readmes_ci_workflow_installs_the_tool_into_a_python_of_its_own():
    """The README's GitHub Actions job as a runner reads it: valid YAML; Python set up before the first pip (Ubuntu
    24.04's own Python is externally managed: pip refuses to install into it); swin-deploy installed from the path
    its checkout step names, before any step runs it."""
    import yaml

    text = (ROOT / "README.md").read_text()
    steps = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text.split("## In CI", 1)[1], flags=re.S)[1])["jobs"]["gate"]["steps"]
    runs = [i for i, s in enumerate(steps) if "run" in s]
    setup = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup < runs[0] and "pip install" in steps[runs[0]]["run"]
    tool = next(s["with"]["path"] for s in steps if "swin-deploy" in str(s.get("with", {}).get("repository", "")))
    install = next(i for i in runs if f"pip install ./{tool}" in steps[i]["run"])
    assert install < min(i for i in runs if steps[i]["run"].startswith("swin-deploy "))
