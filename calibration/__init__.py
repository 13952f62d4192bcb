"""INT8 post-training calibration for Swin ONNX graphs: images -> activation ranges -> Q/DQ placement.

reader.py     calibration images, preprocessed per the model's metadata
ranges.py     activation ranges (minmax / entropy / percentile) and the JSON calibration cache
placement.py  which nodes get Q/DQ: the linear layers, optionally the attention matmuls
int8.py       writes the Q/DQ model for a target runtime (TensorRT or onnxruntime)
"""

from .int8 import Int8Options, quantize_int8

__all__ = ["Int8Options", "quantize_int8"]
