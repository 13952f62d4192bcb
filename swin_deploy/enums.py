"""The closed sets of choices, as enums checked in one place (`parse`), not free strings.

Each is a `StrEnum`, so `Precision.INT8 == "int8"` and its value is what metadata and JSON store.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import UserError


class Choice(StrEnum):
    @classmethod
    def parse(cls, value: str | Choice, param: str | None = None) -> Choice:
        """`value` as a member, or a UserError listing the choices (naming `param` if given)."""
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            what = f"`{param}`" if param else _WHAT.get(cls.__name__, cls.__name__)
            raise UserError(f"unknown {what} '{value}': choose {', '.join(m.value for m in cls)}") from None

    def __hash__(self) -> int:  # as the plain string (Enum hashes the name), so a member and its value are one dict key
        return str.__hash__(self)


class Precision(Choice):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Int8Target(Choice):
    """Who runs the INT8 graph: TensorRT (symmetric int8 activations) or onnxruntime (U8S8)."""

    TENSORRT = "tensorrt"
    ONNXRUNTIME = "onnxruntime"


class CalibMethod(Choice):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class QdqPlacement(Choice):
    """Where INT8 Q/DQ go: the linear layers' inputs only, or NVIDIA's guidance for transformers on TensorRT (every
    GEMM and MatMul including the two attention matmuls, and both inputs of every residual Add)."""

    LINEAR = "linear"
    NVIDIA = "nvidia"


class HighPrecision(Choice):
    """The float type of the ops an INT8 graph leaves unquantized."""

    FP32 = "fp32"
    FP16 = "fp16"


class Simplifier(Choice):
    """Which ONNX simplifier export runs (see the README's export section for the measurements)."""

    ONNXSIM = "onnxsim"
    ONNXSLIM = "onnxslim"
    BOTH = "onnxslim+onnxsim"
    NONE = "none"


class InputFormat(Choice):
    """What an exported model takes: normalised float32 NCHW, or raw uint8 pixels (normalisation folded in)."""

    FLOAT32 = "float32"
    UINT8 = "uint8"


class ExecutionPrecision(Choice):
    """The float precision a runtime computes in (OpenVINO's inference precision hint): what verify gates."""

    F32 = "f32"
    BF16 = "bf16"
    F16 = "f16"


class PerformanceHint(Choice):
    """OpenVINO's performance hint: one request as fast as possible, or the most images per second."""

    LATENCY = "latency"
    THROUGHPUT = "throughput"


class Runtime(Choice):
    """What runs an ONNX in a Triton model folder."""

    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class ExportFormat(Choice):
    ONNX = "onnx"
    OPENVINO = "openvino"


class TritonKind(Choice):
    """Where Triton runs a model's instances (auto: its GPUs, or its CPU on a server without them)."""

    GPU = "gpu"
    CPU = "cpu"
    AUTO = "auto"


class WeightsSource(Choice):
    DEFAULT = "default"  # bundled weights for demo variants, else timm's pretrained
    PRETRAINED = "pretrained"
    RANDOM = "random"
    BUNDLED = "bundled"
    CHECKPOINT = "checkpoint"


_WHAT = {"Precision": "precision", "Int8Target": "target", "CalibMethod": "calibration method",
         "HighPrecision": "high precision", "WeightsSource": "weights source", "Simplifier": "simplifier",
         "InputFormat": "input format", "QdqPlacement": "placement", "TritonKind": "instance kind",
         "ExecutionPrecision": "inference precision", "PerformanceHint": "performance hint", "Runtime": "runtime",
         "ExportFormat": "format"}


class Verdict(Choice):
    """A gate's outcome; inconclusive: its confidence interval straddles the threshold (swin_deploy.latency)."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class GateKind(Choice):
    """bench's gates."""

    MIN_SPEEDUP = "min_speedup"
    MAX_SLOWDOWN = "max_slowdown"
    MAX_RSS = "max_rss"
