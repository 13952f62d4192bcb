"""Precision decided from calibration images: FP16 hot-node detection and INT8 post-training quantization.

options.py    what quantize and build-engine are asked to do (QuantizeOptions, Int8Options), validated; light
reader.py     calibration images, preprocessed per the model's metadata (an onnxruntime CalibrationDataReader)
ranges.py     the one statistics pass (minmax / entropy / percentile) and the JSON calibration cache
placement.py  which nodes get Q/DQ: the linear layers, optionally the attention matmuls and the head
int8.py       the Q/DQ model for a target runtime (TensorRT or onnxruntime)
convert.py    the one dispatch by precision: fp32 ONNX -> FP16 or INT8 ONNX, checked and written atomically; the
              per-block INT8 sensitivity of an fp32 ONNX (writes nothing)
sensitivity.py  which blocks an INT8 loses its accuracy in (each quantized alone, against float32) and which to keep in float
engine.py     build-engine's chain: quantize for TensorRT, then build

This package builds on swin_deploy (artifact metadata, images, FP16 conversion, graph utilities, backends);
nothing in swin_deploy imports it. The heavy parts (onnxruntime's quantizer) load on first use.
"""

from .options import Int8Options, QuantizeOptions

__all__ = ["Int8Options", "QuantizeOptions", "QuantizeResult", "quantize", "quantize_int8"]


def __getattr__(name: str):
    if name in ("quantize", "QuantizeResult"):
        from . import convert as module
    elif name == "quantize_int8":
        from . import int8 as module
    else:
        raise AttributeError(name)
    return getattr(module, name)
