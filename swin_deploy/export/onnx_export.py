"""Native Swin model -> ONNX with a symbolic batch, opset-safe windows, metadata, checks and parity.

Exporter choice (measured on swin_t, torch 2.14, opset 17/18, see benchmarks/export_vs_timm.py):
the TorchScript-based exporter (`dynamo=False`) gives a graph of the same size after simplification
(363 vs 375 nodes), exports in a third of the time (4.6 s vs 11.5 s) and supports opsets 13-20,
where the torch.export path starts at 18 and needs the version converter below that. The
TorchScript path is deprecated, so `exporter="auto"` falls back to `dynamo=True` when the
TorchScript exporter is unavailable or fails; both are covered by tests.
"""

from __future__ import annotations

import collections
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from ..artifact import ArtifactInfo, write_info
from ..errors import GateFailed, UserError
from ..fileio import atomic_output
from ..models.swin import SwinTransformer
from ..tolerances import EXPORT_PARITY_REL

MIN_OPSET = 13
DEFAULT_OPSET = 17  # first opset with LayerNormalization
FORBIDDEN_OPS = {"If", "Loop", "Scan", "Roll"}


def max_opset() -> int:
    """Newest opset both the TorchScript exporter and the installed onnx know."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as torch_max
    except ImportError:  # pragma: no cover - depends on the torch release
        torch_max = 20
    return min(torch_max, onnx.defs.onnx_opset_version())


@dataclass
class ExportOptions:
    opset: int = DEFAULT_OPSET
    static_batch: bool = False
    max_batch: int | None = None
    simplify: bool = True
    verify: bool = True
    exporter: str = "auto"  # auto | torchscript | dynamo
    features: bool = False  # output the stage feature maps instead of logits
    dynamic_size: tuple[tuple[int, int], tuple[int, int]] | None = None  # (min H, W), (max H, W)


class FeatureMaps(torch.nn.Module):
    """Export wrapper: (B, 3, H, W) -> stage1..stageN feature maps, NCHW."""

    def __init__(self, model: SwinTransformer):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.forward_stages(x))


def output_names(model: SwinTransformer, features: bool) -> list[str]:
    return [f"stage{i + 1}" for i in range(len(model.cfg.depths))] if features else ["logits"]


def check_sizes(sizes: list[tuple[int, int]], options: ExportOptions, cfg) -> list[tuple[int, int]]:
    """Sizes the parity check runs at: the model's size, and for a dynamic export also the range's ends
    and a non-square size between them."""
    if options.dynamic_size is None:
        return sizes
    (lo_h, lo_w), (hi_h, hi_w) = options.dynamic_size
    s = cfg.stride
    mid = ((lo_h + hi_h) // 2 // s * s, (lo_w + 3 * hi_w) // 4 // s * s)
    return list(dict.fromkeys([*sizes, (lo_h, lo_w), mid, (hi_h, hi_w)]))


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
    op_counts: dict[str, int]
    outputs: list[str]


def check_options(options: ExportOptions) -> None:
    top = max_opset()
    if not MIN_OPSET <= options.opset <= top:
        raise UserError(f"opset {options.opset} is not supported: choose an opset from {MIN_OPSET} to {top}")
    if options.max_batch is not None and options.max_batch < 1:
        raise UserError("--max-batch must be at least 1")
    if options.exporter not in ("auto", "torchscript", "dynamo"):
        raise UserError(f"unknown exporter '{options.exporter}': choose auto, torchscript or dynamo")


def _torch_export(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int, static: bool,
                  exporter: str, outputs: list[str], dynamic_size: bool) -> str:
    """Run one of torch's exporters; returns the one that worked."""
    axes: dict[str, dict[int, str]] = {}
    if not static:
        axes = {"input": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    if dynamic_size:
        axes.setdefault("input", {}).update({2: "height", 3: "width"})
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
            except Exception:
                if exporter == "torchscript" or dynamic_size:
                    raise
        if opset < 18:
            # onnx's version converter has no Split adapter from 18 down, so the torch.export path
            # cannot produce these opsets for Swin
            raise UserError(f"the dynamo exporter writes opset 18 or newer, not {opset}: pass --opset 18")
        if dynamic_size:
            raise UserError("--dynamic-size needs the TorchScript exporter: drop --exporter dynamo")
        dynamic = None if static else {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
        program = torch.onnx.export(model, (example,), None, input_names=["input"], output_names=outputs,
                                    opset_version=opset, dynamo=True, dynamic_shapes=dynamic, verbose=False)
        program.save(str(path), external_data=False)
        return "dynamo"


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant folding, dead-node removal and shape-op cleanup by onnxslim."""
    import onnxslim

    return onnxslim.slim(model)


def graph_problems(model: onnx.ModelProto) -> list[str]:
    """Ops that break opset-safety: control flow, Roll, or anything outside the default domain."""
    problems = []
    for node in model.graph.node:
        if node.op_type in FORBIDDEN_OPS:
            problems.append(f"{node.op_type} node {node.name}")
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.domain}::{node.op_type} node {node.name}")
    return problems


def onnx_parity(path: Path, model: torch.nn.Module, batch_sizes: tuple[int, ...], sizes: list[tuple[int, int]],
                seed: int = 0) -> float:
    """Max relative |onnxruntime - torch| over every output, on seeded random inputs at each batch size and size."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for size in sizes:
        for b in batch_sizes:
            x = torch.randn(b, 3, *size, generator=gen)
            with torch.no_grad():
                ref = model(x)
            refs = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
            for out, r in zip(session.run(None, {"input": x.numpy()}), refs):
                worst = max(worst, float(np.abs(out - r).max() / max(np.abs(r).max(), 1e-12)))
    return worst


def export_onnx(model: SwinTransformer, weights_sha256: str, out: Path, options: ExportOptions,
                on_step: Callable[[str], None] = lambda step: None) -> ExportResult:
    """Export `model` to `out` atomically. Raises GateFailed if onnxruntime disagrees with PyTorch."""
    check_options(options)
    cfg = model.cfg
    if options.dynamic_size is not None:
        cfg.check_dynamic_range(*options.dynamic_size)
        if not model.dynamic:
            raise ValueError("a --dynamic-size export needs SwinTransformer(cfg, dynamic=True)")
    start = time.perf_counter()
    model = model.eval().freeze()
    module = FeatureMaps(model) if options.features else model
    outputs = output_names(model, options.features)
    batch = options.max_batch if options.static_batch and options.max_batch else 1
    example = torch.zeros(batch, 3, *cfg.img_size)
    with atomic_output(out, suffix=".onnx") as tmp:
        on_step("export")
        with torch.no_grad():
            exporter = _torch_export(module, example, tmp, options.opset, options.static_batch, options.exporter,
                                     outputs, options.dynamic_size is not None)
        proto = onnx.load(str(tmp))
        if options.simplify:
            on_step("simplify")
            proto = simplify(proto)
        problems = graph_problems(proto)
        if problems:  # a bug in swin-deploy, not a user error: say what slipped in
            raise RuntimeError(f"exported graph is not opset-safe: {', '.join(problems[:3])}")
        info = ArtifactInfo.for_config(cfg, weights_sha256, options.opset, options.max_batch, options.static_batch)
        info.outputs = tuple(outputs)
        if options.dynamic_size is not None:
            info.dynamic_size = (*options.dynamic_size[0], *options.dynamic_size[1])
        write_info(proto, info)
        proto.producer_name, proto.doc_string = "swin-deploy", f"{cfg.name} exported by swin-deploy {info.version}"
        onnx.save(proto, str(tmp))
        on_step("check")
        onnx.checker.check_model(str(tmp), full_check=True)
        delta = None
        if options.verify:
            on_step("verify")
            extra = [options.max_batch] if options.max_batch else []
            sizes = (batch,) if options.static_batch else tuple(sorted({1, 3, *extra}))
            delta = onnx_parity(tmp, module, sizes, check_sizes([tuple(cfg.img_size)], options, cfg))
            if not delta <= EXPORT_PARITY_REL:
                raise GateFailed(f"onnxruntime output differs from PyTorch by {delta:.2e} x max|logits| "
                                 f"(allowed {EXPORT_PARITY_REL:.0e}); the ONNX was not written")
        size = tmp.stat().st_size
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    return ExportResult(path=out, opset=options.opset, nodes=len(proto.graph.node), size_bytes=size,
                        parity_delta=delta, seconds=time.perf_counter() - start, exporter=exporter,
                        layernorm_fused="LayerNormalization" in ops, op_counts=dict(ops), outputs=outputs)
