"""onnxruntime: CPU, and the CUDA and TensorRT execution providers where onnxruntime-gpu is installed.

On the CPU the performance hint means what OpenVINO's does: `latency` (the default) runs each batch as one request on
all the threads; `throughput` runs one single-threaded request per stream (one per thread, by default one per
physical core) on a part of each batch at once, which saves the per-operator hand-offs between threads
(benchmarks/RESULTS.md "onnxruntime: threads").
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..enums import PerformanceHint
from ..errors import UserError, missing_package
from ..machine import physical_cores, quota_threads
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
# onnxruntime's worker threads spin-wait for work by default, also after a run returns; interleaved with other
# runners (bench, verify) that spinning steals the cores the next one needs. Switching spinning off altogether
# (session.intra_op.allow_spinning 0) costs every operator a thread wake-up instead: up to 9% at batch 1 on a Swin
# graph's ~500 nodes. onnxruntime's own "stop spinning when the last Run() returns" keeps both
# (benchmarks/ort_threading.py).
SESSION_CONFIG = {"session.force_spinning_stop": "1"}


def load_failure(e: Exception) -> str:
    """onnxruntime's own reason, in a line: "Unsupported model IR version: 14, max supported IR version: 13" says what
    to do where "is it a valid ONNX model?" did not. Its messages carry a status prefix and, for some, the C++ source
    location and signature that raised them; neither helps a user."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    # "Load model from m.onnx failed:/onnxruntime_src/.../model.cc:256 onnxruntime::Model::Model(...) Unsupported ..."
    text = re.sub(r"(?:Load model from .* failed:)?\S*\.(?:cc|cpp|h):\d+ \S.*?\) (?=\S)", "", text)
    return text if len(text) <= 300 else text[:297] + "..."


class OnnxRuntimeRunner(Runner):
    """An ONNX file (or serialized model bytes) in an onnxruntime session."""

    def __init__(self, model: str | Path | bytes, provider: str = "cpu", threads: int | None = None,
                 performance_hint: PerformanceHint | str | None = None):
        super().__init__()
        if provider not in PROVIDERS:
            raise UserError(f"unknown onnxruntime provider '{provider}': choose {', '.join(PROVIDERS)}")
        self.hint = PerformanceHint.parse(performance_hint or PerformanceHint.LATENCY, "performance_hint")
        if self.hint == PerformanceHint.THROUGHPUT and provider != "cpu":
            raise UserError(f"`performance_hint` throughput splits a batch over CPU threads: use it with onnxruntime-cpu, "
                            f"not onnxruntime-{provider}")
        self.model = model if isinstance(model, bytes) else Path(model)
        self.path = None if isinstance(model, bytes) else self.model
        # threads not given: a CPU quota's CPUs where there is one (onnxruntime's default, a thread per core, is
        # throttled under it), else onnxruntime's choice
        self.provider, self.threads = provider, threads if threads is not None else quota_threads()
        self.name = f"onnxruntime-{provider}"
        self.streams = 1  # requests run at once on parts of a batch (set when activated)

    def _activate(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise missing_package("onnxruntime") from e
        wanted = PROVIDERS[self.provider][0]
        if wanted not in ort.get_available_providers():
            raise UserError(f"onnxruntime has no {wanted} here: install onnxruntime-gpu (pip install 'swin-deploy[gpu]') "
                            "on a machine with an NVIDIA GPU, or use `backend` onnxruntime-cpu")
        streams = (self.threads or physical_cores()) if self.hint == PerformanceHint.THROUGHPUT else 1
        # a stream's request runs on the thread that calls it: one thread each
        self.session = self._session(ort, 1 if streams > 1 else self.threads)
        if streams > 1 and isinstance(self.session.get_inputs()[0].shape[0], int):
            # a static batch cannot be split: the whole batch on all the threads, as under the latency hint
            streams, self.session = 1, self._session(ort, self.threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.streams, self.pool = streams, None
        if streams > 1:
            from concurrent.futures import ThreadPoolExecutor

            # onnxruntime's Run() may be called concurrently on one session, and releases the GIL
            self.pool = ThreadPoolExecutor(streams, thread_name_prefix="onnxruntime-stream")

    def _session(self, ort, threads: int | None):
        options = ort.SessionOptions()
        for key, value in SESSION_CONFIG.items():
            options.add_session_config_entry(key, value)
        if threads:
            options.intra_op_num_threads = threads
        try:
            providers = [(p, PROVIDER_OPTIONS[p]) if p in PROVIDER_OPTIONS else p for p in PROVIDERS[self.provider]]
            source = self.model if isinstance(self.model, bytes) else str(self.model)
            return ort.InferenceSession(source, options, providers=providers)
        except Exception as e:
            what = self.path or "the model"
            raise UserError(f"onnxruntime {ort.__version__} cannot load {what}: {load_failure(e)} (an ONNX it cannot "
                            "read, or an onnxruntime too old for it: upgrade onnxruntime)") from e

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: x})

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        n = min(len(x), self.streams)
        if n == 1:
            values = self._run(x)
        else:
            parts = list(self.pool.map(self._run, np.array_split(x, n)))
            values = [np.concatenate([p[i] for p in parts]) for i in range(len(self.output_names))]
        return {k: v.astype(np.float32, copy=False) for k, v in zip(self.output_names, values)}

    def _deactivate(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
        del self.session, self.pool

    def describe(self) -> dict:
        import onnxruntime as ort

        return {"backend": self.name, "onnxruntime": ort.__version__, "threads": self.threads or "default",
                "performance_hint": str(self.hint), "streams": self.streams, "requests_per_batch": self.streams}

