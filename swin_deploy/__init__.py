"""swin-deploy: Swin Transformer V1/V2 from PyTorch to ONNX, onnxruntime and TensorRT."""

__version__ = "0.1.0"
