"""The runner protocol every backend shares (as Polygraphy's): activate, infer, deactivate.

    with OnnxRuntimeRunner("model.onnx") as runner:
        outputs = runner.infer(batch)           # float32 NCHW (or uint8 pixels) -> {"logits": (B, classes)} or {"stage1": ...}

Runners only run; comparing lives in swin_deploy.verify. Heavy imports happen in activate().
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    total_ms: float  # wall time of one infer() call, host to host
    compute_ms: float | None = None  # device compute alone, where the backend can measure it (CUDA events)


def as_input(x: np.ndarray) -> np.ndarray:
    """What runners are fed: contiguous uint8 stays uint8 (raw-pixel artifacts take pixels), anything else float32."""
    return np.ascontiguousarray(x, dtype=np.uint8 if x.dtype == np.uint8 else np.float32)


def pad_batch(x: np.ndarray, batch_size: int) -> np.ndarray:
    """`x` padded to `batch_size` with copies of its last input (a static batch takes exactly that many)."""
    n = len(x)
    return np.concatenate([x, np.repeat(x[-1:], batch_size - n, axis=0)]) if n < batch_size else x


def run_padded(runner: Runner, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """One run at exactly `batch_size` (what a gate claims to check, and all a static-batch artifact takes): a short
    batch is padded and the copies' outputs dropped."""
    return {name: out[:len(x)] for name, out in runner.infer(pad_batch(x, batch_size)).items()}


def run_batched(runner: Runner, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """`run_padded` over an in-memory array, batch by batch."""
    parts = [run_padded(runner, x[i:i + batch_size], batch_size) for i in range(0, len(x), batch_size)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


class Runner(abc.ABC):
    """A backend that turns input batches (float32 NCHW, or a raw-pixel artifact's uint8 pixels) into named
    float32 outputs (logits, or stage feature maps)."""

    name: str = "runner"
    hint = None  # the performance hint it runs under (a PerformanceHint), for runtimes that take one

    def __init__(self) -> None:
        self.active = False

    def activate(self) -> None:
        if not self.active:
            self._activate()
            self.active = True

    def deactivate(self) -> None:
        if self.active:
            self._deactivate()
            self.active = False

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        assert self.active, f"{self.name}: activate() first (or use it as a context manager)"
        return self._infer(as_input(x))

    def infer_timed(self, x: np.ndarray) -> tuple[dict[str, np.ndarray], Timing]:
        """infer() with its timing; backends with device timers override this."""
        t0 = time.perf_counter()
        out = self.infer(x)
        return out, Timing(total_ms=(time.perf_counter() - t0) * 1000)

    def describe(self) -> dict:
        return {"backend": self.name}

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]: ...

    def _deactivate(self) -> None:  # noqa: B027 - optional hook; most runners hold nothing to release
        """Release what _activate() acquired (optional)."""
