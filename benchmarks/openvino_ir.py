"""Ship the ONNX or the OpenVINO IR to OpenVINO? Both forms of swin-deploy's fp32 export and INT8 (TensorRT target),
run by swin-deploy's OpenVINO runner: files on disk, start-up (read + compile, a fresh runner each time, median of
`--loads`) and latency at batch 1 and 8 in one interleaved run.

    python benchmarks/openvino_ir.py [--variants swin_t swinv2_t] [--runs 20] [--loads 3]

Seeded random weights; the IR as `swin-deploy convert` writes it (float16 weights only where they pass the
artifact's gate). Prints the CPU model and vector ISA.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from swin_deploy.artifact import ir_weights
from swin_deploy.backends.openvino_runner import OpenVinoRunner
from swin_deploy.export.openvino_ir import to_openvino
from swin_deploy.models import get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_ms, machine, parser, random_int8  # noqa: E402


def start_ms(path: Path, threads: int, x: np.ndarray) -> float:
    """Read, compile and first inference (the runner compiles the batch's static shape on first use)."""
    start = time.perf_counter()
    with OpenVinoRunner(path, threads) as runner:
        runner.infer(x)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    ap = parser(__doc__, batch_sizes=None, runs=20, warmup=3)
    ap.add_argument("--loads", type=int, default=3)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp())
    print(f"{machine()}, OpenVINO {ov.__version__}; start-up: median of {args.loads} fresh runners, read + compile + "
          f"first batch-1 inference; latency: median ms of {args.runs} interleaved rounds")
    print("| model | form | MiB on disk | IR weights | start-up ms | b1 ms | b8 ms | IR vs ONNX b1 / b8 |\n"
          "|---|---|---:|---|---:|---:|---:|---:|")
    for name in args.variants:
        _, fp32, int8 = random_int8(name, tmp)
        size = get_config(name).img_size
        for label, onnx_path in (("fp32", fp32), ("INT8", int8)):
            ir = to_openvino(onnx_path, onnx_path.with_suffix(".xml"))
            forms = {"ONNX": onnx_path, "IR": ir.path}
            x1 = np.random.default_rng(0).standard_normal((1, 3, *size), dtype=np.float32)
            loads = {form: [] for form in forms}
            for _ in range(args.loads):  # alternating, so a warmer page cache favours neither
                for form, path in forms.items():
                    loads[form].append(start_ms(path, threads, x1))
            runners = {form: OpenVinoRunner(path, threads) for form, path in forms.items()}
            for r in runners.values():
                r.activate()
            ms = {}
            for batch in (1, 8):
                x = np.random.default_rng(0).standard_normal((batch, 3, *size), dtype=np.float32)
                ms[batch] = interleaved_ms({form: r.infer for form, r in runners.items()}, x, args.warmup, args.runs)
            for r in runners.values():
                r.deactivate()
            for form, path in forms.items():
                mib = (path.stat().st_size + (ir_weights(path).stat().st_size if form == "IR" else 0)) / 2**20
                ratio = "" if form == "ONNX" else \
                    f"{ms[1]['ONNX'] / ms[1]['IR']:.2f}x / {ms[8]['ONNX'] / ms[8]['IR']:.2f}x"
                print(f"| {name} {label} | {form} | {mib:.1f} | {ir.weights if form == 'IR' else '-'} | "
                      f"{np.median(loads[form]):.0f} | {ms[1][form]:.2f} | {ms[8][form]:.2f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
