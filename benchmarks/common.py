"""What every benchmark here shares: the machine's description, and timing runners through the library's loop."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from swin_deploy.backends.base import Runner
from swin_deploy.bench import time_round_robin


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def vector_isa() -> str:
    """The widest x86 vector extensions this CPU has (INT8 speed depends on them): AVX-512 with VNNI/AMX, or AVX2."""
    try:
        flags = set(next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")).split())
    except (OSError, StopIteration):
        return "unknown"
    found = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_vnni", "VNNI"), ("amx_int8", "AMX-INT8"))
             if flag in flags]
    return "+".join(found) if found else ("AVX2" if "avx2" in flags else "no AVX2")


def machine() -> str:
    return (f"{cpu_name()} ({vector_isa()}), {torch.get_num_threads()} threads, onnxruntime {ort.__version__}, "
            f"torch {torch.__version__}")


def median_ms(cases: dict[str, tuple[Runner, np.ndarray]], warmup: int, runs: int) -> dict[str, float]:
    """Median wall time (ms) of each runner on its input, timed round-robin by swin_deploy.bench's loop."""
    return {label: float(np.median([t.total_ms for t in timings]))
            for label, timings in time_round_robin(cases, warmup, iterations=runs).items()}
