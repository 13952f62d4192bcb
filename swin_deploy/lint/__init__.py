"""Static checks of artifacts against what a runtime will accept (TensorRT's ONNX parser rules)."""
