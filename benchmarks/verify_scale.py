"""verify at scale: peak memory and time over N synthetic 224x224 JPEGs, for N = 1,000 and 8,000.

    python benchmarks/verify_scale.py [--sizes 1000 8000] [--variant swin_digits]

Each measurement runs in a fresh child process (its own peak RSS, from resource.getrusage). Per N:
  * verify with the default batch sizes (8,1,3: every image through the reference and the candidate once at
    batch 8, batch consistency on 64 images at 1 and 3), wall time and peak RSS;
  * verify with batch 1 first (1,3,8, the default before 2026-12-07), wall time;
  * one reference pass and one candidate pass over the same images (streamed, at the default's first batch size),
    each alone.
Goals: peak RSS at the largest N within 1.2x of the smallest; verify at most 1.5x (reference pass + candidate pass).
The images are class-folder JPEGs of seeded noise, written once into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402


def write_images(folder: Path, n: int, classes: int = 10) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        d = folder / str(i % classes)
        d.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(d / f"{i:05d}.jpg", quality=90)


def child(mode: str, onnx: Path, data: Path) -> None:
    """One measurement in this process; prints JSON {seconds, peak_rss_mb}."""
    from swin_deploy import defaults
    from swin_deploy.artifact import read_info
    from swin_deploy.backends import run_padded
    from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
    from swin_deploy.models import Weights
    from swin_deploy.verify.reference import torch_reference
    from swin_deploy.verify.run import InputSet, VerifyOptions, verify_artifact

    start = time.perf_counter()
    first = defaults.VERIFY_BATCH_SIZES[0]
    if mode.startswith("verify"):
        result = verify_artifact(onnx, VerifyOptions(data=data, batch_sizes=[1, 3, 8] if mode == "verify-1" else None))
        assert result.passed and result.batches[0].images > 0
    else:
        info = read_info(onnx)
        runner = torch_reference(info, Weights()) if mode == "reference" else OnnxRuntimeRunner(onnx)
        with runner:
            for batch in InputSet(info, VerifyOptions(data=data), info.img_size).batches(first):
                run_padded(runner, batch.x, first)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(mode: str, onnx: Path, data: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(onnx), str(data)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[1000, 8000])
    ap.add_argument("--variant", default="swin_digits")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    from swin_deploy.export import export_variant
    from swin_deploy.models import Weights

    tmp = Path(tempfile.mkdtemp())
    onnx = export_variant(args.variant, Weights(), tmp / "m.onnx").path
    print(f"{machine()}; {args.variant}, images 224x224 JPEG", flush=True)
    print(f"{'images':>7} {'verify s':>9} {'img/s':>7} {'peak MB':>8} {'1 first s':>9} {'ref pass s':>10} "
          f"{'cand pass s':>11} {'verify / passes':>15}", flush=True)
    rows = []
    for n in args.sizes:
        data = tmp / f"data{n}"
        write_images(data, n)
        v, v1, r, c = (measure(mode, onnx, data) for mode in ("verify", "verify-1", "reference", "candidate"))
        ratio = v["seconds"] / (r["seconds"] + c["seconds"])
        rows.append((n, v["peak_rss_mb"]))
        print(f"{n:>7} {v['seconds']:>9.1f} {n / v['seconds']:>7.0f} {v['peak_rss_mb']:>8.0f} {v1['seconds']:>9.1f} "
              f"{r['seconds']:>10.1f} {c['seconds']:>11.1f} {ratio:>14.2f}x", flush=True)
    print(f"peak RSS at {rows[-1][0]} images / at {rows[0][0]}: {rows[-1][1] / rows[0][1]:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
