"""A lint of an ONNX against TensorRT's ONNX parser rules, without TensorRT: what can be proven statically.

Rules (each finding names the node, its op, what is wrong and how to fix it):
  * opset within what the TensorRT version parses; default-domain ops only;
  * every op in the support table (tensorrt_onnx_ops.json, from onnx-tensorrt's docs/operators.md; its `_source`
    names the revision) with every input and output of a type the table lists for it;
  * Q/DQ: zero points absent-as-int8 or all zero int8 (the parser takes symmetric int8 only); scales constant,
    positive and finite, of the high-precision float type at opset >= 19; a per-channel scale 1-D with an explicit
    axis equal to the weight's output-channel axis (the parser defaults to 0, wrong for MatMul weights [K, N]); no
    per-channel activation quantization; uint8 only as a network input or output, and then only into a Cast;
  * strong typing: strict ONNX type and shape inference passes, every tensor is typed, no op mixes float types
    without an explicit Cast, and the I/O types are the ones the metadata says;
  * dynamic dims: only the batch (and H, W for a dynamic-size export) are symbolic; every shape-tensor input the
    parser needs at build time (Reshape/Expand/Tile shapes, Slice/Pad parameters, Reduce axes, ...) is a constant
    or computed from input shapes only (Shape ops and constants), never from tensor data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .. import defaults
from ..artifact import ORT_ONLY_INT8, ArtifactInfo, load_onnx
from ..errors import UserError
from ..precision.graph import consumers, opset_of, producers

TABLE = Path(__file__).with_name("tensorrt_onnx_ops.json")
VERSIONS = (10, 11)
TYPE_NAMES = {TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
              TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.INT8: "INT8",
              TensorProto.UINT8: "UINT8", TensorProto.BOOL: "BOOL", TensorProto.DOUBLE: "DOUBLE",
              TensorProto.FLOAT8E4M3FN: "FP8", TensorProto.INT4: "INT4"}
FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}
# inputs the parser reads as build-time shape values: (op, input index) -> what it is
SHAPE_INPUTS = {("Reshape", 1): "shape", ("Expand", 1): "shape", ("Tile", 1): "repeats",
                ("ConstantOfShape", 0): "shape", ("Range", 0): "start", ("Range", 1): "limit", ("Range", 2): "delta",
                ("Slice", 1): "starts", ("Slice", 2): "ends", ("Slice", 3): "axes", ("Slice", 4): "steps",
                ("Pad", 1): "pads", ("Pad", 3): "axes", ("Split", 1): "split", ("Resize", 2): "scales",
                ("Resize", 3): "sizes", ("TopK", 1): "K", ("OneHot", 1): "depth"}
# inputs the table says must be initializers / build-time constants
CONSTANT_INPUTS = {**{(r, 1): "axes" for r in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                               "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
                   ("Squeeze", 1): "axes", ("Unsqueeze", 1): "axes", ("CumSum", 1): "axis",
                   ("Dropout", 2): "training_mode"}
BOOL_RESULT = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "IsNaN", "IsInf", "Not", "And", "Or", "Xor"}
# the weight input of each weighted op and its output-channel axis, by the op's attributes
WEIGHT_INPUT = {"MatMul": 1, "Gemm": 1, "Conv": 1, "ConvTranspose": 1}


@dataclass(frozen=True)
class Finding:
    node: str
    op: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.node} ({self.op}): {self.problem}; {self.fix}"


@cache
def support_table() -> dict:
    return json.loads(TABLE.read_text())


def max_opset(version: int) -> int:
    return support_table()["_source"][f"tensorrt_{version}"]["max_opset"]


def check_onnx(path: str | Path, tensorrt: int = defaults.TENSORRT_VERSION) -> list[Finding]:
    """Findings for the ONNX at `path` against TensorRT `tensorrt` (10 or 11); empty when clean."""
    if tensorrt not in VERSIONS:
        raise UserError(f"`tensorrt` takes {' or '.join(map(str, VERSIONS))}, not {tensorrt}")
    model = load_onnx(path)
    info = ArtifactInfo.from_props({p.key: p.value for p in model.metadata_props})
    return check_model(model, info, tensorrt)


def check_model(model: onnx.ModelProto, info: ArtifactInfo | None = None,
                tensorrt: int = defaults.TENSORRT_VERSION) -> list[Finding]:
    findings: list[Finding] = []
    graph_name = model.graph.name or "graph"
    opset = opset_of(model)
    table = support_table()
    lo, hi = table["_source"][f"tensorrt_{tensorrt}"]["min_opset"], max_opset(tensorrt)
    if not lo <= opset <= hi:
        findings.append(Finding(graph_name, "model", f"opset {opset} is outside TensorRT {tensorrt}'s {lo}-{hi}",
                                f"re-export with an opset in {lo}-{hi}"))
    if info is not None and info.onnxruntime_only:
        what, fix = ORT_ONLY_INT8.split(": ", 1)
        findings.append(Finding(graph_name, "model", what.replace(", which TensorRT does not take", ""), fix))
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as e:  # InferenceError / ValidationError: the graph is not consistently typed
        first = str(e).strip().splitlines()[0][:200]
        return [*findings, Finding(graph_name, "model", f"strict ONNX type and shape inference fails: {first}",
                                   "fix the node it names (TensorRT's strongly typed parser needs every type)")]
    g = Graph(inferred)
    for node in inferred.graph.node:
        findings += _check_op(g, node, table["operators"])
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            findings += _check_qdq(g, node, opset)
        findings += _check_mixed_floats(g, node)
        findings += _check_build_time_inputs(g, node)
    findings += _check_typed(g)
    findings += _check_io(g, info)
    return findings


class Graph:
    """Lookups over an inferred graph: producers, consumers, types, constants."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.graph = graph
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = {v.name: v for v in graph.input if v.name not in self.initializers}
        self.outputs = {v.name: v for v in graph.output}
        self.producer = producers(graph)
        self.consumers = consumers(graph)
        self.types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
        self.types.update({t.name: t.data_type for t in graph.initializer})
        self.value_info = {v.name: v for v in [*graph.value_info, *graph.input, *graph.output]}

    def type_of(self, name: str) -> int:
        return self.types.get(name, 0)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output; None for anything computed."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None

    def is_constant(self, name: str) -> bool:
        return name in self.initializers or (name in self.producer and self.producer[name].op_type == "Constant")

    def data_sources(self, name: str) -> Iterable[str]:
        """Graph inputs that reach `name` through anything but a Shape op (whose output depends on shapes only)."""
        seen, stack = set(), [name]
        while stack:
            cur = stack.pop()
            if cur in seen or not cur:
                continue
            seen.add(cur)
            if cur in self.inputs:
                yield cur
                continue
            node = self.producer.get(cur)
            if node is None or node.op_type in ("Shape", "Size", "Constant"):
                continue
            stack.extend(node.input)


def _label(node) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _check_op(g: Graph, node, operators: dict) -> list[Finding]:
    if node.domain not in ("", "ai.onnx"):
        return [Finding(_label(node), f"{node.domain}::{node.op_type}", "a custom-domain op that TensorRT's ONNX parser "
                        "has no importer for", "export or quantize for TensorRT (--target tensorrt), not onnxruntime")]
    row = operators.get(node.op_type)
    if row is None:
        return [Finding(_label(node), node.op_type, "not in the TensorRT support table (swin_deploy/lint/"
                        "tensorrt_onnx_ops.json)", "replace the op, or check onnx-tensorrt's operators.md and add its row")]
    if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
        return []  # types are Q/DQ rules, below
    allowed = set(row["types"])
    found = []
    # the table lists the types an op computes in: a comparison's output is BOOL whatever it compares
    checked = node.input if node.op_type in BOOL_RESULT else [*node.input, *node.output]
    for name in checked:
        t = g.type_of(name) if name else 0
        if not t:
            continue  # untyped: reported once by _check_typed
        type_name = TYPE_NAMES.get(t, f"type {t}")
        if type_name == "UINT8" and node.op_type == "Cast" and name in g.inputs:
            continue  # uint8 network input straight into a Cast: allowed
        if type_name not in allowed:
            found.append(Finding(_label(node), node.op_type, f"tensor '{name}' is {type_name}, which TensorRT's "
                                 f"{node.op_type} does not take ({', '.join(row['types'])})",
                                 "cast it to a supported type before the op"))
    return found


def _check_qdq(g: Graph, node, opset: int) -> list[Finding]:
    label, op = _label(node), node.op_type
    found = []
    x, scale = node.input[0], node.input[1]
    zero = node.input[2] if len(node.input) > 2 and node.input[2] else None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    # the quantized side's dtype: from the zero point, else the default (uint8 for QuantizeLinear)
    qtype = g.type_of(zero) if zero else (TensorProto.UINT8 if op == "QuantizeLinear" else g.type_of(x))
    if op == "QuantizeLinear" and "output_dtype" in attrs and not zero:
        qtype = attrs["output_dtype"]
    if qtype != TensorProto.INT8:
        found.append(Finding(label, op, f"quantizes to {TYPE_NAMES.get(qtype, qtype)}, TensorRT takes symmetric int8 only",
                             "give an int8 zero point of 0 (quantize with --target tensorrt)"))
    if zero is not None:
        z = g.constant(zero)
        if z is None or np.any(z != 0):
            found.append(Finding(label, op, "zero point is not all zeros", "use symmetric quantization (zero point 0)"))
    s = g.constant(scale)
    if s is None:
        found.append(Finding(label, op, f"scale '{scale}' is computed, not a constant", "make the scale an initializer"))
        return found
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        found.append(Finding(label, op, "scale has a zero, negative or non-finite value", "recalibrate: scales must be > 0"))
    high = g.type_of(x) if op == "QuantizeLinear" else g.type_of(node.output[0])
    if opset >= 19 and g.type_of(scale) not in FLOATS:
        found.append(Finding(label, op, "scale is not a float", "store the scale as float16/float32"))
    elif opset >= 19 and high in FLOATS and g.type_of(scale) != high:
        found.append(Finding(label, op, f"scale is {TYPE_NAMES.get(g.type_of(scale))} but the high-precision side is "
                             f"{TYPE_NAMES.get(high)}", "store the scale in the high-precision type"))
    if s.ndim > 1:
        found.append(Finding(label, op, f"scale has rank {s.ndim}", "use a scalar or a 1-D per-channel scale"))
    elif s.ndim == 1 and s.size > 1:
        found += _check_per_channel(g, node, attrs, s.size)
    return found


def _check_per_channel(g: Graph, node, attrs: dict, channels: int) -> list[Finding]:
    label, op = _label(node), node.op_type
    source = node.input[0]
    if op == "DequantizeLinear" and not g.is_constant(source):
        q = g.producer.get(source)  # DQ(Q(constant)): the weight is the Q's input
        source = q.input[0] if q is not None and q.op_type == "QuantizeLinear" else source
    if not g.is_constant(source):
        return [Finding(label, op, "per-channel quantization of an activation", "quantize activations per tensor")]
    if "axis" not in attrs:
        return [Finding(label, op, "per-channel scale without an explicit axis (TensorRT's parser then uses 0)",
                        "write the axis of the weight's output channels")]
    if op != "DequantizeLinear":
        return []
    rank = len(g.constant(source).shape)
    axis = attrs["axis"] % rank if rank else attrs["axis"]
    for consumer in g.consumers.get(node.output[0], []):
        want = _output_channel_axis(consumer, node.output[0], rank)
        if want is not None and axis != want:
            return [Finding(label, op, f"per-channel axis {axis} feeds {consumer.op_type} '{_label(consumer)}', whose "
                            f"output channels are axis {want} of the weight", f"write axis {want}")]
    return []


def _output_channel_axis(consumer, weight: str, rank: int) -> int | None:
    if WEIGHT_INPUT.get(consumer.op_type) is None or list(consumer.input).index(weight) != WEIGHT_INPUT[consumer.op_type]:
        return None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in consumer.attribute}
    if consumer.op_type == "MatMul":
        return rank - 1  # [..., K, N]
    if consumer.op_type == "Gemm":
        return 0 if attrs.get("transB", 0) else 1
    if consumer.op_type == "ConvTranspose":
        return 1
    return 0  # Conv: [C_out, C_in, kh, kw]


MIXED_FLOAT_OPS = {"Add", "Sub", "Mul", "Div", "Pow", "MatMul", "Gemm", "Conv", "Concat", "Sum", "Max", "Min",
                   "LayerNormalization", "Where", "Equal", "Less", "Greater"}


def _check_mixed_floats(g: Graph, node) -> list[Finding]:
    if node.op_type not in MIXED_FLOAT_OPS:
        return []
    inputs = node.input[1:] if node.op_type == "Where" else node.input
    floats = {g.type_of(i) for i in inputs if i and g.type_of(i) in FLOATS}
    if len(floats) > 1:
        names = ", ".join(TYPE_NAMES.get(t, str(t)) for t in sorted(floats))
        return [Finding(_label(node), node.op_type, f"mixes float types ({names}) without a Cast",
                        "insert an explicit Cast so every input has one type")]
    return []


def _check_build_time_inputs(g: Graph, node) -> list[Finding]:
    found = []
    for i, name in enumerate(node.input):
        if not name:
            continue
        what = CONSTANT_INPUTS.get((node.op_type, i))
        if what is not None and not g.is_constant(name):
            found.append(Finding(_label(node), node.op_type, f"`{what}` input '{name}' is computed",
                                 f"make `{what}` an initializer (TensorRT needs it at build time)"))
            continue
        what = SHAPE_INPUTS.get((node.op_type, i))
        if what is None or g.is_constant(name):
            continue
        sources = sorted(set(g.data_sources(name)))
        if sources:
            found.append(Finding(_label(node), node.op_type, f"`{what}` input '{name}' is computed from the data of "
                                 f"'{sources[0]}', not from shapes", "compute it from Shape ops and constants only"))
    return found


def _check_typed(g: Graph) -> list[Finding]:
    found = []
    for node in g.graph.node:
        for out in node.output:
            if out and not g.type_of(out):
                found.append(Finding(_label(node), node.op_type, f"output '{out}' has no type after inference",
                                     "give the op typed inputs (TensorRT's strongly typed network needs every type)"))
    return found


def _check_io(g: Graph, info: ArtifactInfo | None) -> list[Finding]:
    found = []
    want_in = TensorProto.UINT8 if info is not None and info.pixels else TensorProto.FLOAT
    for name, v in g.inputs.items():
        if g.type_of(name) != want_in:
            found.append(Finding(name, "input", f"is {TYPE_NAMES.get(g.type_of(name))}, the metadata says "
                                 f"{TYPE_NAMES[want_in]}", "re-export; the input type must match the metadata"))
        if g.type_of(name) == TensorProto.UINT8:
            bad = [c for c in g.consumers.get(name, []) if c.op_type != "Cast"]
            if bad:
                found.append(Finding(_label(bad[0]), bad[0].op_type, "takes the uint8 network input directly",
                                     "Cast the uint8 input to a float first (TensorRT takes uint8 only into a Cast)"))
        found += _symbolic_dims(name, v, _allowed_symbolic_input(info), "input")
    for name, v in g.outputs.items():
        if g.type_of(name) != TensorProto.FLOAT:
            found.append(Finding(name, "output", f"is {TYPE_NAMES.get(g.type_of(name))}, not FP32",
                                 "keep outputs float32 (Cast back at the end)"))
        spatial = {2, 3} if info is not None and info.dynamic_size else set()
        found += _symbolic_dims(name, v, {0} | spatial, "output")
    for node in g.graph.node:  # uint8 anywhere but the network I/O
        for out in node.output:
            if g.type_of(out) == TensorProto.UINT8 and out not in g.outputs:
                found.append(Finding(_label(node), node.op_type, f"'{out}' is uint8 inside the network",
                                     "TensorRT takes uint8 only as network I/O: use int8 (symmetric) instead"))
    return found


def _allowed_symbolic_input(info: ArtifactInfo | None) -> set[int]:
    if info is None or not info.dynamic_size:
        return {0}
    return {0, 1, 2} if info.channels_last else {0, 2, 3}


def _symbolic_dims(name: str, value, allowed: set[int], kind: str) -> list[Finding]:
    dims = value.type.tensor_type.shape.dim
    bad = [i for i, d in enumerate(dims) if not d.HasField("dim_value") and i not in allowed]
    if bad:
        return [Finding(name, kind, f"dimension {bad[0]} is symbolic",
                        "only the batch (and H, W of a dynamic-size export) may be; fix the export's dynamic axes")]
    return []
