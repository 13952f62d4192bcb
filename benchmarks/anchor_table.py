"""Anchor table: timm eager, timm's own ONNX export, swin-deploy FP32 and INT8, all on this CPU, in one run.

    python benchmarks/anchor_table.py [--variants swin_t swinv2_t] [--batch-sizes 1 8] [--runs 20] [--md FILE]

Random weights (speed does not depend on them). onnxruntime sessions run without spin-waiting, all alike.
INT8 is `--target onnxruntime` (U8S8 Q/DQ), calibrated on
64 demo digit images. Every candidate is timed round-robin (median of --runs after warm-up) so drift hits
all alike. Prints a Markdown table with the ratios the issues set goals for: FP32 vs timm's ONNX
(>= 1.15x) and INT8 vs FP32 (>= 1.3x at batch 1, >= 2x at batch 8).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from calibration import Int8Options
from swin_deploy.demo import write_digits
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config
from swin_deploy.precision.quantize import QuantizeOptions, quantize
from swin_deploy.verify.timm_reference import timm_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_vs_timm import timm_export  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["swin_t", "swinv2_t"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--md", type=Path, default=None, help="Also write the table to this Markdown file.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    write_digits(tmp / "data")
    lines = [f"Measured {datetime.date.today()} on {cpu_name()} ({torch.get_num_threads()} threads), "
             f"onnxruntime {ort.__version__}, torch {torch.__version__}; median ms of {args.runs} runs.", "",
             "| variant | batch | timm eager | timm ONNX | swin-deploy FP32 | swin-deploy INT8 | FP32 vs timm ONNX "
             "| INT8 vs FP32 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in args.variants:
        cfg = get_config(name)
        model, sha = build_model(cfg, Weights("random"))
        state = {k: v.clone() for k, v in model.state_dict().items()}
        fp32 = export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions()).path
        int8 = tmp / f"{name}.int8.onnx"
        quantize(fp32, int8, QuantizeOptions(precision="int8", calib_data=tmp / "data" / "calib", calib_images=64,
                                             int8=Int8Options(target="onnxruntime")))
        timm_export(name, state, tmp / f"{name}.timm.onnx")
        eager = timm_model(cfg)
        eager.load_state_dict(state)
        options = ort.SessionOptions()
        # the same for every session: no spin-waiting, which would steal cores from the next runner in the round
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions = {k: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                    for k, p in (("timm_onnx", tmp / f"{name}.timm.onnx"), ("fp32", fp32), ("int8", int8))}

        def timm_eager(x, m=eager):
            with torch.inference_mode():
                m(torch.from_numpy(x))

        runners = {"timm_eager": timm_eager,
                   **{k: (lambda x, s=s: s.run(None, {"input": x})) for k, s in sessions.items()}}
        for b in args.batch_sizes:
            x = np.random.default_rng(0).standard_normal((b, 3, *cfg.img_size), dtype=np.float32)
            for run in runners.values():
                for _ in range(args.warmup):
                    run(x)
            times: dict[str, list[float]] = {k: [] for k in runners}
            for _ in range(args.runs):
                for k, run in runners.items():
                    t0 = time.perf_counter()
                    run(x)
                    times[k].append((time.perf_counter() - t0) * 1000)
            ms = {k: float(np.median(v)) for k, v in times.items()}
            lines.append(f"| {name} | {b} | {ms['timm_eager']:.1f} | {ms['timm_onnx']:.1f} | {ms['fp32']:.1f} | "
                         f"{ms['int8']:.1f} | {ms['timm_onnx'] / ms['fp32']:.2f}x | {ms['fp32'] / ms['int8']:.2f}x |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    if args.md:
        args.md.write_text(table + "\n")


if __name__ == "__main__":
    main()
