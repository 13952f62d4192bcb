"""How swin-deploy's onnxruntime CPU runner uses its threads, in one interleaved run per model, artifact and batch size:

- latency hint (the default): each batch one request on all the threads, which spin while a run lasts and stop when
  it returns (session.force_spinning_stop);
- the same with spinning switched off altogether (session.intra_op.allow_spinning 0, what the runner did before);
- throughput hint: one single-threaded request per stream (one per thread) on a part of each batch, run together.

    python benchmarks/ort_threading.py [--variants swin_t swinv2_t] [--batch-sizes 1 8] [--runs 30]

onnxruntime's default spinning (also after a run returns) is not a row: in any interleaved loop its spinning lands on
the next runner's time, which is why the runner never used it. swin-deploy's fp32 export and its onnxruntime-target
INT8 (7-bit weights on CPUs without VNNI, as shipped there), seeded random weights, 64 calibration images. Prints the
CPU model and vector ISA.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from calibration import Int8Options, QuantizeOptions, quantize
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.demo import write_digits
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.machine import exact_int8_dot_products
from swin_deploy.models import Weights, build_model, get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_ms, machine, parser  # noqa: E402

LATENCY, NO_SPIN, THROUGHPUT = "latency (swin-deploy)", "latency, no spinning (before)", "throughput (swin-deploy)"


def no_spinning(path: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def main() -> None:
    ap = parser(__doc__, runs=30, warmup=3)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp())
    write_digits(tmp / "digits")
    reduce_range = exact_int8_dot_products() is False
    print(f"{machine()}; median ms of {args.runs} interleaved rounds")
    print(f"| model | artifact | batch | {LATENCY} | {NO_SPIN} | {THROUGHPUT} | latency vs no spinning | throughput vs "
          "latency |\n|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.variants:
        model, sha = build_model(get_config(name), Weights("random"))
        fp32 = export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions()).path
        int8 = quantize(fp32, tmp / f"{name}.int8-ort.onnx", QuantizeOptions(
            "int8", calib_data=tmp / "digits" / "calib", calib_images=64,
            int8=Int8Options(target="onnxruntime", reduce_range=reduce_range))).path
        size = get_config(name).img_size
        for artifact, path in (("fp32", fp32), ("INT8 --target onnxruntime" + " --reduce-range" * reduce_range, int8)):
            with OnnxRuntimeRunner(path, threads=threads) as latency, \
                    OnnxRuntimeRunner(path, threads=threads, performance_hint="throughput") as throughput:
                runs = {LATENCY: latency.infer, NO_SPIN: no_spinning(path, threads), THROUGHPUT: throughput.infer}
                for batch in args.batch_sizes:
                    x = np.random.default_rng(0).standard_normal((batch, 3, *size), dtype=np.float32)
                    ms = interleaved_ms(runs, x, args.warmup, args.runs)
                    print(f"| {name} | {artifact} | {batch} | {ms[LATENCY]:.1f} | {ms[NO_SPIN]:.1f} | {ms[THROUGHPUT]:.1f} "
                          f"| {ms[NO_SPIN] / ms[LATENCY]:.3f}x | {ms[LATENCY] / ms[THROUGHPUT]:.3f}x |", flush=True)


if __name__ == "__main__":
    main()
