"""Top-1 on the held-out demo digits for FP32, FP16 and every INT8 method and target, both demo models.

    python scripts/report_demo_accuracy.py [--calib-images 512] [--out DIR]

Exports each demo model, converts it as `swin-deploy quantize` does, and scores every artifact in
onnxruntime CPU on val/ (359 images never used for training or calibration). Targets:
FP32 >= 95%, FP16 within 0.1 points of FP32, INT8 within 1.0 point. Exit 1 if any target is missed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from calibration import Int8Options, QuantizeOptions, quantize
from swin_deploy import defaults
from swin_deploy.artifact import read_info
from swin_deploy.backends import run_batched
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.data import list_images, load_all, transform_for
from swin_deploy.demo import write_digits
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config


def top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    with OnnxRuntimeRunner(path) as runner:
        return float((run_batched(runner, x, 64)["logits"].argmax(1) == y).mean() * 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calib-images", type=int, default=defaults.CALIB_IMAGES)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp())
    write_digits(out / "data")
    failures = 0
    print(f"{'model':14} {'artifact':28} {'top-1 %':>8} {'vs fp32':>8} {'target':>8}")
    for name in ("swin_digits", "swinv2_digits"):
        model, sha = build_model(get_config(name), Weights())
        fp32 = export_onnx(model, sha, out / f"{name}.onnx", ExportOptions()).path
        info = read_info(fp32)
        x, y = load_all(list_images(out / "data" / "val"),
                        transform_for(info))
        base = top1(fp32, x, y)
        ok = base >= 95.0
        failures += not ok
        print(f"{name:14} {'fp32':28} {base:8.2f} {'':>8} {'>= 95':>8} {'' if ok else 'MISSED'}")
        runs = [("fp16", None, 0.1)] + [(f"int8 {t} {m}", Int8Options(target=t, method=m), 1.0)
                                         for t in ("tensorrt", "onnxruntime") for m in ("minmax", "entropy", "percentile")]
        for label, int8, allowed in runs:
            path = out / f"{name}.{label.replace(' ', '.')}.onnx"
            precision = "fp16" if int8 is None else "int8"
            quantize(fp32, path, QuantizeOptions(precision=precision, calib_data=out / "data" / "calib",
                                                 calib_images=args.calib_images, int8=int8))
            acc = top1(path, x, y)
            ok = base - acc <= allowed
            failures += not ok
            print(f"{name:14} {label:28} {acc:8.2f} {acc - base:+8.2f} {f'>= -{allowed}':>8} {'' if ok else 'MISSED'}")
    print("all targets met" if not failures else f"{failures} target(s) missed")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
