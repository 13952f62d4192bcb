"""Native Swin model -> ONNX with a symbolic batch, opset-safe windows, metadata, checks and parity.

Exporter: the TorchScript-based exporter (`dynamo=False`) gives a graph of the same size after simplification, exports
faster and supports opsets 13-20, where the torch.export path starts at 18 and needs the version converter below that.
The TorchScript path is deprecated, so `exporter="auto"` falls back to `dynamo=True` when it is unavailable or fails;
both are covered by tests.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch

from .. import defaults
from ..artifact import ArtifactInfo, check_artifact_name, ir_weights, kind_of, write_info
from ..backends.onnxruntime_runner import OnnxRuntimeRunner
from ..backends.torch_runner import TorchRunner
from ..compare import max_rel_delta_outputs
from ..enums import ExportFormat, InputFormat, Simplifier
from ..errors import GateFailed, UserError, missing_package, require_at_least
from ..fileio import atomic_output, check_outputs
from ..machine import check_memory
from ..models import PixelInput, Preprocessing, SwinTransformer, Weights, build_model, config_for, output_module
from ..models.checkpoint import (
    TrainingSettings,
    is_torchvision_checkpoint,
    release_checkpoint,
    training_settings,
    variant_from_tensors,
    window_in_tensors,
)
from ..models.registry import registered
from ..parsing import as_hw, one_or_many
from ..precision.graph import constant_values, input_dependent
from ..tolerances import EXPORT_PARITY_REL

MIN_OPSET = defaults.MIN_OPSET
DEFAULT_OPSET = defaults.OPSET
FORBIDDEN_OPS = {"If", "Loop", "Scan", "Roll"}


def max_opset() -> int:
    """Newest opset both the TorchScript exporter and the installed onnx know."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as torch_max
    except ImportError:  # pragma: no cover - depends on the torch release
        torch_max = 20
    return min(torch_max, onnx.defs.onnx_opset_version())


@dataclass(frozen=True)
class ExportOptions:
    """Everything an export is configured by, validated on construction (the command line and a Python caller get the
    same errors)."""

    opset: int = DEFAULT_OPSET
    static_batch: bool = False
    max_batch: int | None = None
    simplifier: Simplifier = defaults.SIMPLIFIER
    verify: bool = True
    exporter: str = "auto"  # auto | torchscript | dynamo
    features: bool = False  # output the stage feature maps instead of logits
    img_size: tuple[int, int] | None = None  # default: the variant's (export_variant; export_onnx takes the model's)
    dynamic_size: bool = False  # any H, W in [min_size, max_size]; the model is built with dynamic geometry for it
    min_size: tuple[int, int] | None = None  # default: the smallest size with full windows at every stage
    max_size: tuple[int, int] | None = None  # default: twice the larger of the default size and min_size
    input_format: InputFormat = InputFormat.FLOAT32  # uint8: raw pixels in, normalisation folded into the graph
    channels_last: bool = False  # uint8 pixels as (B, H, W, 3)
    # openvino: the ONNX converted to an OpenVINO IR (.xml + .bin); None: by the output's suffix (.xml: openvino)
    format: ExportFormat | None = None
    preprocessing: Preprocessing | None = None  # replaces the variant's or checkpoint config's (a fine-tune's own)
    class_names: tuple[str, ...] | None = None  # a fine-tune's class names, in class-index order
    # a fine-tune's window where it is not the variant's (timm's window_size model argument), for a checkpoint whose
    # training args and tensors do not say it (checkpoint.window_in_tensors)
    window_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("img_size", "min_size", "max_size"):
            object.__setattr__(self, name, as_hw(getattr(self, name), name))
        object.__setattr__(self, "class_names", one_or_many(self.class_names))
        if self.format is not None:
            object.__setattr__(self, "format", ExportFormat.parse(self.format, "format"))
        object.__setattr__(self, "simplifier", Simplifier.parse(self.simplifier, "simplifier"))
        object.__setattr__(self, "input_format", InputFormat.parse(self.input_format, "input_format"))
        top = max_opset()
        if not MIN_OPSET <= self.opset <= top:
            raise UserError(f"opset {self.opset} is not supported: choose an opset from {MIN_OPSET} to {top}")
        require_at_least("max_batch", self.max_batch, 1)
        if self.exporter not in ("auto", "torchscript", "dynamo"):
            raise UserError(f"unknown exporter '{self.exporter}': choose auto, torchscript or dynamo")
        if self.channels_last and self.input_format != InputFormat.UINT8:
            raise UserError("`channels_last` goes with `input_format` uint8 (raw pixels as B, H, W, 3)")
        if (self.min_size or self.max_size) and not self.dynamic_size:
            raise UserError("`min_size`/`max_size` go with `dynamic_size`")
        if self.class_names is not None and self.features:
            raise UserError("`class_names` names a classifier's classes, and `features` outputs the stage feature maps "
                            "instead: leave one out")
        require_at_least("window_size", self.window_size, 1)
        if self.img_size is not None and min(self.img_size) < 1:
            raise UserError(f"image size must be positive, not {self.img_size[0]}x{self.img_size[1]}")

    @property
    def fixed_batch(self) -> int | None:
        """A static-batch export's batch (`max_batch`, or 1); None for a dynamic batch."""
        return (self.max_batch or 1) if self.static_batch else None


def check_sizes(cfg, size_range: tuple[tuple[int, int], tuple[int, int]] | None) -> list[tuple[int, int]]:
    """Sizes the parity check runs at: the model's size, and for a dynamic export also the range's ends
    and a non-square size between them."""
    if size_range is None:
        return [tuple(cfg.img_size)]
    (lo_h, lo_w), (hi_h, hi_w) = size_range
    s = cfg.stride
    mid = ((lo_h + hi_h) // 2 // s * s, (lo_w + 3 * hi_w) // 4 // s * s)
    return list(dict.fromkeys([tuple(cfg.img_size), (lo_h, lo_w), mid, (hi_h, hi_w)]))


@dataclass
class ExportResult:
    path: Path
    opset: int
    nodes: int
    size_bytes: int
    parity_delta: float | None  # max |onnx - torch| / max |torch| over the checked batch sizes
    seconds: float
    exporter: str
    layernorm_fused: bool
    outputs: list[str]
    input_size: str = ""  # "224x224", or "64x64 to 128x128 (dynamic)", with ", uint8 pixels ..." for raw pixels
    note: str | None = None  # something the user should know about what was written
    ir_weights: str | None = None  # format openvino: how the IR stores its weights (float16 where the gate allows)


def _torch_export(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, static: bool,
                  exporter: str, outputs: list[str], dynamic_size: bool, channels_last: bool = False) -> str:
    """Run one of torch's exporters; returns the one that worked."""
    axes: dict[str, dict[int, str]] = {}
    if not static:
        axes = {"input": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    if dynamic_size:
        h, w = (1, 2) if channels_last else (2, 3)
        axes.setdefault("input", {}).update({h: "height", w: "width"})
        for i, name in enumerate(n for n in outputs if n.startswith("stage")):
            axes.setdefault(name, {}).update({2: f"height_{i + 1}", 3: f"width_{i + 1}"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of the TorchScript path, tracer warnings
        if exporter in ("auto", "torchscript"):
            try:
                torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=outputs,
                                  opset_version=opset, dynamo=False, do_constant_folding=True,
                                  dynamic_axes=axes or None)
                return "torchscript"
            except OSError:
                raise  # writing failed (a full disk), not the exporter: the other exporter would fail the same way
            except Exception as e:
                if exporter == "torchscript" or dynamic_size:
                    raise
                said = (str(e).strip().splitlines() or [""])[0][:120]
                failed = f"the TorchScript exporter failed ({type(e).__name__}: {said}), and "
        else:
            failed = ""
        if opset < 18:
            # onnx's version converter has no Split adapter from 18 down, so the torch.export path
            # cannot produce these opsets for Swin
            raise UserError(f"{failed}the dynamo exporter writes opset 18 or newer, not {opset}: pass `opset` 18")
        if dynamic_size:
            raise UserError("`dynamic_size` needs the TorchScript exporter: drop `exporter` dynamo")
        dynamic = None if static else {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
        if not static and example.shape[0] == 1:
            # torch.export may take a size-1 example dim for the constant 1 (torch 2.7 did: a static batch)
            example = example.expand(2, *example.shape[1:]).contiguous()
        program = torch.onnx.export(model, (example,), None, input_names=["input"], output_names=outputs,
                                    opset_version=opset, dynamo=True, dynamic_shapes=dynamic, verbose=False)
        program.save(str(path), external_data=False)
        return "dynamo"


def _name_output_dims(proto: onnx.ModelProto, dims: dict[str, tuple[int, ...]]) -> None:
    """Write the outputs' known dims (beside the batch) into the graph where the exporter left them symbolic: with a
    dynamic size, a stage map's channels come out as 'Transposestage1_dim_1', which Triton configs, onnxruntime's
    output shapes and other consumers would read as unknown."""
    for output in proto.graph.output:
        shape = output.type.tensor_type.shape.dim
        for dim, value in zip(list(shape)[1:], dims.get(output.name, ())):
            if value > 0 and not dim.HasField("dim_value"):
                dim.dim_value = value


def simplify(model: onnx.ModelProto, simplifier: Simplifier | str = defaults.SIMPLIFIER) -> onnx.ModelProto:
    """Constant folding, dead-node removal and shape-op cleanup by onnx-simplifier and/or onnxslim."""
    simplifier = Simplifier.parse(simplifier, "simplifier")
    if simplifier in (Simplifier.ONNXSLIM, Simplifier.BOTH):
        model = _slim_with_constants_held_out(model)
    if simplifier in (Simplifier.ONNXSIM, Simplifier.BOTH):
        try:
            import onnxsim
        except ImportError as e:
            raise missing_package("onnxsim") from e
        model, ok = onnxsim.simplify(model)
        if not ok:  # its own check compares against the unsimplified model; ours (parity) runs after too
            raise RuntimeError("onnx-simplifier's own check of the simplified graph failed")
    return model


def _slim_with_constants_held_out(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim, with the large constants that only meet the input's values in a MatMul or an Add (weights, attention
    bias and masks) held out of it as graph inputs meanwhile.

    onnxslim serializes the whole model for each of its shape-inference passes (four for a Swin) and measures its
    size for each, so with the constants in it spent most of its time copying them: 11.6 of 18.4 s in swin_b's
    export (AMD EPYC Zen 4). Whatever it does to a graph whose constants it cannot see holds for any values, so the
    result computes the same; and the result is the same graph, node for node (tests/test_export.py), where onnxslim
    0.1 reads no such constant's values: a node of the input's values is never folded (one of its shape alone may
    be, so shapes do not count), its MatMul+Add -> Gemm rewrite reads the weight but needs a static activation shape
    (so a graph whose inputs are all static is slimmed whole), it drops an Add of zeros (so constants of zeros stay
    in) and it merges equal constants of fewer than 1000 elements (so those stay in)."""
    import onnxslim

    graph = model.graph
    dims = [dim for value in graph.input for dim in value.type.tensor_type.shape.dim]
    if all(dim.HasField("dim_value") for dim in dims):
        return onnxslim.slim(model)
    live = input_dependent(graph)  # exporters write nodes in topological order
    meets: dict[str, set[tuple[str, int]]] = {}  # (op, index) of each reader whose other inputs are all live
    for node in graph.node:
        for index, name in enumerate(node.input):
            rest_live = all(other in live for k, other in enumerate(node.input) if k != index)
            meets.setdefault(name, set()).add((node.op_type, index) if rest_live else ("", -1))
    fits = {("MatMul", 1), ("Add", 0), ("Add", 1)}
    held = {name: value for name, value in constant_values(graph).items()
            if math.prod(value.dims) >= 1000 and meets.get(name) and meets[name] <= fits
            and onnx.numpy_helper.to_array(value).any()}
    if not held:
        return onnxslim.slim(model)
    light = onnx.ModelProto()
    light.CopyFrom(model)  # the caller's model stays whole whatever onnxslim does
    kept = [init for init in light.graph.initializer if init.name not in held]
    del light.graph.initializer[:]
    light.graph.initializer.extend(kept)
    nodes = [node for node in light.graph.node if not (node.op_type == "Constant" and node.output[0] in held)]
    del light.graph.node[:]
    light.graph.node.extend(nodes)
    light.graph.input.extend(onnx.helper.make_tensor_value_info(name, value.data_type, list(value.dims))
                             for name, value in held.items())
    slim = onnxslim.slim(light)
    inputs = list(slim.graph.input)
    del slim.graph.input[:]
    slim.graph.input.extend(value for value in inputs if value.name not in held)
    for value in inputs:
        if value.name in held:  # as onnxslim writes a Constant node's value: an initializer named as its output
            slim.graph.initializer.append(held[value.name])
            slim.graph.initializer[-1].name = value.name
    return slim


def graph_problems(model: onnx.ModelProto) -> list[str]:
    """Ops that break opset-safety: control flow, Roll, or anything outside the default domain."""
    problems = []
    for node in model.graph.node:
        if node.op_type in FORBIDDEN_OPS:
            problems.append(f"{node.op_type} node {node.name}")
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.domain}::{node.op_type} node {node.name}")
    return problems


def onnx_parity(path: Path, model: torch.nn.Module, info: ArtifactInfo, batch_sizes: tuple[int, ...],
                sizes: list[tuple[int, int]], seed: int = defaults.SEED) -> float:
    """Worst max relative delta (onnxruntime vs the float32 torch `model`) over every output, on the seeded
    inputs the artifact `info` describes takes: N(0, 1) floats, or for a raw-pixel artifact uint8 pixels, which
    `model` gets normalised. Every batch size at the first of `sizes`, the first batch size at the others: the
    batch axis is handled alike at every size, and a dynamic-size range can end where a batch of 3 takes most of a
    machine's memory (swinv2_b_192to384 at 1536x1536: 20 GiB)."""
    names = model.output_names()
    rng = np.random.default_rng(seed)
    worst = 0.0
    with OnnxRuntimeRunner(path) as onnx_runner, TorchRunner(model, output_names=names) as torch_runner:
        for i, size in enumerate(sizes):
            for b in (batch_sizes if i == 0 else batch_sizes[:1]):
                x = info.example_input(rng, b, size)
                worst = max(worst, max_rel_delta_outputs(torch_runner.infer(info.normalized(x)), onnx_runner.infer(x)))
    return worst


def export_variant(variant: str | None, weights: Weights, out: Path | None = None, options: ExportOptions | None = None,
                   on_step: Callable[[str], None] = lambda step: None) -> ExportResult:
    """A registered variant (or a transformers checkpoint's architecture; None: swin_t) with `weights`, exported to
    `out` (default `<variant>.onnx`) as `options` say (size, dynamic size range, ...)."""
    try:
        return _export_variant(variant, weights, out, options or ExportOptions(), on_step)
    finally:
        release_checkpoint()  # also where the export stopped before its model was built


def _export_variant(variant: str | None, weights: Weights, out: Path | None, options: ExportOptions,
                    on_step: Callable[[str], None]) -> ExportResult:
    # a timm training checkpoint's args (or a timm hub folder's config) fill in what the options leave unsaid: model,
    # size, eval preprocessing, class names
    trained = training_settings(weights)
    known = trained.model is not None and registered(trained.model)
    if trained.model is not None and not known and variant is None:
        raise UserError(f"the checkpoint ({trained.source}) is of model '{trained.model}', which is not a Swin variant "
                        "swin-deploy builds (`swin-deploy variants` lists them): pass `variant` if it is one")
    from_tensors = None if variant or known else variant_from_tensors(weights)
    base = config_for(variant or (trained.model if known else None) or from_tensors, weights)
    fitted = trained.fitted(base)
    # the window: the option's, else the checkpoint args', else its tensors' (V1's position tables; a fine-tune at
    # another window)
    tables = None if options.window_size or trained.window_size else window_in_tensors(weights)
    window = options.window_size or tables
    if window and window != fitted.window_size:
        fitted = replace(fitted, window_size=window)
    torchvision = is_torchvision_checkpoint(weights)
    if torchvision:  # its padding rules where the windows do not tile a stage grid (the same model where they do), and
        # V2's position coordinates scaled by its own window (torchvision has no pretrained window)
        fitted = replace(fitted, pad_first=True, keep_window=True, pretrained_window_sizes=(0,) * len(fitted.depths))
    cfg = fitted.at_size(options.img_size or trained.img_size, options.dynamic_size)
    # the parity check's largest run: its largest batch at the model's size, one image at a dynamic range's end
    batch = _largest_batch(options)
    runs = [(batch, tuple(cfg.img_size))]
    if options.dynamic_size:
        lo, hi = cfg.for_dynamic(options.min_size, options.max_size)[1]
        runs.append((1, hi))
        h, w = cfg.img_size
        # a default size outside the range moves into it, as does a native size below any dynamic range (with a note
        # in the summary); a size the user chose that the range they chose leaves out is not moved without a word
        if (options.img_size is not None and min(h, w) >= cfg.dynamic_min_size
                and not (lo[0] <= h <= hi[0] and lo[1] <= w <= hi[1])):
            raise UserError(f"`img_size` {h}x{w} is outside the dynamic range {lo[0]}x{lo[1]} to {hi[0]}x{hi[1]}: "
                            "pass a size within it, or widen `min_size`/`max_size`")
    b, (h, w) = max(runs, key=lambda run: run[0] * cfg.activation_bytes(run[1]))
    smaller = ["`img_size`", *(["`max_size`"] if options.dynamic_size else []),
               *(["`max_batch`"] if b > max(defaults.EXPORT_PARITY_BATCH_SIZES) else [])]
    check_memory(b * cfg.activation_bytes((h, w)), f"one {h}x{w} image" if b == 1 else f"a batch of {b} {h}x{w} images",
                 f"choose a smaller {' or '.join(smaller)}", defaults.EXPORT_PEAK_ACTIVATIONS)
    preprocessing = (options.preprocessing or Preprocessing()).over(trained.preprocessing)
    cfg = preprocessing.apply(cfg)
    used = TrainingSettings(trained.model if known and variant is None else None,
                            trained.img_size if options.img_size is None else None,
                            trained.preprocessing.left_by(options.preprocessing) if trained.preprocessing else None,
                            labels=trained.labels if options.class_names is None else None,
                            window_size=trained.window_size if trained.window_size not in (None, base.window_size)
                            and fitted.window_size == trained.window_size else None)
    if used.labels:
        options = replace(options, class_names=used.labels)
    options = _format_for(options, out)
    out = Path(out or f"{cfg.name}.{'xml' if options.format == ExportFormat.OPENVINO else 'onnx'}")
    check_artifact_name(out, "ir" if options.format == ExportFormat.OPENVINO else "onnx")
    check_outputs([weights.path] if weights.path else [], output=out)
    on_step("build + load weights")
    model, sha = build_model(cfg, weights, dynamic=options.dynamic_size)
    release_checkpoint()  # the model holds the weights now; a library caller may export many checkpoints
    result = _export(model, sha, out, options, on_step)
    taken = f"from the checkpoint's {trained.source}: {used.describe()}" if used != TrainingSettings() else None
    taken = "; ".join(filter(None, [
        "torchvision's Swin, padded as torchvision pads" if torchvision else None,
        f"variant {from_tensors}, from the checkpoint's tensors" if from_tensors else None,
        f"window {tables}, from its tensors" if tables and tables != base.window_size else None, taken])) or None
    # timm evaluates (and picks its best checkpoint by) the EMA weights where it keeps them: say they were left
    ema = "the raw weights; the checkpoint also holds EMA weights (`ema` exports those)" \
        if trained.ema_weights and not weights.ema else None
    return replace(result, note="; ".join(filter(None, [result.note, taken, ema])) or None)


def export_onnx(model: SwinTransformer, weights_sha256: str, out: Path, options: ExportOptions,
                on_step: Callable[[str], None] = lambda step: None) -> ExportResult:
    """Export `model` (its weights, at its size) to `out` atomically as `options` say; a model built with the other
    geometry (static vs dynamic size) is rebuilt with the same weights. Raises GateFailed if onnxruntime disagrees
    with PyTorch."""
    options = _format_for(options, out)
    check_artifact_name(out, "ir" if options.format == ExportFormat.OPENVINO else "onnx")
    return _export(model, weights_sha256, Path(out), options, on_step)


def _format_for(options: ExportOptions, out: Path | None) -> ExportOptions:
    """`options` with its format decided: as given, else by the output's suffix (an .xml is an IR)."""
    if options.format is not None:
        return options
    return replace(options, format=ExportFormat.OPENVINO if out is not None and kind_of(out) == "ir" else ExportFormat.ONNX)


def _export(model: SwinTransformer, weights_sha256: str, out: Path, options: ExportOptions,
            on_step: Callable[[str], None]) -> ExportResult:
    if options.format == ExportFormat.ONNX:
        return _export_onnx(model, weights_sha256, out, options, on_step)
    import tempfile

    from .openvino_ir import to_openvino

    with tempfile.TemporaryDirectory() as tmp:
        result = _export_onnx(model, weights_sha256, Path(tmp) / out.with_suffix(".onnx").name, options, on_step)
        on_step("convert to OpenVINO IR")
        ir = to_openvino(result.path, out)
    return replace(result, path=ir.path, size_bytes=ir.path.stat().st_size + ir_weights(ir.path).stat().st_size,
                   ir_weights=ir.weights, note=" ".join(filter(None, [result.note, ir.note])) or None)


def _named(cfg, class_names: tuple[str, ...] | None):
    """`cfg` with `class_names` as its labels, which must name each of its classes."""
    if class_names is None:
        return cfg
    if not cfg.num_classes or cfg.backbone is not None:
        raise UserError("`class_names` names a classifier's classes, and this model has no classifier")
    if len(class_names) != cfg.num_classes:
        n = len(class_names)
        raise UserError(f"`class_names` gives {n} name{'s' * (n != 1)} for the model's {cfg.num_classes} classes: one "
                        "name per line, in class-index order")
    return replace(cfg, labels=tuple(class_names))


def _with_geometry(model: SwinTransformer, cfg, dynamic: bool) -> SwinTransformer:
    """`model` itself, or a twin with the same weights and the geometry the export needs (the parameters are the
    same for static and dynamic geometry; only how windows are indexed differs)."""
    if model.dynamic == dynamic and model.cfg == cfg:
        return model
    twin = SwinTransformer(cfg, dynamic=dynamic).eval()
    twin.load_state_dict(model.state_dict())
    return twin


def _parity_batches(options: ExportOptions) -> tuple[int, ...]:
    """The batch sizes export's parity check runs: a static batch's own; else EXPORT_PARITY_BATCH_SIZES, none past the
    max batch. Not the max batch itself: the graph takes the batch as -1 in every Reshape, so a batch of 3 proves the
    axis dynamic as well as a server's max batch would (swin_b at 256 took 3.6 min and 9.3 GiB), and verify gates
    batch consistency at the batch sizes asked for."""
    if options.fixed_batch:
        return (options.fixed_batch,)
    cap = options.max_batch or max(defaults.EXPORT_PARITY_BATCH_SIZES)
    return tuple(sorted({min(b, cap) for b in defaults.EXPORT_PARITY_BATCH_SIZES}))


def _largest_batch(options: ExportOptions) -> int:
    """The largest batch an export runs: its static batch, else its parity check's largest (1 without one)."""
    if options.fixed_batch:
        return options.fixed_batch
    return max(_parity_batches(options)) if options.verify else 1


ONNX_FILE_LIMIT = 2**31 - 2**26  # protobuf's 2 GiB, less room for the graph itself


def _check_file_size(model: SwinTransformer, img_size: tuple[int, int]) -> None:
    """Refuse a fixed-size export whose constants would not fit in one ONNX file: its attention biases and masks grow
    with the windows (swinv2_t_w16 at 2560x2560 holds 2.8 GiB of them), and past 2 GiB the exporters write external
    data files, fail, or run out of memory trying."""
    weights, biases = model.frozen_bytes()
    if weights + biases > ONNX_FILE_LIMIT:
        h, w = img_size
        raise UserError(f"at {h}x{w} the ONNX would hold {(weights + biases) / 2**30:.1f} GiB of weights, attention "
                        f"biases and masks ({biases / 2**30:.1f} GiB of biases and masks), past the 2 GiB an ONNX file "
                        "can hold: export with `dynamic_size`, which computes the biases at run time, or at a smaller "
                        "`img_size`")


def _export_onnx(model: SwinTransformer, weights_sha256: str, out: Path, options: ExportOptions,
                 on_step: Callable[[str], None]) -> ExportResult:
    cfg, size_range, note = model.cfg, None, None
    if options.dynamic_size:
        native = cfg.img_size
        cfg, size_range = cfg.for_dynamic(options.min_size, options.max_size)
        if cfg.img_size != native:
            note = (f"{native[0]}x{native[1]} is below the dynamic range (every stage needs a full window): "
                    "export it without `dynamic_size`")
    model = _with_geometry(model, cfg, options.dynamic_size)
    start = time.perf_counter()
    model = model.eval().freeze()
    if not options.dynamic_size:
        _check_file_size(model, cfg.img_size)
    module = output_module(model, options.features)
    outputs = module.output_names()
    batch = options.fixed_batch or 1
    info = ArtifactInfo.for_config(_named(cfg, options.class_names), weights_sha256, options.opset, options.max_batch,
                                   options.static_batch,
                                   outputs=tuple(outputs), input_format=options.input_format,
                                   channels_last=options.channels_last,
                                   dynamic_size=None if size_range is None else (*size_range[0], *size_range[1]))
    traced = PixelInput(module, cfg.mean, cfg.std, options.channels_last) if info.pixels else module
    example = torch.zeros(info.input_shape(batch, cfg.img_size), dtype=torch.uint8 if info.pixels else torch.float32)
    with atomic_output(out, suffix=".onnx") as tmp:
        on_step("export")
        with torch.no_grad():
            exporter = _torch_export(traced, example, tmp, options.opset, options.static_batch, options.exporter,
                                     outputs, options.dynamic_size, options.channels_last)
        proto = onnx.load(str(tmp))
        if options.simplifier != Simplifier.NONE:
            on_step("simplify")
            proto = simplify(proto, options.simplifier)
        problems = graph_problems(proto)
        if problems:  # a bug in swin-deploy, not a user error: say what slipped in
            raise RuntimeError(f"exported graph is not opset-safe: {', '.join(problems[:3])}")
        write_info(proto, info)
        _name_output_dims(proto, info.output_dims())
        proto.producer_name, proto.doc_string = "swin-deploy", f"{cfg.name} exported by swin-deploy {info.version}"
        onnx.save(proto, str(tmp))
        on_step("check")
        onnx.checker.check_model(str(tmp), full_check=True)
        delta = None
        if options.verify:
            on_step("verify")
            delta = onnx_parity(tmp, module, info, _parity_batches(options), check_sizes(cfg, size_range))
            if not delta <= EXPORT_PARITY_REL:
                raise GateFailed(f"onnxruntime output differs from PyTorch by {delta:.2e} x max|logits| "
                                 f"(allowed {EXPORT_PARITY_REL:.0e}); the ONNX was not written")
        size = tmp.stat().st_size
    rng = size_range
    described = "x".join(map(str, cfg.img_size)) if rng is None else \
        f"{rng[0][0]}x{rng[0][1]} to {rng[1][0]}x{rng[1][1]} (dynamic)"
    if info.pixels:
        described += f", uint8 pixels {'NHWC' if info.channels_last else 'NCHW'} (normalisation in the graph)"
    return ExportResult(path=out, opset=options.opset, nodes=len(proto.graph.node), size_bytes=size,
                        parity_delta=delta, seconds=time.perf_counter() - start, exporter=exporter,
                        layernorm_fused=any(n.op_type == "LayerNormalization" for n in proto.graph.node),
                        outputs=outputs, input_size=described, note=note)
