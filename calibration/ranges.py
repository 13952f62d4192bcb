"""Activation ranges from calibration data, and the calibration cache that stores them.

Ranges come from onnxruntime's calibrators (MinMax, Entropy, Percentile); the cache is plain JSON,
{"model_sha256", "method", "percentile", "images", "ranges": {tensor: [min, max]}}, written next to the
output and reusable with --calib-cache. A cache made for another model is refused.
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

from swin_deploy.errors import UserError

CHUNK_IMAGES = 16
METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}


@dataclass
class Ranges:
    model_sha256: str
    method: str
    percentile: float | None
    images: int
    ranges: dict[str, tuple[float, float]]

    def tensors_data(self) -> TensorsData:
        data = {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in self.ranges.items()}
        return TensorsData(METHODS[self.method], data)

    def save(self, path: Path) -> None:
        from swin_deploy.fileio import atomic_output

        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps({"model_sha256": self.model_sha256, "method": self.method,
                                       "percentile": self.percentile, "images": self.images,
                                       "ranges": {k: list(v) for k, v in self.ranges.items()}}, indent=1))

    @classmethod
    def load(cls, path: Path, model_sha256: str) -> Ranges:
        try:
            raw = json.loads(Path(path).read_text())
            cache = cls(raw["model_sha256"], raw["method"], raw.get("percentile"), int(raw["images"]),
                        {k: (float(v[0]), float(v[1])) for k, v in raw["ranges"].items()})
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            raise UserError(f"{path} is not a swin-deploy calibration cache ({type(e).__name__})") from e
        if cache.model_sha256 != model_sha256:
            raise UserError(f"calibration cache {path} was made for another model (sha256 {cache.model_sha256[:12]}, "
                            f"this one {model_sha256[:12]}): drop --calib-cache to calibrate again")
        return cache


class _ListReader:
    def __init__(self, items: list[dict]):
        self.items = iter(items)

    def get_next(self) -> dict | None:
        return next(self.items, None)


def check_method(method: str, percentile: float) -> str:
    """A one-line error for an unknown method or a percentile out of range; returns the method as a cache names it."""
    if method not in METHODS:
        raise UserError(f"unknown calibration method '{method}': choose {', '.join(METHODS)}")
    if method == "percentile" and not 0 < percentile <= 100:
        raise UserError(f"--percentile must be in (0, 100], not {percentile}")
    return f"percentile {percentile}" if method == "percentile" else method


def calibrate(model: onnx.ModelProto, reader, method: str, percentile: float, model_sha256: str) -> Ranges:
    """Run the calibrator over every batch the reader yields; ranges of MatMul/Conv/Gemm inputs and outputs."""
    check_method(method, percentile)
    extra = {"percentile": percentile, "symmetric": False} if method == "percentile" else {}
    if method == "entropy":
        extra = {"symmetric": False}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(model, str(src))
        calibrator = create_calibrator(src, op_types_to_calibrate=["MatMul", "Conv", "Gemm"],
                                       augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=METHODS[method], extra_options=extra)
        # onnxruntime's calibrators keep every intermediate output of every image until collect_data()
        # returns (entropy on 512 swin_t images peaked above 24 GB and was killed); repeated calls merge their results,
        # so feed them CHUNK_IMAGES at a time. They also print progress to stdout; library code must not.
        batches = iter(reader.get_next, None)
        with contextlib.redirect_stdout(io.StringIO()):
            while chunk := list(itertools.islice(batches, max(1, CHUNK_IMAGES // reader.batch_size))):
                calibrator.collect_data(_ListReader(chunk))
            data = calibrator.compute_data()
    ranges = {k: (float(np.asarray(v.range_value[0]).min()), float(np.asarray(v.range_value[1]).max()))
              for k, v in data.data.items()}
    return Ranges(model_sha256, method, percentile if method == "percentile" else None, reader.used, ranges)
