"""The build-engine chain: an fp32 ONNX quantized for TensorRT (precision lives in the ONNX), then built.

It lives here, above both calibration and swin_deploy.backends, so that neither imports the other's way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swin_deploy.artifact import EngineInfo, check_artifact_name, read_info
from swin_deploy.backends.tensorrt import import_tensorrt
from swin_deploy.backends.tensorrt.loader import BuildOptions, check_profile
from swin_deploy.backends.tensorrt.loader import build_engine as build_serialized
from swin_deploy.enums import Int8Target, Precision
from swin_deploy.errors import GateFailed, UserError
from swin_deploy.fileio import check_outputs, sha256_file
from swin_deploy.lint.tensorrt import check_onnx

from .convert import Progress, QuantizeResult, default_output, quantize
from .options import QuantizeOptions


@dataclass
class EngineResult:
    path: Path
    engine: EngineInfo
    onnx: Path  # what was built: the given ONNX or its quantized version
    quantized: QuantizeResult | None = None


def quantize_and_build(model: Path, output: Path | None, build: BuildOptions, convert: QuantizeOptions | None = None,
                       on_progress: Progress = lambda s, n, t: None,
                       on_step: Callable[[str], None] = lambda step: None, lint: bool = True,
                       variant: str | None = None) -> EngineResult:
    """Build a strongly typed TensorRT engine from `model`; with `convert`, first quantize the fp32 ONNX to
    `convert.precision` for TensorRT (INT8 Q/DQ are then symmetric int8, as TensorRT takes them). With `lint`, the
    ONNX must first pass TensorRT's parser rules (swin_deploy.lint): findings are a GateFailed, nothing is built.
    `variant` names the model of an ONNX without swin-deploy metadata."""
    model = Path(model)
    info = read_info(model, variant or (convert.variant if convert else None))
    build = check_profile(info, build)
    if output is not None:
        check_artifact_name(output, "engine")
        check_outputs([model], output=output)
    if convert is not None:
        if info.precision != Precision.FP32:
            raise UserError(f"{model.name} is already {info.precision}: drop the precision option, or pass the fp32 export")
        if convert.int8.target != Int8Target.TENSORRT:
            raise UserError("TensorRT takes INT8 with symmetric int8 activations: `target` must be tensorrt here")
    # after the checks of the user's input (whose errors say what to fix), before any calibration work
    trt = import_tensorrt()
    quantized = None
    if convert is not None:
        quantized = quantize(model, default_output(model, convert.precision), convert, on_progress)
        model, info = quantized.path, read_info(quantized.path)
    output = Path(output or model.with_suffix(".engine"))
    if lint:
        on_step("checking TensorRT's parser rules")
        version = 11 if int(str(trt.__version__).split(".")[0]) >= 11 else 10
        findings = check_onnx(model, version)
        if findings:
            raise GateFailed(f"{model.name} breaks TensorRT {version}'s ONNX parser rules ({len(findings)} finding(s); "
                             f"`swin-deploy check` lists them), first: {findings[0]}; nothing was built (`no_check` "
                             "to build anyway)")
    on_step("building TensorRT engine")
    engine = build_serialized(model, info, sha256_file(model), output, build)
    return EngineResult(output, engine, model, quantized)
