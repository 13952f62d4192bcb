"""INT8 post-training static quantization to explicit Q/DQ, for TensorRT or onnxruntime.

Targets (the measurements behind these choices are in the README's INT8 section):
  tensorrt     symmetric int8 activations and weights (zero point 0, the only form TensorRT
               accepts), per-channel weights, high precision float16 elsewhere by default
               (the model moves to opset 19 so Q/DQ carry float16 scales and no Cast sits
               between DequantizeLinear and its MatMul);
  onnxruntime  uint8 activations with int8 weights (U8S8), which onnxruntime's x86 kernels run fast
               (S8S8 ran at 0.56x FP32 speed at batch 1), high precision float32, and q k^T as
               onnxruntime's FusedMatMul (transB) so k is not transposed element by element.
Ranges come from calibration.ranges; onnxruntime's QDQQuantizer writes the Q/DQ pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import version_converter
from onnxruntime.quantization import QuantType
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

from swin_deploy import defaults
from swin_deploy.enums import CalibMethod, HighPrecision, Int8Target, QdqPlacement
from swin_deploy.errors import UserError
from swin_deploy.precision.fp16 import convert_fp16, default_block_list
from swin_deploy.precision.graph import fold_transpose_into_matmul, opset_of, toposort

from .placement import Placement, select_nodes
from .ranges import Ranges, check_percentile

QDQ_FP16_OPSET = 19
DEFAULT_HIGH_PRECISION = {Int8Target.TENSORRT: HighPrecision.FP16, Int8Target.ONNXRUNTIME: HighPrecision.FP32}
# Attention matmuls (q k^T, attn v) in float for both targets: on onnxruntime CPU (swin_t, U8S8) quantizing them
# made INT8 slower (README, INT8 section) at the same demo-model accuracy. TensorRT could not be measured here,
# so it follows the same evidence; `attention_matmuls` turns them on for either target.
DEFAULT_ATTENTION_MATMULS = {Int8Target.TENSORRT: False, Int8Target.ONNXRUNTIME: False}


@dataclass
class Int8Options:
    """How to place and write INT8 Q/DQ; validated (and strings turned into enums) on construction."""

    target: Int8Target = Int8Target.TENSORRT
    method: CalibMethod = CalibMethod.MINMAX
    percentile: float = defaults.PERCENTILE
    attention_matmuls: bool | None = None  # None: the target's default
    quantize_head: bool = False
    exclude: list[str] = field(default_factory=list)
    high_precision: HighPrecision | None = None  # None: the target's default
    placement: QdqPlacement = QdqPlacement.LINEAR  # nvidia: + attention matmuls and residual adds

    def __post_init__(self) -> None:
        self.target = Int8Target.parse(self.target)
        self.method = CalibMethod.parse(self.method)
        self.placement = QdqPlacement.parse(self.placement, "placement")
        if self.placement == QdqPlacement.NVIDIA and self.attention_matmuls is False:
            raise UserError("`placement` nvidia quantizes the attention matmuls: drop `no_attention_matmuls`, "
                            "or use `placement` linear")
        if self.high_precision is not None:
            self.high_precision = HighPrecision.parse(self.high_precision, "high_precision")
        if self.method == CalibMethod.PERCENTILE:
            check_percentile(self.percentile)
        self.exclude = list(self.exclude)

    @property
    def high(self) -> HighPrecision:
        return self.high_precision or DEFAULT_HIGH_PRECISION[self.target]

    @property
    def attention(self) -> bool:
        if self.placement == QdqPlacement.NVIDIA:
            return True
        return DEFAULT_ATTENTION_MATMULS[self.target] if self.attention_matmuls is None else self.attention_matmuls

    @property
    def calibrated_ops(self) -> tuple[str, ...]:
        """The op types whose inputs and outputs calibration must measure for this placement."""
        return ("MatMul", "Conv", "Gemm", "Add") if self.placement == QdqPlacement.NVIDIA else ("MatMul", "Conv", "Gemm")


def quantize_int8(model: onnx.ModelProto, ranges: Ranges, options: Int8Options) -> tuple[onnx.ModelProto, Placement]:
    """Q/DQ model (and the placement used) from a float32 model and its calibration ranges."""
    symmetric = options.target == Int8Target.TENSORRT
    high = options.high
    if high == HighPrecision.FP16 and opset_of(model) < QDQ_FP16_OPSET:
        # Q/DQ with float16 scales (opset 19+) let DequantizeLinear feed a float16 MatMul directly; at
        # lower opsets the converter must put a Cast between them, which hides the pattern TensorRT fuses
        model = version_converter.convert_version(model, QDQ_FP16_OPSET)
    placement = select_nodes(model, options.attention, options.quantize_head, options.exclude, options.placement)
    ops = list(options.calibrated_ops)
    quantizer = QDQQuantizer(
        model, per_channel=True, reduce_range=False, weight_qType=QuantType.QInt8,
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
        qmodel = convert_fp16(qmodel, default_block_list(qmodel))
    if options.target == Int8Target.ONNXRUNTIME:
        fold_transpose_into_matmul(qmodel)
    return qmodel, placement
