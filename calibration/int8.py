"""INT8 post-training static quantization to explicit Q/DQ, for TensorRT or onnxruntime (options: options.py).

Targets (the measurements behind these choices are in benchmarks/RESULTS.md):
  tensorrt     symmetric int8 activations and weights (zero point 0, the only form TensorRT
               accepts), per-channel weights, high precision float16 elsewhere by default
               (the model moves to opset 19 so Q/DQ carry float16 scales and no Cast sits
               between DequantizeLinear and its MatMul);
  onnxruntime  uint8 activations with int8 weights (U8S8), the form onnxruntime's x86 kernels run fast
               (its S8S8 path was slower than FP32), high precision float32, nodes left in float reading
               float tensors (V2's residual stream), and q k^T as onnxruntime's FusedMatMul (transB) so k
               is not transposed element by element.
Ranges come from calibration.ranges; onnxruntime's QDQQuantizer writes the Q/DQ pairs.
"""

from __future__ import annotations

from typing import NamedTuple

import onnx
from onnx import version_converter
from onnxruntime.quantization import QuantType
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

from swin_deploy import defaults
from swin_deploy.enums import HighPrecision, Int8Target
from swin_deploy.precision.fp16 import convert_fp16, default_block_list, hot_block_list
from swin_deploy.precision.graph import (
    consumers,
    fold_transpose_into_matmul,
    opset_of,
    own_float_initializers,
    producers,
    toposort,
)

from .options import Int8Options
from .placement import Placement, select_nodes
from .ranges import Ranges

QDQ_FP16_OPSET = 19
def quantize_int8(model: onnx.ModelProto, ranges: Ranges, options: Int8Options,
                  fp16_keep_above: float = defaults.FP16_KEEP_ABOVE) -> tuple[onnx.ModelProto, Placement]:
    """Q/DQ model (and the placement used) from a float32 model and its calibration ranges. With float16 outside the
    Q/DQ, the nodes that write or read a tensor whose peak passes `fp16_keep_above` stay float32, as in FP16
    (where `ranges` measured the peaks: `Placement.float32_hot` counts them)."""
    symmetric = options.target == Int8Target.TENSORRT
    high = options.high
    if high == HighPrecision.FP16 and opset_of(model) < QDQ_FP16_OPSET:
        # Q/DQ with float16 scales (opset 19+) let DequantizeLinear feed a float16 MatMul directly; at
        # lower opsets the converter must put a Cast between them, which hides the pattern TensorRT fuses
        model = version_converter.convert_version(model, QDQ_FP16_OPSET)
    placement = select_nodes(model, options.attention, options.quantize_head, options.exclude, options.placement)
    ops = list(options.calibrated_ops)
    quantizer = QDQQuantizer(
        model, per_channel=True, reduce_range=options.reduce_range, weight_qType=QuantType.QInt8,
        activation_qType=QuantType.QInt8 if symmetric else QuantType.QUInt8,
        tensors_range=ranges.tensors_data(), nodes_to_quantize=placement.quantize, nodes_to_exclude=[],
        op_types_to_quantize=ops,
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True,
                       # Q/DQ on the inputs of weighted ops only (what TensorRT fuses); onnxruntime's default also
                       # quantizes their outputs, a round trip into the float GELU/residual/softmax that cost
                       # ~25% of the INT8 model's time on CPU
                       # (nvidia placement: a residual Add's inputs, its output stays float for the LayerNorm)
                       "OpTypesToExcludeOutputQuantization": ops,
                       # MatMul weights are (in, out): one scale per output channel is axis 1
                       "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
                       # onnxruntime quantizes Conv/Gemm biases to int32 by default; TensorRT's DequantizeLinear
                       # takes int8 (fp8/int4) only, so for TensorRT the bias stays float (found by `check`)
                       "QuantizeBias": not symmetric},
    )
    quantizer.quantize_model()
    qmodel = quantizer.model.model
    toposort(qmodel.graph)  # the quantizer appends the input's Q/DQ after its consumers
    if high == HighPrecision.FP16:
        hot = [] if ranges.float_peaks is None else hot_block_list(qmodel, ranges.float_peaks, fp16_keep_above)
        own_float_initializers(qmodel.graph, set(hot))  # a Q/DQ kept in float32 keeps a float32 scale
        placement.float32_hot = len(hot)
        qmodel = convert_fp16(qmodel, sorted(set(default_block_list(qmodel)) | set(hot)))
    if options.target == Int8Target.ONNXRUNTIME:
        float_for_float_nodes(qmodel, set(placement.quantize))
        fold_transpose_into_matmul(qmodel)
    return qmodel, placement


class CoarseProbabilities(NamedTuple):
    """Quantized attention probabilities whose int8 step is at or above their window's mean probability."""
    coarse: int  # of `quantized` tensors
    quantized: int
    step: float  # the largest such step
    keys: int  # the most keys a coarse window attends to


def coarse_attention_probabilities(model: onnx.ModelProto, ranges: Ranges, quantized: set[str],
                                   symmetric: bool) -> CoarseProbabilities | None:
    """The attention probabilities (Softmax outputs read by a quantized MatMul, `attn @ v`) whose int8 step is at or
    above 1/N, the mean probability over a window's N keys: most of their probabilities then round to 0 or to one
    step, and the attention no longer sums to 1. The step is what onnxruntime's quantizer makes of the calibrated
    range (max|x| / 127 symmetric, (max - min(0, min)) / 255 asymmetric), so it grows with the largest probability
    seen and the window's size does not shrink it. None when no probability tensor is quantized."""
    readers = consumers(model.graph)
    shapes = {v.name: v.type.tensor_type.shape for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    found = []
    for node in model.graph.node:
        out = node.output[0] if node.op_type == "Softmax" else None
        if out not in ranges.ranges or not any(r.name in quantized for r in readers.get(out, [])):
            continue
        lo, hi = ranges.ranges[out]
        step = max(abs(lo), abs(hi)) / 127 if symmetric else (hi - min(0.0, lo)) / 255
        dims = shapes[out].dim if out in shapes else []
        keys = dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else 0  # static: a window's tokens
        found.append((step, keys))
    if not found:
        return None
    coarse = [(step, keys) for step, keys in found if keys and step * keys >= 1]
    return CoarseProbabilities(len(coarse), len(found), max((s for s, _ in coarse), default=0.0),
                               max((k for _, k in coarse), default=0))


def float_for_float_nodes(model: onnx.ModelProto, quantized: set[str]) -> int:
    """Nodes left in high precision read the float tensor a Q/DQ pair sits on, not its int8 round trip; returns how
    many inputs were rewired.

    onnxruntime's quantizer gives every consumer of a quantized tensor the DequantizeLinear output. In Swin V2
    (res-post-norm) the residual stream itself is a linear layer's input, so the residual adds summed int8-rounded
    values and each paid a DequantizeLinear of its own: the demo V2 model's mean logit delta was 15% higher, and
    swinv2_t's INT8 ~2% slower (benchmarks/RESULTS.md, "INT8 for onnxruntime: V2's residual stream in float"). Only
    a DequantizeLinear that feeds a quantized node directly is bypassed (one feeding a Reshape on the way to a MatMul
    is that MatMul's input). Not for TensorRT: its target stays what it parses.
    """
    graph = model.graph
    made, used_by = producers(graph), consumers(graph)
    rewired = 0
    for dq in graph.node:
        q = made.get(dq.input[0]) if dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear":
            continue  # not an activation's pair (weights have no QuantizeLinear)
        readers = used_by.get(dq.output[0], [])
        if not any(r.name in quantized for r in readers):
            continue
        for reader in readers:
            if reader.name not in quantized:
                for i, name in enumerate(reader.input):
                    if name == dq.output[0]:
                        reader.input[i] = q.input[0]
                        rewired += 1
    return rewired
