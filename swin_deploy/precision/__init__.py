"""Precision decided in the ONNX: FP16 conversion here, INT8 calibration in the top-level calibration package."""
