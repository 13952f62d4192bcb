"""Cost of a dynamic-size export at the default size: static vs --dynamic-size graph in onnxruntime CPU.

    python benchmarks/dynamic_size_cost.py [--variants swin_t swinv2_t] [--batch-sizes 1 8] [--runs 10]

Same random weights, default session options, the two sessions timed round-robin (median of --runs).
Goal (issue 7): the dynamic graph within 1.15x of the static one. Also prints the dynamic graph's
latency at a size that needs window padding.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import SwinTransformer, Weights, build_model, get_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["swin_t", "swinv2_t"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(f"{'variant':10} {'batch':>5} {'static ms':>10} {'dynamic ms':>11} {'ratio':>6}   padded size, dynamic ms")
    for name in args.variants:
        cfg = get_config(name)
        static, sha = build_model(cfg, Weights("random"))
        dynamic = SwinTransformer(cfg, dynamic=True).eval()
        dynamic.load_state_dict(static.state_dict())
        lo = cfg.dynamic_min_size
        export_onnx(static, sha, tmp / "s.onnx", ExportOptions())
        export_onnx(dynamic, sha, tmp / "d.onnx", ExportOptions(dynamic_size=((lo, lo), (2 * lo, 2 * lo))))
        sessions = [ort.InferenceSession(str(tmp / f), providers=["CPUExecutionProvider"]) for f in ("s.onnx", "d.onnx")]
        padded = (lo + cfg.stride, lo + 2 * cfg.stride)
        for b in args.batch_sizes:
            x = np.random.default_rng(0).standard_normal((b, 3, *cfg.img_size), dtype=np.float32)
            xp = np.random.default_rng(0).standard_normal((b, 3, *padded), dtype=np.float32)
            for s in sessions:
                for _ in range(3):
                    s.run(None, {"input": x})
            times: list[list[float]] = [[], [], []]
            for _ in range(args.runs):
                for i, (s, inp) in enumerate(((sessions[0], x), (sessions[1], x), (sessions[1], xp))):
                    t0 = time.perf_counter()
                    s.run(None, {"input": inp})
                    times[i].append((time.perf_counter() - t0) * 1000)
            st, dy, pd = (float(np.median(t)) for t in times)
            print(f"{name:10} {b:>5} {st:>10.1f} {dy:>11.1f} {dy / st:>5.2f}x   {padded[0]}x{padded[1]}: {pd:.1f}")


if __name__ == "__main__":
    main()
