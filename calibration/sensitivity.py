"""Which Swin block an INT8 loses its accuracy in: each block quantized alone, against the float32 model.

An INT8 that fails verify's gates usually fails in a few places (an activation with outlier channels that one per-tensor
int8 scale cannot hold beside the rest). Polygraphy's `debug precision` and Model Optimizer's AutoQuantize search for
those layers on TensorRT; this does it in the ONNX, on the CPU: calibrate once, then for each block (a Swin block, a
patch merging, the patch embedding) write the INT8 graph with only that block's Q/DQ, run it and the float32 model on
calibration images with onnxruntime, and rank the blocks by how far their INT8 moves the output. The worst are the
ones to keep in float with `exclude` (their glob is the ranking's `block`), then quantize and verify again.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from swin_deploy import defaults
from swin_deploy.artifact import load_onnx, read_info
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.compare import Comparison
from swin_deploy.data import list_images
from swin_deploy.enums import Precision
from swin_deploy.errors import UserError, require_at_least
from swin_deploy.fileio import sha256_file
from swin_deploy.precision.graph import io_names
from swin_deploy.tolerances import Thresholds, thresholds_for

from .convert import Progress, int8_ranges, refuse_quantized
from .int8 import quantize_int8
from .options import QuantizeOptions
from .placement import select_nodes
from .reader import ImageReader

# a block's node-name prefix in the graphs swin-deploy exports (its modules' names): stage i's j-th block or its patch
# merging; any other name groups under its first path component (/patch_embed, the head)
BLOCK = re.compile(r"^(/layers/layers\.\d+/(?:blocks/blocks\.\d+|downsample))/")


@dataclass(frozen=True)
class BlockDrift:
    block: str  # the `exclude` glob that keeps the block in float
    nodes: int  # its nodes with Q/DQ
    max_rel_delta: float  # of the outputs, against the float32 model, on the images measured
    min_cosine: float

    def within(self, limits: Thresholds) -> bool:
        return self.max_rel_delta <= limits.max_rel_delta and self.min_cosine >= limits.min_cosine


@dataclass
class SensitivityResult:
    model: Path
    images: int  # calibration images the outputs were compared on
    calib_images: int  # the ranges' images
    whole: BlockDrift  # every block quantized: what `quantize` writes with these options
    blocks: list[BlockDrift] = field(default_factory=list)  # one block quantized at a time, the worst first
    seconds: float = 0.0

    def breaking(self, limits: Thresholds | None = None) -> list[BlockDrift]:
        """The blocks whose INT8 alone breaks `limits` (default: verify's INT8 delta and cosine gates), worst first."""
        limits = limits or thresholds_for(Precision.INT8)
        return [b for b in self.blocks if not b.within(limits)]

    def whole_within(self, limits: Thresholds | None = None) -> bool:
        return self.whole.within(limits or thresholds_for(Precision.INT8))

    def as_dict(self) -> dict:
        return {"model": str(self.model), "images": self.images, "calib_images": self.calib_images,
                "whole": asdict(self.whole), "blocks": [asdict(b) for b in self.blocks], "seconds": self.seconds}


def block_of(node_name: str) -> str:
    """The block a node belongs to, as the `exclude` glob that matches its nodes alone."""
    found = BLOCK.match(node_name)
    prefix = found.group(1) if found else "/" + node_name.lstrip("/").split("/")[0]
    return prefix + "/*"


def sensitivity(src: Path, options: QuantizeOptions, images: int = defaults.SENSITIVITY_IMAGES,
                on_progress: Progress = lambda s, n, t: None) -> SensitivityResult:
    """Rank the blocks of the fp32 ONNX `src` by how far quantizing each alone (with `options`' INT8 settings and
    ranges) moves its outputs on `images` of the calibration images. Writes nothing (a `calib_cache` is read)."""
    start = time.perf_counter()
    if options.precision != Precision.INT8:
        raise UserError("`sensitivity` ranks the blocks of an INT8: pass `precision` int8")
    require_at_least("images", images, 1)
    src = Path(src)
    model = load_onnx(src)
    info = read_info(src, options.variant)
    refuse_quantized(model, info, src)
    if options.calib_data is None:
        raise UserError("`sensitivity` runs the blocks on calibration images: pass `calib_data` DIR")
    ranges = int8_ranges(model, info, options, sha256_file(src), on_progress)
    int8 = options.int8
    placement = select_nodes(model, int8.attention, int8.quantize_head, int8.exclude, int8.placement)
    blocks = list(dict.fromkeys(block_of(name) for name in placement.quantize))

    sample = list_images(options.calib_data, limit=min(images, options.calib_images), seed=options.seed)
    reader = ImageReader(sample, info, options.calib_batch, lambda n: on_progress("reading images", n, len(sample)),
                         options.calib_size, options.workers, io_names(model.graph)[0][0])
    inputs = list(reader.batches())

    def outputs(graph: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
        with OnnxRuntimeRunner(graph.SerializeToString()) as runner:
            return [runner.infer(x) for x in inputs]

    reference = outputs(model)

    def drift(exclude: list[str], name: str) -> BlockDrift:
        qmodel, chosen = quantize_int8(model, ranges, replace(int8, exclude=exclude))
        compared = Comparison()
        for ref, cand in zip(reference, outputs(qmodel)):
            compared.update(ref, cand)
        found = compared.metrics()
        worst_rel = max(v for k, v in found.items() if k.endswith("max_rel_delta"))
        worst_cos = min(v for k, v in found.items() if k.endswith("min_cosine"))
        return BlockDrift(name, len(chosen.quantize), worst_rel, worst_cos)

    steps = len(blocks) + 1
    on_progress("quantizing one block at a time", 0, steps)
    whole = drift(int8.exclude, "all")
    on_progress("quantizing one block at a time", 1, steps)
    ranked = []
    for block in blocks:
        others = [b for b in blocks if b != block]
        ranked.append(drift([*int8.exclude, *others], block))
        on_progress("quantizing one block at a time", 1, steps)
    ranked.sort(key=lambda b: (-b.max_rel_delta, b.min_cosine))
    return SensitivityResult(src, reader.used, ranges.images, whole, ranked, time.perf_counter() - start)
