"""Which Swin blocks an INT8 loses its accuracy in, and which to keep in float so it stays within the INT8 gates.

An INT8 that fails verify's gates usually fails in a few places (an activation with outlier channels that one per-tensor
int8 scale cannot hold beside the rest). Polygraphy's `debug precision` and Model Optimizer's AutoQuantize search for
those layers on TensorRT; this does it in the ONNX, on the CPU, with one calibration: for each block (a Swin block, a
patch merging, the patch embedding) write the INT8 graph with only that block's Q/DQ, run it and the float32 model on
calibration images with onnxruntime, and rank the blocks by how far their INT8 moves the output. Then, where the whole
INT8 is outside the gates, keep the ranked blocks in float one more at a time, worst first, until it is within them;
then put each kept block but the last back into INT8 in turn, the last-ranked first, and leave it there where the whole
stays within them (each block was ranked alone, and with the later ones in float an earlier one may be needed no more):
what is left is the `exclude` to quantize with (`quantize --auto-exclude` does it in one step).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from swin_deploy import defaults
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.compare import Comparison, gate
from swin_deploy.tolerances import Thresholds

from .int8 import quantize_int8
from .options import Int8Options
from .placement import select_nodes
from .ranges import Ranges

# a block's node-name prefix, as torch.onnx names nodes after their modules: a Swin block or a patch merging in
# swin-deploy's and timm's exports (/layers/layers.1/blocks/blocks.0, /layers/layers.1/downsample), transformers'
# (/swin/encoder/layers.0/blocks.0) and torchvision's (/features/features.1/features.1.0)
BLOCK = re.compile(r"^(.*?/(?:blocks\.\d+|downsample|features\.\d+\.\d+))/")


@dataclass(frozen=True)
class BlockDrift:
    block: str  # the `exclude` glob that keeps the block in float
    nodes: int  # the nodes with Q/DQ in the graph measured
    max_rel_delta: float  # of the outputs (the worst output), against the float32 model, on the images measured
    min_cosine: float
    top1_agreement: float | None  # a classifier's
    outside: tuple[str, ...] = ()  # the gated metrics outside the limits (compare.gate's names)

    @property
    def within(self) -> bool:
        return not self.outside


@dataclass
class SensitivityResult:
    model: Path
    images: int  # images the outputs were compared on
    compared_on: str  # which they are: "held-out images of the calibration folder", ...
    held_out: bool | None  # whether none of them made the ranges (None: not known)
    calib_images: int  # the ranges' images
    limits: Thresholds  # the gates a block or the whole INT8 is measured against
    whole: BlockDrift  # every block quantized: what `quantize` writes with these options
    # one block quantized at a time: those outside the limits first, then by max rel delta, the worst first
    blocks: list[BlockDrift] = field(default_factory=list)
    # where `whole` is outside `limits`: the whole INT8 again after each further ranked block is kept in float (`block`
    # names the block added), until one is within them
    search: list[BlockDrift] = field(default_factory=list)
    # where the search got within them: the whole INT8 again with each kept block but the last back in INT8 in turn
    # (`block` names it), the last-ranked first; one within the limits stays in INT8
    back: list[BlockDrift] = field(default_factory=list)
    seconds: float = 0.0

    def describe_images(self) -> str:
        return f"{self.images} {self.compared_on}"

    def breaking(self) -> list[BlockDrift]:
        """The blocks whose INT8 alone breaks the limits, worst first."""
        return [b for b in self.blocks if not b.within]

    @property
    def found(self) -> bool:
        """Whether the whole INT8, or it with `keep_float` in float, is within the limits (short of every block)."""
        return self.kept.within

    @property
    def put_back(self) -> list[BlockDrift]:
        """The steps of `back` whose block went back into INT8 (the whole stayed within the limits)."""
        return [step for step in self.back if step.within]

    @property
    def keep_float(self) -> list[str]:
        """The blocks to keep in float (their `exclude` globs) for an INT8 within the limits: those the search kept
        that could not go back into INT8; none where the whole INT8 is within them already."""
        returned = {step.block for step in self.put_back}
        return [step.block for step in self.search if step.block not in returned]

    @property
    def kept(self) -> BlockDrift:
        """The INT8 with `keep_float` in float: what `quantize --auto-exclude` writes."""
        return (self.put_back or self.search or [self.whole])[-1]

    def as_dict(self) -> dict:
        return {"model": str(self.model), "images": self.images, "compared_on": self.compared_on, "held_out": self.held_out,
                "calib_images": self.calib_images,
                "limits": self.limits.as_dict(),
                "whole": asdict(self.whole), "blocks": [asdict(b) for b in self.blocks],
                "keep_float": self.keep_float, "search": [asdict(s) for s in self.search],
                "back": [asdict(b) for b in self.back], "seconds": self.seconds}


def block_of(node_name: str) -> str:
    """The block a node belongs to, as the `exclude` glob that matches its nodes alone; outside the blocks, the node's
    module (the patch embedding, torchvision's patch mergings, the head); the node itself where its name has no path."""
    found = BLOCK.match(node_name)
    if found:
        return found.group(1) + "/*"
    module = node_name.rpartition("/")[0]
    return module + "/*" if module else node_name


def measure(model: onnx.ModelProto, ranges: Ranges, int8: Int8Options, inputs: list[dict[str, np.ndarray]],
            limits: Thresholds, on_step: Callable[[str, int, int], None], rank_within: bool = True,
            fp16_keep_above: float = defaults.FP16_KEEP_ABOVE
            ) -> tuple[BlockDrift, list[BlockDrift], list[BlockDrift], list[BlockDrift]]:
    """The whole INT8 of `model` (its `ranges`, `int8`'s settings), each block's INT8 alone, worst first (not where the
    whole is within `limits`, unless `rank_within`), the search that keeps ranked blocks in float until the whole
    is within them, and the kept blocks put back into INT8 in turn (SensitivityResult.search, .back); each against
    float32 on `inputs`."""

    def outputs(graph: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
        with OnnxRuntimeRunner(graph.SerializeToString()) as runner:
            return [runner.infer(x) for x in inputs]

    reference = outputs(model)
    placement = select_nodes(model, int8.attention, int8.quantize_head, int8.exclude, int8.placement)
    blocks = list(dict.fromkeys(block_of(name) for name in placement.quantize))

    def drift(in_float: list[str], name: str) -> BlockDrift:
        qmodel, chosen = quantize_int8(model, ranges, replace(int8, exclude=[*int8.exclude, *in_float]), fp16_keep_above)
        compared = Comparison()
        for ref, cand in zip(reference, outputs(qmodel)):
            compared.update(ref, cand)
        found = compared.metrics()
        worst_rel = max(v for k, v in found.items() if k.endswith("max_rel_delta"))
        worst_cos = min(v for k, v in found.items() if k.endswith("min_cosine"))
        outside = tuple(c.metric for c in gate(found, limits) if not c.passed)
        return BlockDrift(name, len(chosen.quantize), worst_rel, worst_cos, found.get("top1_agreement"), outside)

    step, steps = "quantizing one block at a time", len(blocks) + 1
    on_step(step, 0, steps)
    whole = drift([], "all")
    on_step(step, 1, steps)
    ranked: list[BlockDrift] = []
    if whole.within and not rank_within:
        return whole, ranked, [], []
    for block in blocks:
        ranked.append(drift([b for b in blocks if b != block], block))
        on_step(step, 1, steps)
    ranked.sort(key=lambda b: (b.within, -b.max_rel_delta, b.min_cosine))  # those outside the gates first
    if whole.within:
        return whole, ranked, [], []
    return whole, ranked, *search_float([b.block for b in ranked], drift, on_step)


def search_float(ranked: list[str], drift: Callable[[list[str], str], BlockDrift],
                 on_step: Callable[[str, int, int], None] = lambda what, n, total: None
                 ) -> tuple[list[BlockDrift], list[BlockDrift]]:
    """The blocks to keep in float for a whole INT8 within the limits, given the blocks `ranked` worst first and
    `drift(in_float, block)`, the whole INT8 measured with the blocks `in_float` kept in float (`block` names the step).
    Returns the search (one more ranked block in float at a time, until the whole is within the limits; it stops one
    short of every block in float, which is the float32 model) and, where it got there, each kept block but the last
    put back into INT8 in turn, the last-ranked first, staying there where the whole is still within them
    (SensitivityResult.search and .back)."""
    step = "keeping the worst blocks in float"
    on_step(step, 0, len(ranked))
    search: list[BlockDrift] = []
    for k in range(1, len(ranked)):
        search.append(drift(ranked[:k], ranked[k - 1]))
        on_step(step, 1, len(ranked))
        if search[-1].within:
            break
    back: list[BlockDrift] = []
    if search and search[-1].within and len(search) > 1:
        # the last block kept is needed (without it the whole was outside); an earlier one, ranked alone, may not be
        # with the later ones in float, and each block in float gives back part of the INT8's speed
        step, kept = "putting kept blocks back into INT8", [s.block for s in search]
        on_step(step, 0, len(kept) - 1)
        for block in reversed(kept[:-1]):
            back.append(drift([b for b in kept if b != block], block))
            on_step(step, 1, len(kept) - 1)
            if back[-1].within:
                kept.remove(block)
    return search, back
