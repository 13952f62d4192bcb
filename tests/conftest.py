"""Shared fixtures: an in-process CLI runner and small exported models (seeded random weights)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DEMO = ("swin_digits", "swinv2_digits")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `swin-deploy ARGS...` in-process through the real entry point; returns exit code and output."""
    import cli as cli_module

    def run(*args: object) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["swin-deploy", *map(str, args)])
        code = 0
        try:
            cli_module.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> dict[str, Path]:
    """swin_test and swinv2_test exported with default options (random weights, seed 0)."""
    from swin_deploy.export import ExportOptions, export_onnx
    from swin_deploy.models import Weights, build_model, get_config

    folder = tmp_path_factory.mktemp("tiny")
    paths = {}
    for name in ("swin_test", "swinv2_test"):
        model, sha = build_model(get_config(name), Weights("random"))
        paths[name] = export_onnx(model, sha, folder / f"{name}.onnx", ExportOptions()).path
    return paths


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """Demo data on disk and both demo models exported (bundled weights)."""
    from swin_deploy.demo import write_digits
    from swin_deploy.export import ExportOptions, export_onnx
    from swin_deploy.models import Weights, build_model, get_config

    folder = tmp_path_factory.mktemp("demo")
    write_digits(folder / "data")
    paths = {}
    for name in DEMO:
        model, sha = build_model(get_config(name), Weights())
        paths[name] = export_onnx(model, sha, folder / f"{name}.onnx", ExportOptions(max_batch=32)).path
    return folder, paths
