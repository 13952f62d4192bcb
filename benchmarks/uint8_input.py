"""Raw-pixel exports (`--input-format uint8`, NCHW and `--channels-last`) vs the float32 export, onnxruntime CPU.

    python benchmarks/uint8_input.py [--variants swin_t swinv2_t] [--runs 20]

Same weights, one run: the three graphs timed round-robin by the library's loop at each batch size; the uint8
graphs get uint8 pixels, the float graph the normalised floats. Goal: the uint8 graph no slower than the float one
(it adds one Cast, and for NHWC one Transpose, and takes 4x fewer input bytes).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from swin_deploy.artifact import read_info
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_ms, parser  # noqa: E402

KINDS = {"float32": {}, "uint8 NCHW": {"input_format": "uint8"},
         "uint8 NHWC": {"input_format": "uint8", "channels_last": True}}


def main() -> None:
    ap = parser(__doc__)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(f"{machine()}; median of {args.runs} runs", flush=True)
    print("| variant | batch | " + " | ".join(f"{k} ms" for k in KINDS) + " | uint8 NCHW / float | uint8 NHWC / float |")
    print("|---|---:|" + "---:|" * (len(KINDS) + 2))
    for name in args.variants:
        model, sha = build_model(get_config(name), Weights("random"))
        paths = {k: export_onnx(model, sha, tmp / f"{name}-{i}.onnx", ExportOptions(**o)).path
                 for i, (k, o) in enumerate(KINDS.items())}
        infos = {k: read_info(p) for k, p in paths.items()}
        runners = {k: OnnxRuntimeRunner(p).__enter__() for k, p in paths.items()}
        for b in args.batch_sizes:
            pixels = infos["uint8 NHWC"].example_input(np.random.default_rng(0), b)
            inputs = {"float32": infos["uint8 NHWC"].normalized(pixels), "uint8 NHWC": pixels,
                      "uint8 NCHW": np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))}
            ms = median_ms({k: (r, inputs[k]) for k, r in runners.items()}, args.warmup, args.runs)
            print(f"| {name} | {b} | " + " | ".join(f"{ms[k]:.1f}" for k in KINDS)
                  + f" | {ms['uint8 NCHW'] / ms['float32']:.3f}x | {ms['uint8 NHWC'] / ms['float32']:.3f}x |", flush=True)
        for r in runners.values():
            r.deactivate()


if __name__ == "__main__":
    main()
