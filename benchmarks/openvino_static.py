"""OpenVINO on the dynamic-batch model against a copy compiled for the exact input shape, which is what swin-deploy's
OpenVINO runner does per batch size; one interleaved run per model and batch size.

    python benchmarks/openvino_static.py [--variants swin_t swinv2_t] [--runs 20]

Rows: timm's export (the peer of benchmarks/cpu_peers.py) at OpenVINO's default precision, and swin-deploy's INT8
(TensorRT target) at OpenVINO's default precision; seeded random weights. Prints the CPU model and vector ISA.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from swin_deploy.models import get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_ms, machine, openvino_infer, parser, random_int8  # noqa: E402
from export_vs_timm import timm_export  # noqa: E402


def main() -> None:
    ap = parser(__doc__, batch_sizes=None, runs=20, warmup=3)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp())
    print(f"{machine()}, OpenVINO {ov.__version__}; median ms of {args.runs} interleaved rounds, dynamic batch -> "
          "static shape")
    print("| model | graph | batch 1 | batch 8 |\n|---|---|---:|---:|")
    for name in args.variants:
        model, _, int8 = random_int8(name, tmp)
        timm = tmp / f"{name}.timm.onnx"
        timm_export(name, {k: v.clone() for k, v in model.state_dict().items()}, timm, "onnxsim")
        size = get_config(name).img_size
        for label, path in [("timm's export, OpenVINO default precision", timm),
                            ("swin-deploy INT8 (TensorRT target)", int8)]:
            cells = []
            for batch in (1, 8):
                x = np.random.default_rng(0).standard_normal((batch, 3, *size), dtype=np.float32)
                ms = interleaved_ms({"dynamic": openvino_infer(path, None, threads),
                                     "static": openvino_infer(path, [batch, 3, *size], threads)}, x, args.warmup,
                                    args.runs)
                cells.append(f"{ms['dynamic']:.1f} -> {ms['static']:.1f} ({ms['dynamic'] / ms['static']:.2f}x)")
            print(f"| {name} | {label} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
