"""Anchor table: timm eager, timm's own ONNX export, swin-deploy FP32 and INT8, all on this CPU, in one run.

    python benchmarks/anchor_table.py [--variants swin_t swinv2_t] [--batch-sizes 1 8] [--runs 20] [--md FILE]

Random weights (speed does not depend on them). Every candidate runs through swin-deploy's runners (onnxruntime
without spin-waiting, all alike) and is timed round-robin by the library's loop (median of --runs after warm-up).
INT8 is `--target onnxruntime` (U8S8 Q/DQ), calibrated on 64 demo digit images. Prints a Markdown table with the
ratios the goals are set for: FP32 vs timm's ONNX (>= 1.15x) and INT8 vs FP32 (>= 1.3x at batch 1, >= 2x at 8).
"""

from __future__ import annotations

import datetime
import sys
import tempfile
from pathlib import Path

import numpy as np

from calibration import Int8Options, QuantizeOptions, quantize
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.backends.torch_runner import TorchRunner
from swin_deploy.demo import write_digits
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config
from swin_deploy.verify.timm_reference import timm_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_ms, parser  # noqa: E402
from export_vs_timm import timm_export  # noqa: E402


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--md", type=Path, default=None, help="Also write the table to this Markdown file.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    write_digits(tmp / "data")
    lines = [f"Measured {datetime.date.today()} on {machine()}; median ms of {args.runs} runs.", "",
             "| variant | batch | timm eager | timm ONNX | swin-deploy FP32 | swin-deploy INT8 | FP32 vs timm ONNX "
             "| INT8 vs FP32 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    print(lines[0], flush=True)
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
        runners = {"timm_eager": TorchRunner(eager, name="timm"),
                   **{k: OnnxRuntimeRunner(p) for k, p in (("timm_onnx", tmp / f"{name}.timm.onnx"), ("fp32", fp32),
                                                            ("int8", int8))}}
        for r in runners.values():
            r.activate()
        for b in args.batch_sizes:
            x = np.random.default_rng(0).standard_normal((b, 3, *cfg.img_size), dtype=np.float32)
            ms = median_ms({k: (r, x) for k, r in runners.items()}, args.warmup, args.runs)
            lines.append(f"| {name} | {b} | {ms['timm_eager']:.1f} | {ms['timm_onnx']:.1f} | {ms['fp32']:.1f} | "
                         f"{ms['int8']:.1f} | {ms['timm_onnx'] / ms['fp32']:.2f}x | {ms['fp32'] / ms['int8']:.2f}x |")
            print(lines[-1], flush=True)
        for r in runners.values():
            r.deactivate()
    table = "\n".join(lines)
    print("\n" + table)
    if args.md:
        args.md.write_text(table + "\n")


if __name__ == "__main__":
    main()
