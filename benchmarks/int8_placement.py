"""INT8 Q/DQ placement for TensorRT, `linear` vs `nvidia`, measured on CPU (onnxruntime runs the Q/DQ graphs).

    python benchmarks/int8_placement.py [--random swin_t swinv2_t] [--random-images 64]

For the two demo models (bundled weights, 359 held-out digit images) every calibration method, and for random-weight
swin_t/swinv2_t (minmax, calibrated and checked on upscaled digit images: logits only, their top-1 means nothing):
top-1 drop against the float32 PyTorch reference, max relative logit delta, min cosine, and the graph's size
(nodes, QuantizeLinear, Cast). All INT8 graphs are written for TensorRT (symmetric int8, float16 elsewhere) and pass
`swin-deploy check`. Speed is TensorRT's business and is not measured here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import onnx

from calibration import Int8Options, QuantizeOptions, quantize
from swin_deploy.demo import write_digits
from swin_deploy.export import ExportOptions, export_variant
from swin_deploy.models import Weights
from swin_deploy.verify.run import VerifyOptions, verify_artifact

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

PLACEMENTS = ("linear", "nvidia")
METHODS = ("minmax", "entropy", "percentile")


def measure(fp32: Path, data: Path, placement: str, method: str, weights: Weights, limit: int | None,
            calib_images: int, out: Path) -> list[str]:
    options = QuantizeOptions("int8", calib_data=data / "calib", calib_images=calib_images,
                              int8=Int8Options(method=method, placement=placement))
    int8 = quantize(fp32, out, options).path
    result = verify_artifact(int8, VerifyOptions(weights=weights, data=data / "val", limit=limit, batch_sizes=[32]))
    m = result.batches[0].metrics
    ops = Counter(n.op_type for n in onnx.load(str(int8)).graph.node)
    drop = f"{m['top1_drop']:.2f}" if limit is None else "-"
    return [drop, f"{m['max_rel_delta']:.4f}", f"{m['min_cosine']:.5f}", str(sum(ops.values())),
            str(ops["QuantizeLinear"]), str(ops["Cast"]),
            "pass" if result.passed else "FAIL: " + ", ".join(c.metric for c in result.batches[0].checks if not c.passed)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", nargs="*", default=["swin_digits", "swinv2_digits"])
    ap.add_argument("--random", nargs="*", default=["swin_t", "swinv2_t"])
    ap.add_argument("--random-images", type=int, default=64)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = tmp / "data"
    write_digits(data)
    print(machine(), flush=True)
    print("| model | placement | method | top-1 drop (points) | max rel delta | min cosine | nodes | QuantizeLinear "
          "| Cast | int8 gates |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    cases = [(name, Weights(), METHODS, None, 512) for name in args.demo]
    cases += [(name, Weights("random"), ("minmax",), args.random_images, args.random_images) for name in args.random]
    for name, weights, methods, limit, calib_images in cases:
        fp32 = export_variant(name, weights, tmp / f"{name}.onnx", ExportOptions(max_batch=32)).path
        for placement in PLACEMENTS:
            for method in methods:
                row = measure(fp32, data, placement, method, weights, limit, calib_images,
                              tmp / f"{name}.{placement}.{method}.onnx")
                print(f"| {name} | {placement} | {method} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
