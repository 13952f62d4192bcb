"""Peak memory of INT8 calibration, where it is largest: big windows at a big input size.

    python benchmarks/calibration_memory.py [--variant swinv2_b_192to384] [--calib-images 16]

Seeded random weights, the demo digit images upscaled to the model's size. Runs `quantize` in this process and
samples its resident memory every 50 ms: the peak of calibration (onnxruntime's calibrator, whose runs are cut to
what fits in memory), of the rest of quantize, and one image's run of the same model in plain onnxruntime, for scale.
Goal: the default `--calib-batch` fits on a 24 GiB machine. Prints the machine and its memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

import calibration.convert
from calibration import QuantizeOptions, quantize
from swin_deploy.artifact import read_info
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.demo import write_digits
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

GiB = 2**30


class PeakRss:
    """The highest resident set size of this process since the last reset(), sampled in a thread."""

    def __init__(self) -> None:
        self.process, self.peak = psutil.Process(), 0
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def reset(self) -> int:
        self.peak = self.process.memory_info().rss
        return self.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="swinv2_b_192to384")
    ap.add_argument("--calib-images", type=int, default=16)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(f"{machine()}; {psutil.virtual_memory().total / GiB:.1f} GiB of memory", flush=True)
    write_digits(tmp / "digits")
    model, sha = build_model(get_config(args.variant), Weights("random"))
    fp32 = export_onnx(model, sha, tmp / f"{args.variant}.onnx", ExportOptions()).path
    del model
    rss = PeakRss()
    phases: dict[str, tuple[float, float]] = {}  # phase -> (resident GiB at its start, peak GiB during it)
    calibrate = calibration.convert.calibrate

    def measured(*a, **k):
        start = rss.reset()
        try:
            return calibrate(*a, **k)
        finally:
            phases["calibration"] = (start / GiB, rss.peak / GiB)

    calibration.convert.calibrate = measured
    start, t0 = rss.reset(), time.perf_counter()
    result = quantize(fp32, tmp / f"{args.variant}.int8.onnx",
                      QuantizeOptions("int8", calib_data=tmp / "digits" / "calib", calib_images=args.calib_images))
    seconds = time.perf_counter() - t0
    phases["quantize, in all"] = (start / GiB, rss.peak / GiB)
    start = rss.reset()
    info = read_info(fp32)
    with OnnxRuntimeRunner(fp32) as runner:
        runner.infer(info.example_input(np.random.default_rng(0), 1))
    phases["one image, plain onnxruntime (load + run)"] = (start / GiB, rss.peak / GiB)
    print(f"{args.variant} at {'x'.join(map(str, info.img_size))}, {args.calib_images} calibration images, "
          f"{seconds:.0f} s; calibration runs: {result.details.get('calib_batch', 'the whole --calib-batch')}")
    print("| phase | resident at start GiB | peak GiB |")
    print("|---|---:|---:|")
    for phase, (begin, peak) in phases.items():
        print(f"| {phase} | {begin:.1f} | {peak:.1f} |")


if __name__ == "__main__":
    main()
