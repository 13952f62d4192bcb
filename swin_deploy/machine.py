"""What machine a measurement was taken on: CPU model and the vector extensions its speed depends on; whether a run
fits in its memory."""

from __future__ import annotations

import platform
from pathlib import Path

from .errors import UserError


def _cpuinfo(key: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def vector_isa() -> str:
    """The widest x86 vector extensions this CPU has (INT8 and bf16 speed depend on them): AVX-512 with VNNI, BF16
    and AMX, or AVX2."""
    flags = set((_cpuinfo("flags") or "").split())
    if not flags:
        return "unknown"
    found = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16"),
                                     ("amx_int8", "AMX")) if flag in flags]
    return "+".join(found) if found else ("AVX2" if "avx2" in flags else "no AVX2")


def exact_int8_dot_products() -> bool | None:
    """Whether this x86 CPU adds int8 products exactly (VNNI or AMX). Without them onnxruntime's and OpenVINO's
    int8 matmuls use VPMADDUBSW, which adds each pair of u8 x s8 products in saturating int16. None off x86."""
    flags = set((_cpuinfo("flags") or "").split())
    if "sse2" not in flags:
        return None
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def describe() -> dict[str, str]:
    return {"cpu": cpu_name(), "vector_isa": vector_isa(), "python": platform.python_version()}


def check_memory(tensor_bytes: float, what: str, fix: str) -> None:
    """Refuse at once a run one of whose tensors (`tensor_bytes`, e.g. SwinConfig.activation_bytes times the batch)
    would take more than half the memory available: a mistyped size or batch (22400 for 224) would otherwise run until
    the kernel kills the process, with no message. A run holds many such tensors, so this refuses only what cannot
    work, never what merely might not."""
    import psutil

    available = psutil.virtual_memory().available
    if tensor_bytes > available / 2:
        raise UserError(f"{what} needs more than {tensor_bytes / 2**30:.0f} GiB for one activation, and this machine "
                        f"has {available / 2**30:.0f} GiB available: {fix}")
