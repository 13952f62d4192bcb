"""The attention layout of this checkout against an earlier commit's, on OpenVINO and onnxruntime, in one interleaved
run per model, batch size and runtime.

    python benchmarks/attention_layout.py [--baseline 61fe5e1] [--runs 20]

61fe5e1 is the last commit with 5D attention ((B, nW, heads, N, d)); this checkout's is 4D (layers.heads_major). The
baseline's artifacts are exported by that commit's own code (a git worktree, imported in a subprocess), from the same
seeded random weights and calibration images. OpenVINO compiles each for the exact input shape (static batch, as the
runner does); onnxruntime runs the fp32 export and the onnxruntime-target INT8. Prints the CPU model and vector ISA.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# (label, variant, window, image size): the two goal models and the window sizes around theirs
CASES = [("swin_t, 7x7 windows", "swin_t", 7, 224), ("swin_t at 8x8 windows", "swin_t", 8, 256),
         ("swinv2_t, 8x8 windows", "swinv2_t", 8, 256), ("swinv2_t at 16x16 windows", "swinv2_t", 16, 256)]
ORT_CASES = {("swin_t", 7), ("swinv2_t", 8)}  # also timed on onnxruntime (fp32, onnxruntime-target INT8)


def build(out: Path, data: Path) -> None:
    """Every case's fp32 export and INT8 artifacts (TensorRT target; onnxruntime target for ORT_CASES), with whatever
    swin_deploy this process imports."""
    from calibration import Int8Options, QuantizeOptions, quantize
    from swin_deploy.export import ExportOptions, export_onnx
    from swin_deploy.models import Weights, build_model, get_config

    for _, variant, window, size in CASES:
        cfg = dataclasses.replace(get_config(variant), window_size=window, img_size=(size, size))
        model, sha = build_model(cfg, Weights("random"))
        fp32 = export_onnx(model, sha, out / f"{variant}.w{window}.onnx", ExportOptions()).path
        targets = ["tensorrt", "onnxruntime"] if (variant, window) in ORT_CASES else ["tensorrt"]
        for target in targets:
            quantize(fp32, out / f"{variant}.w{window}.{target}.onnx",
                     QuantizeOptions("int8", calib_data=data, calib_images=64, int8=Int8Options(target=target)))


def openvino_request(path: Path, batch: int, size: int, threads: int):
    from common import openvino_infer

    return openvino_infer(path, [batch, 3, size, size], threads)


def onnxruntime_session(path: Path, batch: int, size: int, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"input": x})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="61fe5e1", help="the commit to compare against")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--build-only", type=Path, help=argparse.SUPPRESS)  # the baseline's subprocess
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only:
        build(args.build_only, args.data)
        return

    import openvino as ov
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import interleaved_ms, machine

    from swin_deploy.demo import write_digits

    tmp = Path(tempfile.mkdtemp())
    write_digits(tmp / "digits")
    data = tmp / "digits" / "calib"
    new, old, tree = tmp / "new", tmp / "old", tmp / "baseline"
    new.mkdir(), old.mkdir()
    build(new, data)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline], check=True,
                   capture_output=True)
    try:
        subprocess.run([sys.executable, __file__, "--build-only", str(old), "--data", str(data)], check=True,
                       env={**os.environ, "PYTHONPATH": str(tree)})
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    threads = torch.get_num_threads()
    print(f"{machine()}, OpenVINO {ov.__version__}; {args.baseline} (5D attention) -> this checkout (4D), median ms "
          f"of {args.runs} interleaved rounds, batch 1 | batch 8")
    print("| model | runtime | batch 1 | batch 8 |\n|---|---|---:|---:|")
    rows = [(label, variant, window, size, "tensorrt", "OpenVINO, INT8", openvino_request)
            for label, variant, window, size in CASES]
    for label, variant, window, size in CASES:
        if (variant, window) in ORT_CASES:
            rows += [(label, variant, window, size, None, "onnxruntime, fp32", onnxruntime_session),
                     (label, variant, window, size, "onnxruntime", "onnxruntime, INT8 --target onnxruntime",
                      onnxruntime_session)]
    for label, variant, window, size, target, runtime, make in rows:
        name = f"{variant}.w{window}" + (f".{target}" if target else "") + ".onnx"
        cells = []
        for batch in (1, 8):
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
            ms = interleaved_ms({"old": make(old / name, batch, size, threads),
                                 "new": make(new / name, batch, size, threads)}, x, args.warmup, args.runs)
            cells.append(f"{ms['old']:.1f} -> {ms['new']:.1f} ({ms['old'] / ms['new']:.2f}x)")
        print(f"| {label} | {runtime} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
