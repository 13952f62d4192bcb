"""Cost of a dynamic-size export at the default size: static vs --dynamic-size graph in onnxruntime CPU.

    python benchmarks/dynamic_size_cost.py [--variants swin_t swinv2_t] [--batch-sizes 1 8] [--runs 10]

Same random weights, both graphs through swin-deploy's onnxruntime runner, timed round-robin (median of
--runs). Goal: the dynamic graph within 1.15x of the static one. Also prints the dynamic graph's latency
at a size that needs window padding.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_ms, parser  # noqa: E402


def main() -> None:
    ap = parser(__doc__, runs=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(machine())
    print(f"{'variant':10} {'batch':>5} {'static ms':>10} {'dynamic ms':>11} {'ratio':>6}   padded size, dynamic ms")
    for name in args.variants:
        cfg = get_config(name)
        static, sha = build_model(cfg, Weights("random"))
        lo = cfg.dynamic_min_size
        export_onnx(static, sha, tmp / "s.onnx", ExportOptions())
        export_onnx(static, sha, tmp / "d.onnx", ExportOptions(dynamic_size=True, min_size=(lo, lo), max_size=(2 * lo, 2 * lo)))
        padded = (lo + cfg.stride, lo + 2 * cfg.stride)
        with OnnxRuntimeRunner(tmp / "s.onnx") as s, OnnxRuntimeRunner(tmp / "d.onnx") as d:
            for b in args.batch_sizes:
                x = np.random.default_rng(0).standard_normal((b, 3, *cfg.img_size), dtype=np.float32)
                xp = np.random.default_rng(0).standard_normal((b, 3, *padded), dtype=np.float32)
                ms = median_ms({"static": (s, x), "dynamic": (d, x), "padded": (d, xp)}, args.warmup, args.runs)
                print(f"{name:10} {b:>5} {ms['static']:>10.1f} {ms['dynamic']:>11.1f} {ms['dynamic'] / ms['static']:>5.2f}x"
                      f"   {padded[0]}x{padded[1]}: {ms['padded']:.1f}", flush=True)


if __name__ == "__main__":
    main()
