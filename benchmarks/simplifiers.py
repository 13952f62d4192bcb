"""onnx-simplifier vs onnxslim (vs both, vs none) on swin-deploy's FP32 exports, in onnxruntime CPU.

    python benchmarks/simplifiers.py [--variants swin_t swinv2_t] [--runs 20]

For each variant (static, and swin_t's --dynamic-size export at its default size) and simplifier: export time
(export, simplify, checks and parity, as `swin-deploy export` does), node count, whether the export's checks
passed (ONNX checker, opset safety, onnxruntime-vs-PyTorch parity), and latency at batch 1 and 8, all
simplifiers of a model timed round-robin by the library's loop in one run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.enums import Simplifier
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_ms, parser  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(machine(), flush=True)
    print("| model | simplifier | nodes | export s | checks | " + " | ".join(f"b{b} ms" for b in args.batch_sizes) + " |")
    print("|---|---|---:|---:|---|" + "---:|" * len(args.batch_sizes))
    cases = [(v, False) for v in args.variants] + [("swin_t", True)]
    for name, dynamic in cases:
        cfg = get_config(name)
        model, sha = build_model(cfg, Weights("random"))
        rows, runners = {}, {}
        for simplifier in Simplifier:
            lo = cfg.dynamic_min_size
            options = ExportOptions(simplifier=simplifier, dynamic_size=dynamic, min_size=(lo, lo) if dynamic else None,
                                    max_size=(2 * lo, 2 * lo) if dynamic else None)
            path = tmp / f"{name}-{dynamic}-{simplifier.value}.onnx"
            t0 = time.perf_counter()
            try:
                result = export_onnx(model, sha, path, options)
                rows[simplifier] = [result.nodes, time.perf_counter() - t0, "pass"]
                runners[simplifier] = OnnxRuntimeRunner(path).__enter__()
            except Exception as e:  # noqa: BLE001 - a simplifier that breaks the graph is a result to report
                rows[simplifier] = ["-", time.perf_counter() - t0, f"FAIL: {type(e).__name__}: {str(e)[:60]}"]
        times = {}
        for b in args.batch_sizes:
            x = np.random.default_rng(0).standard_normal((b, 3, *cfg.img_size), dtype=np.float32)
            times[b] = median_ms({s.value: (r, x) for s, r in runners.items()}, args.warmup, args.runs)
        label = f"{name}{' dynamic-size' if dynamic else ''}"
        for simplifier, (nodes, seconds, checks) in rows.items():
            ms = [f"{times[b][simplifier.value]:.1f}" if simplifier in runners else "-" for b in args.batch_sizes]
            print(f"| {label} | {simplifier.value} | {nodes} | {seconds:.1f} | {checks} | " + " | ".join(ms) + " |",
                  flush=True)
        for r in runners.values():
            r.deactivate()


if __name__ == "__main__":
    main()
