"""Minmax calibration as `quantize` runs it (swin-deploy's own reading of every float tensor, reduced in numpy) against
onnxruntime's MinMax calibrator (a ReduceMin and a ReduceMax per tensor in the graph), on the same images, taking
turns: the INT8's linear-layer tensors (ours with every float tensor's peak beside them, as the TensorRT target's
float16 part needs) and every float tensor (FP16's overflow check); and that both give the same ranges.

    python benchmarks/calibration_time.py [--variants swin_t swinv2_t] [--images 64] [--runs 3]

Seeded random weights, seeded normal inputs in batches of 16 (`--calib-batch`'s default).
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, create_calibrator

from calibration.options import LINEAR_OPS
from calibration.ranges import calibrate
from swin_deploy import defaults
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, parser  # noqa: E402


class Batches:
    """What `calibrate` reads: the same seeded batches on every pass."""

    def __init__(self, shape: tuple[int, ...], images: int):
        self.batch_size, self.fixed, self.used = defaults.CALIB_BATCH, None, images
        rng = np.random.default_rng(0)
        self.batches = [{"input": rng.standard_normal((min(self.batch_size, images - start), *shape), np.float32)}
                        for start in range(0, images, self.batch_size)]
        self._it = iter(())

    def get_next(self) -> dict | None:
        return next(self._it, None)

    def again(self) -> Batches:
        self._it = iter(self.batches)
        return self


def onnxruntime_minmax(path: Path, batches: Batches, op_types: tuple[str, ...] | None) -> dict:
    """onnxruntime's MinMax calibrator over the batches, as `quantize` ran it before."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(path, op_types_to_calibrate=list(op_types) if op_types else None,
                                       augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(batches.again())
        data = calibrator.compute_data().data
    return {k: (float(np.asarray(v.range_value[0]).min()), float(np.asarray(v.range_value[1]).max()))
            for k, v in data.items()}


def main() -> None:
    ap = parser(__doc__, batch_sizes=None, runs=3, warmup=0)
    ap.add_argument("--images", type=int, default=64)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(machine(), f"onnx {onnx.__version__}; {args.images} images", flush=True)
    print("| model | tensors | onnxruntime MinMax s | ours s | speedup | same ranges |")
    print("|---|---|---:|---:|---:|---|")
    for name in args.variants:
        config = get_config(name)
        model, sha = build_model(config, Weights("random"))
        path = export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions()).path
        del model
        graph = onnx.load(str(path))
        batches = Batches((3, *config.img_size), args.images)
        for label, op_types, peaks in (("linear layers' (ours: + every peak)", LINEAR_OPS, True),
                                       ("every float tensor", None, False)):
            theirs, ours, same = [], [], True
            for _ in range(args.runs):
                start = time.perf_counter()
                reference = onnxruntime_minmax(path, batches, op_types)
                theirs.append(time.perf_counter() - start)
                start = time.perf_counter()
                found = calibrate(graph, batches.again(), op_types=op_types, float_peaks=peaks)
                ours.append(time.perf_counter() - start)
                same = same and found.ranges == reference
            a, b = statistics.median(theirs), statistics.median(ours)
            print(f"| {name} | {label} | {a:.1f} | {b:.1f} | {a / b:.2f}x | {same} |", flush=True)


if __name__ == "__main__":
    main()
