"""TensorRT, shaped as Polygraphy's backend: a loader (ONNX -> network -> config -> serialized engine, pure functions
of their options), the engine's sidecar (read and validated in one place) and a runner (engine path or bytes; I/O
names and dtypes read from the engine).

Thin on purpose: every numeric decision (float16 tensors, Q/DQ) is already in the ONNX, where onnxruntime checks it on
any CPU and swin_deploy.lint checks it against TensorRT's parser rules. TensorRT 10 vs 11:
  * 11 removed BuilderFlag.FP16/INT8 and the IInt8 calibrators; every network is strongly typed.
  * 10 builds the same graphs when the network is created with NetworkDefinitionCreationFlag.STRONGLY_TYPED;
    11 accepts the flag too (it is the only mode there), so one code path serves both.
`tensorrt` is imported lazily; without it the caller gets a one-line install hint (exit 2).
"""

from __future__ import annotations

from ...errors import UserError, missing_package


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise missing_package("tensorrt", "tensorrt") from e
    return trt


def builder_unavailable_reason() -> str | None:
    """Why a TensorRT Builder cannot be made here (None when it can): for skipping tests honestly."""
    try:
        trt = import_tensorrt()
    except UserError as e:
        return str(e)
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device: TensorRT needs an NVIDIA GPU"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # pragma: no cover - depends on the driver
        return f"trt.Builder failed: {e}"
    return None if builder is not None else "trt.Builder returned None"
