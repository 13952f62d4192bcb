"""`swin-deploy quantize`: an fp32 swin-deploy ONNX -> fp16 or int8 ONNX, checked and written atomically."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..artifact import ArtifactInfo, load_onnx, read_info, write_info
from ..errors import UserError
from ..fileio import atomic_output, check_writable_dir, sha256_file


@dataclass
class QuantizeOptions:
    precision: str  # fp16 | int8
    calib_data: Path | None = None
    calib_images: int = 512
    calib_batch: int = 16
    seed: int = 0
    calib_cache: Path | None = None
    fp16_keep_above: float = 1e4
    int8: object = None  # calibration.Int8Options
    variant: str | None = None  # for an ONNX without metadata
    calib_size: tuple[int, int] | None = None  # dynamic-size models: calibrate at this size, not the default


@dataclass
class QuantizeResult:
    path: Path
    precision: str
    quantized_nodes: int
    float_nodes: int
    calib_images: int = 0
    skipped_images: int = 0
    cache_path: Path | None = None
    seconds: float = 0.0
    details: dict[str, str] = field(default_factory=dict)


def _refuse_quantized(model: onnx.ModelProto, info: ArtifactInfo, path: Path) -> None:
    already = info.precision != "fp32" or any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node) \
        or any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    if already:
        raise UserError(f"{path} is already quantized ({info.precision}): quantize the fp32 export instead")


def _calib_batches(info: ArtifactInfo, options: QuantizeOptions, on_batch: Callable[[int], None]):
    from calibration.reader import ImageReader

    from ..data import list_images

    if options.calib_data is None:
        raise UserError("int8 needs calibration images: pass --calib-data DIR (swin-deploy demo-data writes some)")
    if options.calib_images < 1 or options.calib_batch < 1:
        raise UserError("--calib-images and --calib-batch must be at least 1")
    if options.calib_size is not None:
        info.check_size(options.calib_size)
    images = list_images(options.calib_data, limit=options.calib_images, seed=options.seed)
    return ImageReader(images, info, options.calib_batch, on_batch, options.calib_size)


def quantize(src: Path, out: Path, options: QuantizeOptions,
             on_progress: Callable[[str, int, int], None] = lambda step, done, total: None) -> QuantizeResult:
    """Convert `src` to `options.precision`; `on_progress(step, done, total)` reports calibration images."""
    start = time.perf_counter()
    if options.precision not in ("fp16", "int8"):
        raise UserError(f"unknown precision '{options.precision}': choose fp16 or int8")
    if not options.fp16_keep_above > 0:
        raise UserError(f"--fp16-keep-above must be positive (float16 overflows past 65504), not {options.fp16_keep_above}")
    model = load_onnx(src)
    info = read_info(src, options.variant)
    _refuse_quantized(model, info, src)
    check_writable_dir(out)
    model_sha = sha256_file(src)
    result = QuantizeResult(out, options.precision, 0, 0)
    if options.precision == "fp16":
        from .fp16 import activation_peaks, convert_fp16, default_block_list

        block = default_block_list(model)
        if options.calib_data is not None:
            reader = _calib_batches(info, options, lambda n: on_progress("measuring activations", n, 0))
            peaks = activation_peaks(model, reader.batches())
            hot = [name for name, peak in peaks.items() if peak > options.fp16_keep_above]
            block = sorted(set(block) | set(hot))
            result.calib_images, result.skipped_images = reader.used, reader.images.skipped
            result.details["fp16_keep_above"] = str(options.fp16_keep_above)
            result.details["fp16_hot_nodes"] = str(len(hot))
        qmodel = convert_fp16(model, block)
        result.quantized_nodes = len(model.graph.node) - len(block)
        result.float_nodes = len(block)
        result.details["fp32_nodes"] = str(len(block))
    else:
        from calibration.int8 import DEFAULT_HIGH_PRECISION, Int8Options, quantize_int8
        from calibration.ranges import Ranges, calibrate, check_method

        int8: Int8Options = options.int8 or Int8Options()
        if int8.target not in DEFAULT_HIGH_PRECISION:
            raise UserError(f"unknown target '{int8.target}': choose tensorrt or onnxruntime")
        if int8.high_precision not in (None, "fp32", "fp16"):
            raise UserError(f"--high-precision must be fp32 or fp16, not '{int8.high_precision}'")
        wanted = check_method(int8.method, int8.percentile)
        if options.calib_cache is not None:
            ranges = Ranges.load(options.calib_cache, model_sha)
            cached = check_method(ranges.method, ranges.percentile or 0.0)
            if wanted != cached:
                raise UserError(f"calibration cache {options.calib_cache} holds {cached} ranges, not {wanted}: pass "
                                f"--method {ranges.method} to use it, or drop --calib-cache to calibrate again")
        else:
            reader = _calib_batches(info, options, lambda n: on_progress("calibrating", n, len(reader.images)))
            ranges = calibrate(model, reader, int8.method, int8.percentile, model_sha)
            result.skipped_images = reader.images.skipped
            result.cache_path = out.with_name(out.name.removesuffix(".onnx") + ".calib.json")
        result.calib_images = ranges.images
        qmodel, placement = quantize_int8(model, ranges, int8)
        result.quantized_nodes, result.float_nodes = len(placement.quantize), placement.kept
        high = int8.high_precision or DEFAULT_HIGH_PRECISION[int8.target]
        if options.calib_size is not None:
            result.details["calib_size"] = "x".join(map(str, options.calib_size))
        result.details.update(target=int8.target, method=ranges.method, high_precision=high,
                              attention_matmuls=str(placement.attention_matmuls).lower(),
                              activations="int8 symmetric" if int8.target == "tensorrt" else "uint8 asymmetric")
    opset = next(o.version for o in qmodel.opset_import if o.domain in ("", "ai.onnx"))
    new_info = ArtifactInfo(**{**info.__dict__, "precision": options.precision, "opset": opset,
                               "extra": dict(result.details)})
    new_info.extra["source_sha256"] = model_sha
    write_info(qmodel, new_info)
    with atomic_output(out, suffix=".onnx") as tmp:
        onnx.save(qmodel, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        _smoke_run(tmp, info)
        if result.cache_path is not None:
            ranges.save(result.cache_path)
    result.seconds = time.perf_counter() - start
    return result


def _smoke_run(path: Path, info: ArtifactInfo) -> None:
    """The converted model loads and runs in onnxruntime CPU with finite output."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((info.fixed_batch or 1, 3, *info.img_size), dtype=np.float32)
    logits = session.run(None, {"input": x})[0]
    if logits.dtype != np.float32 or not np.isfinite(logits).all():
        raise RuntimeError(f"converted model produced {logits.dtype} / non-finite logits")
