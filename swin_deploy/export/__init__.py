"""ONNX export of the native models, and OpenVINO IR conversion."""

from .onnx_export import DEFAULT_OPSET, MIN_OPSET, ExportOptions, ExportResult, export_onnx, export_variant, max_opset

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "ExportOptions", "ExportResult", "export_onnx", "export_variant", "max_opset"]
