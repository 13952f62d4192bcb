"""INT8 on x86 CPUs without VNNI (AVX2 only, or AVX-512 before Cascade Lake): 8-bit against 7-bit weights
(`quantize --reduce-range`), emulated on any CPU.

    python benchmarks/no_vnni_saturation.py [--demo swin_digits swinv2_digits]

Without VNNI, onnxruntime's U8S8 kernels and OpenVINO's int8 matmuls (oneDNN) multiply bytes with VPMADDUBSW, which
adds each pair of u8 x s8 products in saturating int16 (oneDNN's "Nuances of int8 computations"; signed activations
are shifted by +128 first). 8-bit weights can overflow that pair sum (2 x 255 x 127 > 32767); 7-bit weights cannot
(2 x 255 x 64 = 32640). A CPU with VNNI computes the exact sum, so the numbers for a CPU without it come from an
emulation: every quantized MatMul of the INT8 ONNX is rewritten to add its pairs of products clipped to int16 (the
patch-embedding Conv stays exact). The "this CPU" columns run the unmodified artifact; for 7-bit weights the
emulation must equal them. Demo models (bundled weights, 359 held-out digits), top-1 and logit deltas against the
float32 export, onnxruntime at batch 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from calibration import Int8Options, QuantizeOptions, quantize
from swin_deploy.artifact import read_info
from swin_deploy.data import list_images, load_all, transform_for
from swin_deploy.demo import write_digits
from swin_deploy.export import ExportOptions, export_variant
from swin_deploy.models import Weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

INT16 = (-32768.0, 32767.0)


def emulate_without_vnni(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of a Q/DQ model whose quantized MatMuls add pairs of byte products in saturating int16."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    made = {o: n for n in model.graph.node for o in n.output}
    nodes, extra = [], []

    def const(name, value, dtype=np.float32):
        extra.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    count = 0
    for node in model.graph.node:
        a, b = (made.get(i) for i in node.input[:2]) if node.op_type == "MatMul" else (None, None)
        if not (a and b and a.op_type == b.op_type == "DequantizeLinear" and b.input[0] in inits):
            nodes.append(node)
            continue
        count += 1
        p = f"novnni{count}_"
        w = inits[b.input[0]].astype(np.float32)  # (K, N), symmetric per output channel
        scale_w = inits[b.input[1]].astype(np.float32)
        scale_a = float(inits[a.input[1]])
        zero_a = float(inits[a.input[2]]) if len(a.input) > 2 else 0.0
        signed = inits[a.input[2]].dtype == np.int8 if len(a.input) > 2 else True
        shift = 128.0 if signed else 0.0  # s8 activations become u8 (+128), the shift is taken back exactly
        k = w.shape[0]
        assert k % 2 == 0, "Swin's linear layers have even fan-in"
        nodes += [
            helper.make_node("Cast", [a.input[0]], [p + "x0"], to=TensorProto.FLOAT),
            helper.make_node("Add", [p + "x0", const(p + "shift", shift)], [p + "x"]),
            helper.make_node("Slice", [p + "x", const(p + "s0", [0], np.int64), const(p + "end", [k], np.int64),
                                       const(p + "axis", [-1], np.int64), const(p + "step", [2], np.int64)], [p + "xe"]),
            helper.make_node("Slice", [p + "x", const(p + "s1", [1], np.int64), p + "end", p + "axis", p + "step"],
                             [p + "xo"]),
            helper.make_node("Unsqueeze", [p + "xe", const(p + "last", [-1], np.int64)], [p + "ue"]),
            helper.make_node("Unsqueeze", [p + "xo", p + "last"], [p + "uo"]),
            helper.make_node("Mul", [p + "ue", const(p + "we", w[0::2])], [p + "pe"]),
            helper.make_node("Mul", [p + "uo", const(p + "wo", w[1::2])], [p + "po"]),
            helper.make_node("Add", [p + "pe", p + "po"], [p + "pair"]),
            helper.make_node("Clip", [p + "pair", const(p + "lo", INT16[0]), const(p + "hi", INT16[1])], [p + "sat"]),
            helper.make_node("ReduceSum", [p + "sat", const(p + "k", [-2], np.int64)], [p + "acc"], keepdims=0),
            helper.make_node("Sub", [p + "acc", const(p + "zp", (zero_a + shift) * w.sum(0))], [p + "int"]),
            helper.make_node("Mul", [p + "int", const(p + "scale", scale_a * scale_w)], [p + "out"]),
            # the TensorRT target's Q/DQ carry float16 scales, and its MatMul computes in float16
            helper.make_node("Cast", [p + "out"], [node.output[0]],
                             to=TensorProto.FLOAT16 if inits[b.input[1]].dtype == np.float16 else TensorProto.FLOAT),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(extra)
    return model, count


def outputs(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", nargs="+", default=["swin_digits", "swinv2_digits"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = tmp / "data"
    write_digits(data)
    print(machine(), flush=True)
    print("| model | INT8 target | weights | top-1 this CPU / no VNNI | agreement with fp32 top-1, no VNNI | "
          "mean abs logit delta this CPU / no VNNI | max rel delta this CPU / no VNNI | emulated matmuls |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    plain = ort.SessionOptions()  # the emulation runs as written: no graph rewrite may touch the clipped sums
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    for name in args.demo:
        fp32 = export_variant(name, Weights(), tmp / f"{name}.onnx", ExportOptions(max_batch=32)).path
        info = read_info(fp32)
        x, labels = load_all(list_images(data / "val", num_classes=info.num_classes), transform_for(info))
        ref = outputs(ort.InferenceSession(fp32, providers=["CPUExecutionProvider"]), x)
        for target in ("onnxruntime", "tensorrt"):
            for reduce_range in (False, True):
                options = QuantizeOptions("int8", calib_data=data / "calib",
                                          int8=Int8Options(target=target, reduce_range=reduce_range))
                path = quantize(fp32, tmp / f"{name}.{target}.{reduce_range}.onnx", options).path
                model = onnx.load(str(path))
                emulated, count = emulate_without_vnni(model)
                runs = {"cpu": ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]),
                        "novnni": ort.InferenceSession(emulated.SerializeToString(), plain,
                                                       providers=["CPUExecutionProvider"])}
                out = {k: outputs(s, x) for k, s in runs.items()}
                top1 = {k: 100 * float((o.argmax(1) == labels).mean()) for k, o in out.items()}
                agree = 100 * float((out["novnni"].argmax(1) == ref.argmax(1)).mean())
                mean_abs = {k: float(np.abs(o - ref).mean()) for k, o in out.items()}
                max_rel = {k: float(np.abs(o - ref).max() / np.abs(ref).max()) for k, o in out.items()}
                print(f"| {name} | {target} | {'7-bit' if reduce_range else '8-bit'} | "
                      f"{top1['cpu']:.2f} / {top1['novnni']:.2f} | {agree:.2f} | "
                      f"{mean_abs['cpu']:.4f} / {mean_abs['novnni']:.4f} | {max_rel['cpu']:.4f} / {max_rel['novnni']:.4f} "
                      f"| {count} |", flush=True)


if __name__ == "__main__":
    main()
