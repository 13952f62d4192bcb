"""onnxruntime: CPU, and the CUDA and TensorRT execution providers where onnxruntime-gpu is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError, missing_package
from .base import Runner

# precision lives in the ONNX: float32 tensors compute in float32. onnxruntime's CUDA provider runs float32
# GEMMs and convolutions in TF32 (10-bit mantissa) by default on Ampere and newer, ~1e-3 relative error,
# ten times the float32 gate, so it is switched off. (We found no such switch for its TensorRT provider.)
PROVIDER_OPTIONS = {"CUDAExecutionProvider": {"use_tf32": "0"}}
PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntimeRunner(Runner):
    """An ONNX file (or serialized model bytes) in an onnxruntime session."""

    def __init__(self, model: str | Path | bytes, provider: str = "cpu", threads: int | None = None):
        super().__init__()
        if provider not in PROVIDERS:
            raise UserError(f"unknown onnxruntime provider '{provider}': choose {', '.join(PROVIDERS)}")
        self.model = model if isinstance(model, bytes) else Path(model)
        self.path = None if isinstance(model, bytes) else self.model
        self.provider, self.threads = provider, threads
        self.name = f"onnxruntime-{provider}"

    def _activate(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise missing_package("onnxruntime") from e
        wanted = PROVIDERS[self.provider][0]
        if wanted not in ort.get_available_providers():
            raise UserError(f"onnxruntime has no {wanted} here: install onnxruntime-gpu (pip install 'swin-deploy[gpu]') "
                            "on a machine with an NVIDIA GPU, or use `backend` onnxruntime-cpu")
        options = ort.SessionOptions()
        # onnxruntime's worker threads spin-wait after each run by default; interleaved with other
        # backends (bench, verify) that spinning steals the cores the next runner needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            providers = [(p, PROVIDER_OPTIONS[p]) if p in PROVIDER_OPTIONS else p for p in PROVIDERS[self.provider]]
            source = self.model if isinstance(self.model, bytes) else str(self.model)
            self.session = ort.InferenceSession(source, options, providers=providers)
        except Exception as e:
            what = self.path or "the model"
            raise UserError(f"onnxruntime cannot load {what} ({type(e).__name__}): is it a valid ONNX model?") from e
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, {self.input_name: x})
        return {k: v.astype(np.float32, copy=False) for k, v in zip(self.output_names, values)}

    def _deactivate(self) -> None:
        del self.session

    def describe(self) -> dict:
        import onnxruntime as ort

        return {"backend": self.name, "onnxruntime": ort.__version__, "threads": self.threads or "default"}
