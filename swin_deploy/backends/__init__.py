"""Backends behind one runner protocol: PyTorch, onnxruntime, TensorRT."""

from .base import Runner, Timing

__all__ = ["Runner", "Timing", "artifact_info", "runner_for"]

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")
ENGINE_SUFFIXES = (".engine", ".plan")


def artifact_info(path, variant: str | None = None):
    """An artifact's swin-deploy metadata: from the ONNX itself, or from a TensorRT engine's sidecar JSON."""
    from pathlib import Path

    from ..artifact import read_info

    if Path(path).suffix in ENGINE_SUFFIXES:
        from .tensorrt.sidecar import engine_artifact_info

        return engine_artifact_info(Path(path))
    return read_info(path, variant)


def runner_for(path, backend: str | None = None, threads: int | None = None) -> Runner:
    """A runner for an artifact file: .onnx -> onnxruntime (CPU unless told), .engine/.plan -> TensorRT."""
    from pathlib import Path

    from ..errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: pass an .onnx or .engine artifact")
    if backend is None:
        backend = "tensorrt" if path.suffix in ENGINE_SUFFIXES else "onnxruntime-cpu"
    if backend == "tensorrt":
        from .tensorrt.runner import TensorRTRunner

        return TensorRTRunner(path)
    if backend.startswith("onnxruntime-"):
        from .onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, backend.removeprefix("onnxruntime-"), threads)
    raise UserError(f"unknown backend '{backend}': choose {', '.join(BACKENDS)}")
