"""Activation statistics from calibration images: the one pass both precisions use.

`calibrate` runs onnxruntime's calibrators (MinMax, Entropy, Percentile) over the images: INT8 takes the
ranges of the linear layers' tensors, FP16 the min/max of every float tensor (its overflow check).
The calibration cache is plain JSON, {"model_sha256", "method", "percentile", "images", "ranges":
{tensor: [min, max]}}, written next to the INT8 output and reusable; a cache made for another model
or with another method is refused.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, create_calibrator
from onnxruntime.quantization.calibrate import TensorData, TensorsData

from swin_deploy import defaults
from swin_deploy.enums import CalibMethod
from swin_deploy.errors import UserError

from .options import LINEAR_OPS, check_percentile

METHODS = {CalibMethod.MINMAX: CalibrationMethod.MinMax, CalibMethod.ENTROPY: CalibrationMethod.Entropy,
           CalibMethod.PERCENTILE: CalibrationMethod.Percentile}


@dataclass
class Ranges:
    model_sha256: str
    method: CalibMethod
    percentile: float | None
    images: int
    ranges: dict[str, tuple[float, float]]
    run_images: int = 0  # images per calibration run, where memory cut the batch smaller (not cached); 0: not cut

    @property
    def label(self) -> str:
        """The method as a cache names it: 'minmax', 'percentile 99.999', ..."""
        return method_label(self.method, self.percentile)

    def peaks(self) -> dict[str, float]:
        """Largest |value| of each calibrated tensor, by tensor name."""
        return {name: max(abs(lo), abs(hi)) for name, (lo, hi) in self.ranges.items()}

    def tensors_data(self) -> TensorsData:
        data = {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in self.ranges.items()}
        return TensorsData(METHODS[self.method], data)

    def save(self, path: Path) -> None:
        from swin_deploy.fileio import atomic_output

        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps({"model_sha256": self.model_sha256, "method": str(self.method),
                                       "percentile": self.percentile, "images": self.images,
                                       "ranges": {k: list(v) for k, v in self.ranges.items()}}, indent=1))

    @classmethod
    def load(cls, path: Path, model_sha256: str) -> Ranges:
        try:
            raw = json.loads(Path(path).read_text())
            cache = cls(raw["model_sha256"], CalibMethod(raw["method"]), raw.get("percentile"), int(raw["images"]),
                        {k: (float(v[0]), float(v[1])) for k, v in raw["ranges"].items()})
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            raise UserError(f"{path} is not a swin-deploy calibration cache ({type(e).__name__})") from e
        if cache.model_sha256 != model_sha256:
            raise UserError(f"calibration cache {path} was made for another model (sha256 {cache.model_sha256[:12]}, "
                            f"this one {model_sha256[:12]}): drop `calib_cache` to calibrate again")
        return cache


class _ListReader:
    def __init__(self, items: list[dict]):
        self.items = iter(items)

    def get_next(self) -> dict | None:
        return next(self.items, None)


def method_label(method: CalibMethod, percentile: float | None) -> str:
    return f"percentile {percentile}" if method == CalibMethod.PERCENTILE else str(method)


def calibrate(model: onnx.ModelProto, reader, method: CalibMethod = CalibMethod.MINMAX,
              percentile: float = defaults.PERCENTILE, model_sha256: str = "",
              op_types: tuple[str, ...] | None = LINEAR_OPS) -> Ranges:
    """Run the calibrator over every batch the reader yields: ranges of the inputs and outputs of `op_types`
    nodes (None: of every float tensor)."""
    method = CalibMethod.parse(method, "method")
    if method == CalibMethod.PERCENTILE:
        check_percentile(percentile)
    extra = {"percentile": percentile, "symmetric": False} if method == CalibMethod.PERCENTILE else \
        {"symmetric": False} if method == CalibMethod.ENTROPY else {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(model, str(src))
        calibrator = create_calibrator(src, op_types_to_calibrate=list(op_types) if op_types else None,
                                       augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=METHODS[method], extra_options=extra)
        # onnxruntime's calibrators keep every intermediate output of every image until collect_data()
        # returns (entropy on 512 swin_t images peaked above 24 GB and was killed); repeated calls merge their
        # results, so feed them a chunk at a time, in runs that fit in memory. They also print progress to stdout;
        # library code must not.
        batches = iter(reader.get_next, None)
        first = next(batches)  # the reader raises when it has no readable image
        fit = _images_that_fit(calibrator.infer_session, first, whole=bool(reader.fixed))
        per_run = reader.batch_size if reader.fixed else min(reader.batch_size, fit)
        runs = _recut(itertools.chain([first], batches), per_run)
        with contextlib.redirect_stdout(io.StringIO()):
            while chunk := list(itertools.islice(runs, max(1, min(defaults.CALIB_CHUNK_IMAGES, fit) // per_run))):
                calibrator.collect_data(_ListReader(chunk))
            data = calibrator.compute_data()
    ranges = {k: (float(np.asarray(v.range_value[0]).min()), float(np.asarray(v.range_value[1]).max()))
              for k, v in data.data.items()}
    return Ranges(model_sha256, method, percentile if method == CalibMethod.PERCENTILE else None, reader.used, ranges,
                  per_run if per_run < reader.batch_size else 0)


def _images_that_fit(session, batch: dict[str, np.ndarray], whole: bool) -> int:
    """How many images one calibration run may take: what one image's run adds to this process's memory
    (onnxruntime's arena keeps its high-water mark; the calibrated outputs are still held when it is read) against
    CALIB_MEMORY_SHARE of the memory available then. `whole`: a static-batch model runs the batch as it is."""
    import psutil

    process = psutil.Process()
    before = process.memory_info().rss
    images = len(next(iter(batch.values()))) if whole else 1
    outputs = session.run(None, {k: v[:images] for k, v in batch.items()})
    per_image = max((process.memory_info().rss - before) // images, 1)
    del outputs
    return max(1, int(psutil.virtual_memory().available * defaults.CALIB_MEMORY_SHARE // per_image))


def _recut(batches, size: int):
    """The reader's batches cut into runs of at most `size` images."""
    for batch in batches:
        n = len(next(iter(batch.values())))
        for start in range(0, n, size):
            yield {k: v[start:start + size] for k, v in batch.items()}
