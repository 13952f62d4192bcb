"""OpenVINO's throughput hint as swin-deploy's runner uses it (each batch split over the streams, their requests run
together) against one synchronous request on the same throughput-compiled model (what the runner did before, and what
a plain `compiled.create_infer_request().infer(x)` does), with the latency hint beside; one interleaved run.

    python benchmarks/openvino_throughput.py [--variants swin_t] [--batch-sizes 1 2 3 8] [--runs 20]

swin-deploy's INT8 (TensorRT target), seeded random weights, static shapes everywhere (the runner compiles one per
batch size; an uneven split runs on the dynamic model). Prints the CPU model and vector ISA.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
import torch

from swin_deploy.backends.openvino_runner import OpenVinoOptions, OpenVinoRunner
from swin_deploy.models import get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_ms, machine, openvino_infer, parser, random_int8  # noqa: E402


def main() -> None:
    ap = parser(__doc__, variants=("swin_t",), batch_sizes=(1, 2, 3, 8), runs=20, warmup=3)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp())
    print(f"{machine()}, OpenVINO {ov.__version__}; median ms of {args.runs} interleaved rounds")
    print("| model | batch | latency hint | throughput, one request | throughput, split (swin-deploy) | split vs one "
          "request |\n|---|---:|---:|---:|---:|---:|")
    for name in args.variants:
        _, _, int8 = random_int8(name, tmp)
        size = get_config(name).img_size
        with OpenVinoRunner(int8, threads) as latency, \
                OpenVinoRunner(int8, threads, OpenVinoOptions(performance_hint="throughput")) as split:
            for batch in args.batch_sizes:
                x = np.random.default_rng(0).standard_normal((batch, 3, *size), dtype=np.float32)
                ms = interleaved_ms({"latency": latency.infer, "split": split.infer,
                                     "one": openvino_infer(int8, [batch, 3, *size], threads, "THROUGHPUT")},
                                    x, args.warmup, args.runs)
                print(f"| {name} | {batch} | {ms['latency']:.1f} | {ms['one']:.1f} | {ms['split']:.1f} | "
                      f"{ms['one'] / ms['split']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
