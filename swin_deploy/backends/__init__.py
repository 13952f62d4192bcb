"""Backends behind one runner protocol: PyTorch, onnxruntime, TensorRT."""

from .base import Runner, Timing

__all__ = ["Runner", "Timing", "runner_for"]

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")


def runner_for(path, backend: str | None = None, threads: int | None = None) -> Runner:
    """A runner for an artifact file: .onnx -> onnxruntime (CPU unless told), .engine/.plan -> TensorRT."""
    from pathlib import Path

    from ..errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: pass an .onnx or .engine artifact")
    if backend is None:
        backend = "tensorrt" if path.suffix in (".engine", ".plan") else "onnxruntime-cpu"
    if backend == "tensorrt":
        from .tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path)
    if backend.startswith("onnxruntime-"):
        from .onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, backend.removeprefix("onnxruntime-"), threads)
    raise UserError(f"unknown backend '{backend}': choose {', '.join(BACKENDS)}")
