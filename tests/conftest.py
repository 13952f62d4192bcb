"""Shared fixtures: an in-process CLI runner and small exported models (seeded random weights)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DEMO = ("swin_digits", "swinv2_digits")


def no_vnni() -> bool:
    """This x86 CPU adds int8 products in saturating int16 (no VNNI or AMX), where docs/cpu.md ships INT8 with 7-bit
    weights: OpenVINO's int8 matmuls overflow on 8-bit ones there and fail the INT8 gates (measured on AMD Zen 3)."""
    from swin_deploy import machine

    return machine.exact_int8_dot_products() is False


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
        capsys.readouterr()  # only this command's output, not what the test printed before it
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


def export_small(folder: Path, name: str, **options) -> Path:
    """`name` (random weights, seed 0) exported with ExportOptions(**options) into `folder`."""
    from swin_deploy.export import ExportOptions, export_onnx
    from swin_deploy.models import Weights, build_model, get_config

    model, sha = build_model(get_config(name), Weights("random"))
    suffix = "-".join(f"{k}{v if not isinstance(v, bool) else ''}" for k, v in options.items() if v) or "float"
    return export_onnx(model, sha, folder / f"{name}-{suffix}.onnx".replace(" ", ""), ExportOptions(**options)).path


@pytest.fixture(scope="session")
def artifacts(demo, tmp_path_factory) -> dict[str, Path]:
    """Every artifact kind swin-deploy writes, small: FP32, FP16, INT8 (each method for TensorRT, and the
    onnxruntime target; 7-bit weights on a CPU without VNNI), dynamic-size, features, static batch, opset 13 and the
    newest, uint8 NHWC pixels."""
    from calibration import Int8Options, QuantizeOptions, quantize
    from swin_deploy.export.onnx_export import max_opset

    folder, paths = demo
    tmp = tmp_path_factory.mktemp("kinds")
    fp32 = paths["swin_digits"]
    kinds = {"fp32": fp32}
    calib = dict(calib_data=folder / "data" / "calib", calib_images=64)
    cpu = dict(reduce_range=no_vnni())  # the INT8 the CPU runtimes here are meant to run (docs/cpu.md)
    for label, opts in {"fp16": QuantizeOptions("fp16"),
                        "int8": QuantizeOptions("int8", **calib, int8=Int8Options(**cpu)),
                        "int8_entropy": QuantizeOptions("int8", **calib, int8=Int8Options(method="entropy", **cpu)),
                        "int8_percentile": QuantizeOptions("int8", **calib,
                                                           int8=Int8Options(method="percentile", **cpu)),
                        "int8_ort": QuantizeOptions("int8", **calib,
                                                    int8=Int8Options(target="onnxruntime", **cpu))}.items():
        kinds[label] = quantize(fp32, tmp / f"{label}.onnx", opts).path
    kinds["dynamic"] = export_small(tmp, "swin_test", dynamic_size=True, min_size=(64, 64), max_size=(128, 128))
    kinds["features"] = export_small(tmp, "swinv2_test", features=True)
    kinds["static_batch"] = export_small(tmp, "swinv2_test", static_batch=True, max_batch=4)
    kinds["opset13"] = export_small(tmp, "swin_test", opset=13)
    kinds["opset_newest"] = export_small(tmp, "swinv2_test", opset=max_opset())
    kinds["uint8"] = export_small(tmp, "swin_test", input_format="uint8", channels_last=True)
    return kinds
