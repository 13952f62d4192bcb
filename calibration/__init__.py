"""Precision decided from calibration images: FP16 hot-node detection and INT8 post-training quantization.

reader.py     calibration images, preprocessed per the model's metadata (an onnxruntime CalibrationDataReader)
ranges.py     the one statistics pass (minmax / entropy / percentile) and the JSON calibration cache
placement.py  which nodes get Q/DQ: the linear layers, optionally the attention matmuls and the head
int8.py       INT8 options, and the Q/DQ model for a target runtime (TensorRT or onnxruntime)
quantize.py   the one dispatch by precision: fp32 ONNX -> FP16 or INT8 ONNX, checked and written atomically
engine.py     build-engine's chain: quantize for TensorRT, then build

This package builds on swin_deploy (artifact metadata, images, FP16 conversion, graph utilities, backends);
nothing in swin_deploy imports it.
"""

from .int8 import Int8Options, quantize_int8
from .quantize import QuantizeOptions, QuantizeResult, quantize

__all__ = ["Int8Options", "QuantizeOptions", "QuantizeResult", "quantize", "quantize_int8"]
