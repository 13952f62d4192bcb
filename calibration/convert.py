"""The one place that decides precision by name: an fp32 swin-deploy ONNX -> FP16 or INT8, checked, written atomically.

FP16 is swin_deploy.precision's conversion with its float32 block list, plus the nodes whose activations
exceed `fp16_keep_above` on calibration images (when given); INT8 is this package's calibration and Q/DQ.
Both read calibration images through the same statistics pass (ranges.calibrate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from swin_deploy import defaults
from swin_deploy.artifact import (
    INT8_WEIGHTS_7BIT,
    INT8_WEIGHTS_8BIT,
    ArtifactInfo,
    check_artifact_name,
    load_onnx,
    read_info,
    write_info,
)
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.data import ImageSet, list_images
from swin_deploy.enums import HighPrecision, Int8Target, Precision, QdqPlacement
from swin_deploy.errors import GateFailed, UserError
from swin_deploy.fileio import atomic_output, check_outputs, sha256_file
from swin_deploy.precision.fp16 import convert_fp16, default_block_list, first_float16_overflow, hot_block_list
from swin_deploy.precision.graph import io_names, opset_of

from .int8 import coarse_attention_probabilities, quantize_int8
from .options import QuantizeOptions
from .placement import residual_adds, select_nodes
from .ranges import Ranges, calibrate
from .reader import ImageReader
from .sensitivity import SensitivityResult, measure

Progress = Callable[[str, int, int], None]  # (step, images done in this call, total images or 0)


@dataclass
class QuantizeResult:
    path: Path
    precision: Precision
    quantized_nodes: int
    float_nodes: int
    calib_images: int = 0
    skipped_images: int = 0
    cache_path: Path | None = None
    seconds: float = 0.0
    details: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the summary cannot show but the user should know


def default_output(model: Path, precision: Precision | str) -> Path:
    """model.onnx -> model.<precision>.onnx beside it."""
    return model.with_name(f"{model.name.removesuffix('.onnx')}.{Precision.parse(precision)}.onnx")


def quantize(src: Path, out: Path | None, options: QuantizeOptions, on_progress: Progress = lambda s, n, t: None
             ) -> QuantizeResult:
    """Convert `src` to `options.precision` at `out` (default: beside it); `on_progress` reports images."""
    start = time.perf_counter()
    src, model, info = _fp32_source(src, options)
    out = Path(out or default_output(src, options.precision))
    check_artifact_name(out, "onnx")
    options.check_comparison(compared=False)
    check_outputs([src, *([options.calib_cache] if options.calib_cache else [])], output=out)
    model_sha = sha256_file(src)
    result = QuantizeResult(out, options.precision, 0, 0)
    if options.precision == Precision.FP16:
        qmodel, ranges = _fp16(model, info, options, result, on_progress), None
    else:
        qmodel, ranges = _int8(model, info, options, model_sha, result, on_progress)
    int8 = options.int8 if options.precision == Precision.INT8 else None
    new_info = replace(info, precision=options.precision, opset=opset_of(qmodel), source_sha256=model_sha,
                       int8_target=int8 and int8.target, calib_method=int8 and (ranges.method if ranges else int8.method),
                       details={k: v for k, v in result.details.items() if k not in ("target", "method")})
    write_info(qmodel, new_info)
    if options.precision == Precision.INT8 and options.int8.target == Int8Target.TENSORRT:
        _check_tensorrt_rules(qmodel, new_info, result)
    with atomic_output(out, suffix=".onnx") as tmp:
        onnx.save(qmodel, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
        _smoke_run(tmp, qmodel, info, options)
        if result.cache_path is not None and ranges is not None:
            ranges.save(result.cache_path)
    result.seconds = time.perf_counter() - start
    return result


def sensitivity(src: Path, options: QuantizeOptions, on_progress: Progress = lambda s, n, t: None
                ) -> SensitivityResult:
    """Rank the blocks of the fp32 ONNX `src` by how far quantizing each alone (with `options`' INT8 settings and
    ranges) moves its outputs on `compare_images` of the calibration images, and find the blocks to keep in float for
    an INT8 within the INT8 gates (calibration.sensitivity). Writes nothing (a `calib_cache` is read)."""
    start = time.perf_counter()
    if options.precision != Precision.INT8:
        raise UserError("`sensitivity` ranks the blocks of an INT8: pass `precision` int8")
    if options.int8.auto_exclude:
        raise UserError("`sensitivity` names the blocks `auto_exclude` would keep in float, and writes no model: "
                        "drop `auto_exclude`")
    src, model, info = _fp32_source(src, options)
    if options.calib_data is None and options.int8.compare_data is None:
        raise UserError("`sensitivity` runs the blocks on images: pass `calib_data` DIR (or `compare_data` DIR)")
    options.check_comparison(compared=True)
    compare = _compare_images(options)  # before calibrating: a mistyped folder costs a second, not a calibration
    ranges = int8_ranges(model, info, options, sha256_file(src), on_progress)
    found = _rank_blocks(model, info, options, ranges, compare, on_progress)
    found.model, found.seconds = src, time.perf_counter() - start
    return found


def _fp32_source(src: Path, options: QuantizeOptions) -> tuple[Path, onnx.ModelProto, ArtifactInfo]:
    """The fp32 ONNX to quantize, its graph and metadata (a quantized one is refused)."""
    src = Path(src)
    model = load_onnx(src)
    info = read_info(src, options.variant)
    refuse_quantized(model, info, src)
    return src, model, info


def _rank_blocks(model: onnx.ModelProto, info: ArtifactInfo, options: QuantizeOptions, ranges: Ranges,
                 compare: tuple[ImageSet, str, bool | None], on_progress: Progress,
                 rank_within: bool = True) -> SensitivityResult:
    """calibration.sensitivity's ranking and search with `options`' INT8 settings, on the `compare` images."""
    sample, compared_on, held_out = compare
    reader = ImageReader(sample, info, options.calib_batch, lambda n: on_progress("reading images", n, len(sample)),
                         options.calib_size, options.workers, io_names(model.graph)[0][0])
    int8 = options.int8
    limits = int8.limits()
    whole, ranked, search, back = measure(model, ranges, int8, list(reader.batches()), limits, on_progress,
                                          rank_within, options.fp16_keep_above)
    return SensitivityResult(Path(), reader.used, compared_on, held_out, ranges.images, limits, whole, ranked, search,
                             back)


def _compare_images(options: QuantizeOptions) -> tuple[ImageSet, str, bool | None]:
    """The images the INT8 is compared with float32 on, what they are, and whether none of them made its ranges (None:
    not known). `compare_data` where given (a validation set: what verify will gate on); else, where the calibration
    folder holds more images than calibration read, those others: on the images that made its ranges an INT8 looks
    better than on any other (they clip nothing)."""
    int8 = options.int8
    if int8.compare_data is not None:
        return list_images(int8.compare_data, limit=int8.compare_images, seed=options.seed), \
            f"images of {int8.compare_data}", None
    if options.calib_cache is not None:
        return list_images(options.calib_data, limit=int8.compare_images, seed=options.seed), \
            "images of the calibration folder", None
    calibrated = set(list_images(options.calib_data, limit=options.calib_images, seed=options.seed).files)
    others = [f for f in list_images(options.calib_data).files if f not in calibrated]
    if not others:
        return list_images(options.calib_data, limit=min(int8.compare_images, options.calib_images), seed=options.seed), \
            "calibration images (the folder holds no others; those that made the ranges flatter an INT8)", False
    return ImageSet(others, None).sample(int8.compare_images, options.seed), "held-out images of the calibration folder", \
        True


def _check_tensorrt_rules(model: onnx.ModelProto, info: ArtifactInfo, result: QuantizeResult) -> None:
    """The INT8 graph written for TensorRT passes TensorRT's parser rules (swin_deploy.lint), else nothing is written."""
    from swin_deploy.lint.tensorrt import VERSIONS, check_model

    for version in VERSIONS:
        findings = check_model(model, info, version)
        if findings:
            raise GateFailed(f"the INT8 graph breaks TensorRT {version}'s ONNX parser rules ({len(findings)} finding(s)), "
                             f"first: {findings[0]}; nothing was written")
    result.details["tensorrt_check"] = f"clean (TensorRT {' and '.join(map(str, VERSIONS))} parser rules)"


def refuse_quantized(model: onnx.ModelProto, info: ArtifactInfo, path: Path) -> None:
    already = info.precision != Precision.FP32 or any(n.op_type in ("QuantizeLinear", "DequantizeLinear")
                                                      for n in model.graph.node) \
        or any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    if already:
        raise UserError(f"{path} is already quantized ({info.precision}): quantize the fp32 export instead")


def _reader(model: onnx.ModelProto, info: ArtifactInfo, options: QuantizeOptions,
            on_batch: Callable[[int], None]) -> ImageReader:
    if options.calib_size is not None:
        info.check_size(options.calib_size)
    images = list_images(options.calib_data, limit=options.calib_images, seed=options.seed)
    # the graph's own input name: an ONNX from another exporter (given `variant`) need not call it "input"
    return ImageReader(images, info, options.calib_batch, on_batch, options.calib_size, options.workers,
                       io_names(model.graph)[0][0])


def _note_images(result: QuantizeResult, ranges: Ranges, reader: ImageReader, options: QuantizeOptions) -> None:
    """How many images calibrated the artifact (its metadata keeps it: how it was made), and where the folder held
    fewer than `calib_images` asks, or memory cut the calibration batch smaller, that it did."""
    result.details["calib_images"] = str(reader.used) if len(reader.images) >= options.calib_images else \
        f"{reader.used}, all the folder holds ({options.calib_images} asked)"  # less the unreadable, if any
    if n := ranges.run_images:
        result.details["calib_batch"] = (f"{n} image{'s' if n > 1 else ''} per run, not {options.calib_batch}: "
                                         "what fits in memory")
    if ranges.grouped:
        groups, size, images = ranges.grouped
        run = f"{images} images (the static batch)" if images > 1 else "one image"
        result.details["calib_passes"] = (f"{groups}, a group of tensors each: a run of {run} reads out "
                                          f"{size / 2**30:.1f} GiB, past what fits in memory")


def _fp16(model: onnx.ModelProto, info: ArtifactInfo, options: QuantizeOptions, result: QuantizeResult,
          on_progress: Progress) -> onnx.ModelProto:
    block = default_block_list(model)
    if options.calib_data is not None:
        reader = _reader(model, info, options, lambda n: on_progress("measuring activations", n, len(reader.images)))
        ranges = calibrate(model, reader, op_types=None)  # every float tensor
        _note_images(result, ranges, reader, options)
        hot = hot_block_list(model, ranges.peaks(), options.fp16_keep_above)
        block = sorted(set(block) | set(hot))
        result.calib_images, result.skipped_images = reader.used, reader.images.skipped
        result.details.update(fp16_keep_above=str(options.fp16_keep_above), fp16_hot_nodes=str(len(hot)))
    else:
        # only images show where a trained model's activations pass float16's range: the artifact says they were not
        # looked at (inspect shows it)
        result.details["fp16_hot_nodes"] = "not looked for (no calibration images)"
    result.quantized_nodes, result.float_nodes = len(model.graph.node) - len(block), len(block)
    result.details["fp32_nodes"] = str(len(block))
    return convert_fp16(model, block)


def int8_ranges(model: onnx.ModelProto, info: ArtifactInfo, options: QuantizeOptions, model_sha: str,
                on_progress: Progress, result: QuantizeResult | None = None) -> Ranges:
    """The INT8 ranges `options` ask for: from `calib_cache`, else calibrated on `calib_data` (how, into `result`)."""
    int8 = options.int8
    result = result or QuantizeResult(Path(), Precision.INT8, 0, 0)
    if options.calib_cache is not None:
        ranges = Ranges.load(options.calib_cache, model_sha)
        wanted = Ranges(model_sha, int8.method, int8.percentile if int8.method == "percentile" else None, 0, {}).label
        if wanted != ranges.label:
            raise UserError(f"calibration cache {options.calib_cache} holds {ranges.label} ranges, not {wanted}: pass "
                            f"`method` {ranges.method} to use it, or drop `calib_cache` to calibrate again")
        result.details["calib_images"] = f"{ranges.images} (calibration cache {options.calib_cache.name})"
    else:
        if options.calib_data is None:
            raise UserError("int8 needs calibration images: pass `calib_data` DIR (swin-deploy demo-data writes some)")
        reader = _reader(model, info, options, lambda n: on_progress("calibrating", n, len(reader.images)))
        # float16 outside the Q/DQ: the peaks of every float tensor too, so the nodes past `fp16_keep_above` stay
        # float32 as in FP16
        ranges = calibrate(model, reader, int8.method, int8.percentile, model_sha, op_types=int8.calibrated_ops,
                           float_peaks=int8.high == HighPrecision.FP16)
        _note_images(result, ranges, reader, options)
        result.skipped_images = reader.images.skipped
    result.calib_images = ranges.images
    if int8.placement == QdqPlacement.NVIDIA and options.calib_cache is not None:
        adds = set(residual_adds(model))
        missing = [i for n in model.graph.node if n.name in adds for i in n.input if i not in ranges.ranges]
        if missing:
            raise UserError(f"calibration cache {options.calib_cache} has no ranges for the residual adds the nvidia "
                            "placement quantizes (it was made for `placement` linear): drop `calib_cache` to calibrate again")
    return ranges


def _int8(model: onnx.ModelProto, info: ArtifactInfo, options: QuantizeOptions, model_sha: str,
          result: QuantizeResult, on_progress: Progress) -> tuple[onnx.ModelProto, Ranges]:
    int8 = options.int8
    if not select_nodes(model, int8.attention, int8.quantize_head, int8.exclude, int8.placement).quantize:
        # an "int8" artifact without a Q/DQ would be the float model under another name
        raise UserError(f"`exclude` {' '.join(repr(p) for p in int8.exclude)} keeps every node INT8 would quantize in "
                        "float: narrow it (or quantize with `precision` fp16 for a float16 model)")
    compare = _compare_images(options) if int8.auto_exclude else None  # before calibrating, as in `sensitivity`
    ranges = int8_ranges(model, info, options, model_sha, on_progress, result)
    if options.calib_cache is None:
        result.cache_path = result.path.with_name(result.path.name.removesuffix(".onnx") + ".calib.json")
    if int8.auto_exclude:
        # an INT8 within the gates as it is needs no ranking
        found = _rank_blocks(model, info, options, ranges, compare, on_progress, rank_within=False)
        if not found.found:
            raise GateFailed(f"no INT8 short of every block in float is within the INT8 gates on "
                             f"{found.describe_images()} (`sensitivity` ranks the blocks): try `method` "
                             "percentile or entropy; nothing was written")
        int8 = replace(int8, exclude=[*int8.exclude, *found.keep_float])
        kept = found.kept
        result.details["auto_exclude"] = (
            f"{len(found.keep_float)} of {len(found.blocks)} blocks kept in float" if found.keep_float else
            "no block needed in float") + (f": max rel delta {kept.max_rel_delta:.4g}, min cosine "
                                           f"{kept.min_cosine:.6f} on {found.describe_images()}")
    if int8.exclude:
        result.details["exclude"] = " ".join(int8.exclude)
    qmodel, placement = quantize_int8(model, ranges, int8, options.fp16_keep_above)
    result.quantized_nodes, result.float_nodes = len(placement.quantize), placement.kept
    coarse = coarse_attention_probabilities(model, ranges, set(placement.quantize),
                                            symmetric=int8.target == Int8Target.TENSORRT)
    if coarse and coarse.coarse:
        result.notes.append(
            f"quantized attention: in {coarse.coarse} of {coarse.quantized} blocks one int8 step of the attention "
            f"probabilities ({coarse.step:.2g}) is at or above the mean probability of a {coarse.keys}-token window "
            f"({1 / coarse.keys:.2g}), so most of them round to 0 or one step; at 12x12 to 24x24 windows quantized "
            "attention moved random weights' logits 2.3x to 15x as far as INT8 without it (docs/precision.md, \"Large "
            "windows\"): gate it with verify on real images, or leave the attention in float (`placement` linear, no "
            "`attention_matmuls`)")
    if options.calib_size is not None:
        result.details["calib_size"] = "x".join(map(str, options.calib_size))
    result.details.update(target=str(int8.target), method=str(ranges.method), high_precision=str(int8.high),
                          placement=str(int8.placement), attention_matmuls=str(placement.attention_matmuls).lower(),
                          **({"residual_adds": str(placement.residual_adds)} if placement.residual_adds else {}),
                          activations="int8 symmetric" if int8.target == Int8Target.TENSORRT else "uint8 asymmetric",
                          int8_weights=INT8_WEIGHTS_7BIT if int8.reduce_range else INT8_WEIGHTS_8BIT)
    if int8.high == HighPrecision.FP16:
        result.details.update(
            {"fp16_keep_above": str(options.fp16_keep_above), "fp16_hot_nodes": str(placement.float32_hot)}
            if ranges.float_peaks is not None else  # a cache made for float32 outside the Q/DQ, or by an older version
            {"fp16_hot_nodes": f"not looked for (calibration cache {options.calib_cache.name} has no peaks)"})
    return qmodel, ranges


def _smoke_run(path: Path, model: onnx.ModelProto, info: ArtifactInfo, options: QuantizeOptions) -> None:
    """The converted model keeps float32 outputs, and loads and runs in onnxruntime CPU with finite outputs on a
    synthetic input. An FP16 made without calibration images, which only the Swin block list guards, is also run with
    its float16 tensors read out as they are stored: onnxruntime's CPU computes a chain of float16 nodes in float32
    (it drops the casts between them), so its outputs alone would not show a float16 overflow that a GPU has."""
    if any(o.type.tensor_type.elem_type != onnx.TensorProto.FLOAT for o in model.graph.output):
        raise RuntimeError("converted model has non-float32 outputs")
    x = info.example_input(np.random.default_rng(defaults.SEED), info.fixed_batch or 1)
    fp16 = options.precision == Precision.FP16
    if fp16 and options.calib_data is None:
        fix = "pass `calib_data` images, so the nodes whose activations pass `fp16_keep_above` on them stay float32"
        overflow = first_float16_overflow(model, x)
        if overflow is not None:
            raise GateFailed(f"float16 overflows in the FP16 conversion: {overflow} writes values past 65504 on a "
                             f"synthetic input (a GPU computes inf there): {fix}")
    with OnnxRuntimeRunner(path) as runner:
        outputs = runner.infer(x)
    if not all(np.isfinite(o).all() for o in outputs.values()):
        if fp16:  # a float16 node onnxruntime's CPU runs in float16 overflowed
            raise GateFailed("the FP16 conversion computes non-finite outputs on a synthetic input (float16 overflows "
                             f"past 65504): {'lower `fp16_keep_above`' if options.calib_data else 'pass `calib_data`'}")
        raise RuntimeError("converted model produced non-finite outputs")
