"""A swin-deploy ONNX (any precision) -> OpenVINO IR (`model.xml` + `model.bin`), metadata carried in the IR's rt_info.

The IR's weights are stored in float16 (OpenVINO's `compress_to_fp16`; the CPU decompresses them to its execution
precision) only where that passes the artifact's own gate against the ONNX it came from; otherwise they stay float32
and the result says so. INT8 Q/DQ weights are int8 either way.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import defaults
from ..artifact import IR_RT_INFO, artifact_info, check_artifact_name, ir_weights
from ..backends.openvino_runner import OpenVinoOptions, OpenVinoRunner, import_openvino, read_model
from ..compare import Comparison, gate
from ..enums import ExecutionPrecision
from ..errors import UserError
from ..fileio import staging_folder
from ..tolerances import thresholds_for


@dataclass
class IrResult:
    path: Path  # the .xml; the .bin is beside it
    weights: str  # "float16" or "float32" (compressed only where the gate allowed it)
    max_rel_delta: float  # the written IR against the ONNX, both run by OpenVINO in f32, worst output
    note: str | None = None


def default_ir_path(onnx_path: Path) -> Path:
    return Path(onnx_path).with_suffix(".xml")


def _read_onnx(onnx_path: Path):
    """The ONNX as OpenVINO's runtime reads it, which is what `--backend openvino` runs for the ONNX itself, so the IR
    is that same graph and the CPU plugin applies the same passes to both at compile time. Not `convert_model`: its
    extra passes (OpenVINO 2026.4) rewrite our INT8 graphs so that their outputs move by 0.01-0.2 x max|output| on the
    test models against OpenVINO running the ONNX, and fail on a FakeQuantize after a transpose whose constants
    mix float32 and float16 (`TransposeFQ`: the INT8 of a `--channels-last` export)."""
    return read_model(onnx_path)


def _save(ov, model, xml: Path, compressed: bool, folder: Path) -> None:
    try:
        ov.save_model(model, str(xml), compress_to_fp16=compressed)
    except RuntimeError as e:
        # OpenVINO reports a failed write as a bare iostream error, without the OS's reason: the free space is the
        # usual one, so say how much there is
        free = shutil.disk_usage(folder).free
        raise UserError(f"OpenVINO could not write the IR in {folder} ({e}; {free / 2**20:.0f} MiB "
                        "free there): free some space, or write to another disk") from e


def to_openvino(onnx_path: Path, out: Path | None = None, compress: bool = True, variant: str | None = None) -> IrResult:
    """Convert `onnx_path` to an IR at `out` (default: beside it, .xml), checked against the ONNX on seeded inputs.
    `variant`: what model an ONNX without swin-deploy metadata is (the IR then carries that variant's metadata)."""
    ov = import_openvino()
    onnx_path = Path(onnx_path)
    if onnx_path.suffix.lower() != ".onnx":
        raise UserError(f"{onnx_path.name} is not an ONNX: an IR is made from a swin-deploy .onnx (an OpenVINO IR "
                        "needs no converting; verify, bench and predict run it as it is)")
    info = artifact_info(onnx_path, variant)
    out = Path(out or default_ir_path(onnx_path))
    check_artifact_name(out, "ir")
    staging = staging_folder(out)
    try:
        model = _read_onnx(onnx_path)
        for key, value in info.to_props().items():
            model.set_rt_info(value, [IR_RT_INFO, key.removeprefix("swin_deploy.")])
        x = info.example_input(np.random.default_rng(defaults.SEED), info.fixed_batch or 2)
        options = OpenVinoOptions(inference_precision=ExecutionPrecision.F32)
        # against the ONNX on the same runtime, so that only the conversion is measured; how OpenVINO runs it against
        # PyTorch is verify's to gate (an INT8 graph's rounding differs between runtimes)
        with OpenVinoRunner(onnx_path, options=options, precision=info.precision) as runner:
            expected = runner.infer(x)
        limit = thresholds_for(info.precision)
        delta, weights, note = 0.0, "float32", None
        for compressed in ([True, False] if compress else [False]):
            # OpenVINO writes only a lowercase .xml (it reads model.XML): staged so, renamed to `out` below
            xml = staging / ("fp16" if compressed else "fp32") / f"{out.stem}.xml"
            xml.parent.mkdir()
            _save(ov, model, xml, compressed, out.parent)
            with OpenVinoRunner(xml, options=options, precision=info.precision) as runner:
                got = runner.infer(x)
            comparison = Comparison()
            comparison.update(expected, got)
            metrics = comparison.metrics()
            delta = max(v for k, v in metrics.items() if k.endswith("max_rel_delta"))
            logit_gates = [c for c in gate(metrics, limit) if "top" not in c.metric]
            if all(c.passed for c in logit_gates):
                weights = "float16" if compressed else "float32"
                break
            if compressed:
                note = f"float16 weights moved the outputs by {delta:.2g} x max|output|, past the {info.precision} gate: " \
                       "kept float32"
        else:
            raise RuntimeError(f"the IR differs from the ONNX by {delta:.2g} x max|output| even with float32 weights")
        chosen = staging / ("fp16" if weights == "float16" else "fp32") / f"{out.stem}.xml"
        os.replace(ir_weights(chosen), ir_weights(out))  # the .bin first: a reader starts from the .xml
        os.replace(chosen, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return IrResult(out, weights, delta, note)
