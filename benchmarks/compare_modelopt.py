"""swin-deploy's INT8 placements against NVIDIA Model Optimizer's ONNX post-training quantization, same FP32 export,
same calibration images, on CPU.

    pip install 'nvidia-modelopt[onnx]'    # optional; see the note below
    python benchmarks/compare_modelopt.py [--model swinv2_digits] [--method minmax]

Model Optimizer calibrates on CPU here (`calibration_eps=["cpu"]`, method "max" for minmax, "entropy" for entropy).
Reported: which tensors each graph feeds through Q/DQ (by the op and input slot they feed), where the two differ, and
accuracy side by side (top-1 drop on the demo val set, max relative delta, min cosine, through `verify`).

Without Model Optimizer installed this prints why and exits 0 (its `onnx` extra pins onnxruntime-gpu ~= 1.24 and
onnx ~= 1.21 and pulls cupy, so it wants an environment of its own).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx

from calibration import Int8Options, QuantizeOptions, quantize
from swin_deploy.artifact import read_info, write_info
from swin_deploy.data import list_images, load_all, transform_for
from swin_deploy.demo import write_digits
from swin_deploy.enums import Precision
from swin_deploy.export import ExportOptions, export_variant
from swin_deploy.models import Weights
from swin_deploy.verify.run import VerifyOptions, verify_artifact

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

MODELOPT_METHODS = {"minmax": "max", "entropy": "entropy"}


def quantized_slots(path: Path) -> Counter:
    """(consumer op, input slot) for every tensor a DequantizeLinear feeds, counted: where the graph is int8."""
    graph = onnx.load(str(path)).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    init = {t.name for t in graph.initializer}
    made = {o: n for n in graph.node for o in n.output}
    slots = Counter()
    for n in graph.node:
        for i, name in enumerate(n.input):
            if name in dq:
                src = made[name].input[0]
                kind = "weight" if src in init or (src in made and made[src].input[0] in init) else "activation"
                slots[(n.op_type, i, kind)] += 1
    return slots


def accuracy(path: Path, data: Path) -> list[str]:
    result = verify_artifact(path, VerifyOptions(data=data / "val", batch_sizes=[32]))
    m = result.batches[0].metrics
    return [f"{m['top1_drop']:.2f}", f"{m['max_rel_delta']:.4f}", f"{m['min_cosine']:.5f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="swinv2_digits")
    ap.add_argument("--method", default="minmax", choices=list(MODELOPT_METHODS))
    ap.add_argument("--calib-images", type=int, default=512)
    args = ap.parse_args()
    try:
        from modelopt.onnx.quantization import quantize as modelopt_quantize
    except ImportError:
        print("Model Optimizer is not installed (pip install 'nvidia-modelopt[onnx]', best in a separate environment: "
              "its onnx extra pins onnxruntime-gpu ~= 1.24 and onnx ~= 1.21): comparison skipped", file=sys.stderr)
        return
    tmp = Path(tempfile.mkdtemp())
    data = tmp / "data"
    write_digits(data)
    print(machine(), flush=True)
    fp32 = export_variant(args.model, Weights(), tmp / f"{args.model}.onnx", ExportOptions(max_batch=32)).path
    paths = {}
    for placement in ("linear", "nvidia"):
        options = QuantizeOptions("int8", calib_data=data / "calib", calib_images=args.calib_images,
                                  int8=Int8Options(method=args.method, placement=placement))
        paths[f"swin-deploy {placement}"] = quantize(fp32, tmp / f"{placement}.onnx", options).path
    info = read_info(fp32)
    images = list_images(data / "calib", limit=args.calib_images)
    calib, _ = load_all(images, transform_for(info))
    out = tmp / "modelopt.onnx"
    modelopt_quantize(str(fp32), quantize_mode="int8", calibration_data={"input": calib.astype(np.float32)},
                      calibration_method=MODELOPT_METHODS[args.method], calibration_eps=["cpu"], output_path=str(out))
    model = onnx.load(str(out))  # keep swin-deploy's metadata so verify knows the reference, and say it is INT8
    info.precision = Precision.INT8
    write_info(model, info)
    onnx.save(model, str(out))
    paths["Model Optimizer"] = out
    slots = {label: quantized_slots(p) for label, p in paths.items()}
    print("| graph | top-1 drop | max rel delta | min cosine | Q/DQ-fed inputs |")
    print("|---|---:|---:|---:|---:|")
    for label, p in paths.items():
        print(f"| {label} | " + " | ".join(accuracy(p, data)) + f" | {sum(slots[label].values())} |", flush=True)
    print("\n| consumer op | input | kind | " + " | ".join(paths) + " |")
    print("|---|---:|---|" + "---:|" * len(paths))
    for key in sorted(set().union(*slots.values())):
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(str(slots[label][key]) for label in paths) + " |")


if __name__ == "__main__":
    main()
