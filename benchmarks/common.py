"""What every benchmark here shares: the machine's description, and timing runners through the library's loop."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from swin_deploy.backends.base import Runner
from swin_deploy.bench import time_round_robin
from swin_deploy.machine import cpu_name, vector_isa


def machine() -> str:
    return (f"{cpu_name()} ({vector_isa()}), {torch.get_num_threads()} threads, onnxruntime {ort.__version__}, "
            f"torch {torch.__version__}")


def median_ms(cases: dict[str, tuple[Runner, np.ndarray]], warmup: int, runs: int) -> dict[str, float]:
    """Median wall time (ms) of each runner on its input, timed round-robin by swin_deploy.bench's loop."""
    return {label: float(np.median([t.total_ms for t in timings]))
            for label, timings in time_round_robin(cases, warmup, iterations=runs).items()}
