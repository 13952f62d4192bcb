"""FP16 conversion and the ONNX graph utilities both precisions use (INT8 lives in the top-level calibration package)."""
