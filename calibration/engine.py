"""The build-engine chain: an fp32 ONNX quantized for TensorRT (precision lives in the ONNX), then built.

It lives here, above both calibration and swin_deploy.backends, so that neither imports the other's way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swin_deploy.artifact import read_info
from swin_deploy.backends.tensorrt_runner import BuildOptions, EngineInfo, check_profile, import_tensorrt
from swin_deploy.backends.tensorrt_runner import build_engine as build_serialized
from swin_deploy.enums import Int8Target, Precision
from swin_deploy.errors import UserError
from swin_deploy.fileio import sha256_file

from .quantize import Progress, QuantizeOptions, QuantizeResult, default_output, quantize


@dataclass
class EngineResult:
    path: Path
    engine: EngineInfo
    onnx: Path  # what was built: the given ONNX or its quantized version
    quantized: QuantizeResult | None = None


def quantize_and_build(model: Path, output: Path | None, build: BuildOptions, convert: QuantizeOptions | None = None,
                       on_progress: Progress = lambda s, n, t: None,
                       on_step: Callable[[str], None] = lambda step: None) -> EngineResult:
    """Build a strongly typed TensorRT engine from `model`; with `convert`, first quantize the fp32 ONNX to
    `convert.precision` for TensorRT (INT8 Q/DQ are then symmetric int8, as TensorRT takes them)."""
    model = Path(model)
    import_tensorrt()  # fail fast, before any calibration work
    info = read_info(model, convert.variant if convert else None)
    check_profile(info, build)
    quantized = None
    if convert is not None:
        if info.precision != Precision.FP32:
            raise UserError(f"{model.name} is already {info.precision}: drop the precision option, or pass the fp32 export")
        if convert.int8.target != Int8Target.TENSORRT:
            raise UserError("TensorRT takes INT8 with symmetric int8 activations: `target` must be tensorrt here")
        quantized = quantize(model, default_output(model, convert.precision), convert, on_progress)
        model, info = quantized.path, read_info(quantized.path)
    output = Path(output or model.with_suffix(".engine"))
    on_step("building TensorRT engine")
    engine = build_serialized(model, info, sha256_file(model), output, build)
    return EngineResult(output, engine, model, quantized)
