"""What machine a measurement was taken on: CPU model and the vector extensions its speed depends on, and how busy it
was with other work meanwhile; whether a run fits in its memory."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from . import defaults
from .errors import UserError

CPUINFO = Path("/proc/cpuinfo")


# numpy's names for the features its runtime dispatch detects -> Linux's flag names, read where there is no
# /proc/cpuinfo (macOS, Windows). numpy does not detect AMX, AVX-VNNI, or Arm's I8MM and BF16 (numpy 2.2 and older
# not AVX-512 BF16 either), so those go unnamed there.
_NUMPY_FLAGS = {"SSE2": "sse2", "AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni",
                "AVX512BF16": "avx512_bf16", "ASIMD": "asimd", "ASIMDDP": "asimddp", "SVE": "sve"}


def _numpy_features() -> dict[str, bool]:
    try:  # numpy's own record of the CPU; private, so read defensively (numpy 2, then 1.x)
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return {}
    return dict(__cpu_features__)


def _flags(key: str) -> set[str]:
    """Linux's list of CPU features (`key`: "flags" on x86, "Features" on arm64), or where the OS has no
    /proc/cpuinfo the same names for what numpy detected."""
    if CPUINFO.is_file():
        return set((_cpuinfo(key) or "").split())
    return {flag for name, flag in _NUMPY_FLAGS.items() if _numpy_features().get(name)}


def _os_cpu_name() -> str | None:
    """The CPU's model name where there is no /proc/cpuinfo: macOS's sysctl (an Apple M-series or Intel name), the
    Windows registry (platform.processor() gives neither: "arm", or family and model numbers)."""
    import subprocess

    try:
        if platform.system() == "Darwin":
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or None
        if platform.system() == "Windows":
            import winreg

            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0") as key:
                return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def _cpuinfo(key: str) -> str | None:
    try:
        for line in CPUINFO.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return None


# (vendor, family, first model, last model) -> core, for the server CPUs whose speed this project measures. Cloud VMs
# often report a bare "AMD EPYC", and Intel's names carry a SKU, not the core: Zen 4 and Zen 5 have the same vector
# flags but not the same speed ratios (Zen 4 splits 512-bit work over 256-bit units), so a measurement must say which.
_CORES = (
    ("AuthenticAMD", 23, 0x00, 0x2F, "Zen/Zen+"),
    ("AuthenticAMD", 23, 0x30, 0x7F, "Zen 2"),
    ("AuthenticAMD", 25, 0x00, 0x0F, "Zen 3"),
    ("AuthenticAMD", 25, 0x10, 0x1F, "Zen 4"),
    ("AuthenticAMD", 25, 0x20, 0x5F, "Zen 3"),
    ("AuthenticAMD", 25, 0x60, 0x7F, "Zen 4"),
    ("AuthenticAMD", 25, 0xA0, 0xAF, "Zen 4"),
    ("AuthenticAMD", 26, 0x00, 0x4F, "Zen 5"),
    ("AuthenticAMD", 26, 0x60, 0x7F, "Zen 5"),
    ("GenuineIntel", 6, 0x55, 0x55, "Skylake-SP/Cascade Lake"),
    ("GenuineIntel", 6, 0x6A, 0x6C, "Ice Lake-SP"),
    ("GenuineIntel", 6, 0x8F, 0x8F, "Sapphire Rapids"),
    ("GenuineIntel", 6, 0xCF, 0xCF, "Emerald Rapids"),
    ("GenuineIntel", 6, 0xAD, 0xAE, "Granite Rapids"),
    ("GenuineIntel", 6, 0xAF, 0xAF, "Sierra Forest"),
)


# (implementer, part) -> core, for the Arm server cores (Linux's /proc/cpuinfo on arm64 names neither the model nor
# the core, only these numbers): Graviton2 and Ampere Altra are N1, Graviton3 V1, Cobalt 100 N2, Graviton4 and Axion V2.
_ARM_CORES = {(0x41, 0xD0C): "Neoverse N1", (0x41, 0xD40): "Neoverse V1", (0x41, 0xD49): "Neoverse N2",
              (0x41, 0xD4F): "Neoverse V2"}


def cpu_core() -> str | None:
    """The core generation of a server CPU, from its family and model numbers on x86 or its implementer and part on
    Arm (None where not in the tables)."""
    try:
        if implementer := _cpuinfo("CPU implementer"):
            return _ARM_CORES.get((int(implementer, 16), int(_cpuinfo("CPU part") or "", 16)))
        vendor, family, model = _cpuinfo("vendor_id"), int(_cpuinfo("cpu family") or ""), int(_cpuinfo("model") or "")
    except ValueError:
        return None
    return next((core for v, f, first, last, core in _CORES if (v, f) == (vendor, family) and first <= model <= last),
                None)


def cpu_name() -> str:
    """The CPU's model name, with its core generation where the name does not say it ("AMD EPYC, Zen 4"); on Arm,
    where Linux gives no model name, the core ("Neoverse V1")."""
    name = _cpuinfo("model name") or (None if CPUINFO.is_file() else _os_cpu_name()) or platform.processor()
    core = cpu_core()
    if not name:
        return core or platform.machine()
    return f"{name}, {core}" if core and core not in name else name


def vector_isa() -> str:
    """The widest vector extensions this CPU has (INT8 and bf16 speed depend on them): on x86 AVX-512 with VNNI, BF16
    and AMX, or AVX2 with or without AVX-VNNI; on Arm NEON or SVE/SVE2 with the int8 dot-product (dotprod), int8
    matrix (I8MM) and BF16 instructions."""
    flags = _flags("flags")
    if flags & {"sse2", "avx2"}:  # x86 (numpy's names hold Arm's features too, where there is no /proc/cpuinfo)
        found = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16"),
                                         ("amx_int8", "AMX")) if flag in flags]
        if found:
            return "+".join(found)
        # AVX-VNNI: the same int8 dot products on 256-bit vectors, in CPUs without AVX-512 (Intel's E-core Xeons)
        return ("AVX2+AVX-VNNI" if "avx_vnni" in flags else "AVX2") if "avx2" in flags else "no AVX2"
    features = _flags("Features")  # Linux's name for them on arm64
    if "asimd" not in features:
        return "unknown"
    vector = "SVE2" if "sve2" in features else "SVE" if "sve" in features else "NEON"
    return "+".join([vector] + [name for flag, name in (("asimddp", "dotprod"), ("i8mm", "I8MM"), ("bf16", "BF16"),
                                                        ("sme", "SME")) if flag in features])


def exact_int8_dot_products() -> bool | None:
    """Whether this x86 CPU adds int8 products exactly (VNNI or AMX). Without them onnxruntime's and OpenVINO's
    int8 matmuls use VPMADDUBSW, which adds each pair of u8 x s8 products in saturating int16. None off x86."""
    flags = _flags("flags")
    if "sse2" not in flags:
        return None
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def physical_cores() -> int:
    """The cores this process may run on, counted as onnxruntime counts its default threads (physical cores)."""
    import psutil

    usable = len(usable_cpus())
    return max(1, min(psutil.cpu_count(logical=False) or usable, usable))


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on (its affinity where the OS has one)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CpuQuota:
    """This process's cgroup's CPU controller (v2's unified one or v1's `cpu`), read where it sets a quota: the CFS
    bandwidth limit containers and CI pods run under (`docker --cpus`, a Kubernetes CPU limit). Under it the kernel
    stops the whole group for the rest of each scheduler period once it has used its share, which sched_getaffinity
    and the load on the cores do not show: a run then waits for the quota, not for the model."""

    folder: Path
    v2: bool

    @classmethod
    def of_this_process(cls, root: Path = Path("/")) -> CpuQuota | None:
        try:
            lines = (root / "proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            if line.count(":") < 2:
                continue
            _, controllers, path = line.split(":", 2)
            if controllers == "":  # v2: one hierarchy; its cpu.max is there when the cpu controller is enabled
                mounts, v2 = [root / "sys/fs/cgroup"], True
            elif "cpu" in controllers.split(","):  # v1: mounted as cpu, or cpu,cpuacct
                mounts, v2 = [root / "sys/fs/cgroup" / m for m in ("cpu", "cpu,cpuacct")], False
            else:
                continue
            parts = [part for part in path.split("/") if part]
            # the path is the host's where a container has no cgroup namespace, and its mount shows the container's
            # own group as the root: the longest tail of the path that is there is this process's group
            for mount in mounts:
                folder = next((f for i in range(len(parts) + 1) if (f := mount.joinpath(*parts[i:])).is_dir()), None)
                if folder is not None and (quota := cls(folder, v2)).cpus() is not None:
                    return quota
        return None

    def cpus(self) -> float | None:
        """The CPUs the quota allows (quota / period), None where the group has none."""
        try:
            if self.v2:
                limit, period = (self.folder / "cpu.max").read_text().split()
            else:
                limit, period = ((self.folder / f"cpu.cfs_{k}_us").read_text().strip() for k in ("quota", "period"))
            return None if limit in ("max", "-1") else int(limit) / int(period)
        except (OSError, ValueError):
            return None

    def periods(self) -> tuple[int, int] | None:
        """Scheduler periods so far with the group runnable, and those in which the quota stopped it (cpu.stat)."""
        try:
            stat = dict(line.split() for line in (self.folder / "cpu.stat").read_text().splitlines() if line.strip())
            return int(stat["nr_periods"]), int(stat["nr_throttled"])
        except (OSError, ValueError, KeyError):
            return None


def quota_threads() -> int | None:
    """The threads a CPU quota leaves room for, where it allows fewer CPUs than this process may run on: its whole
    CPUs, at least 1. None without such a quota."""
    quota = CpuQuota.of_this_process()
    cpus = quota.cpus() if quota else None
    return None if cpus is None or cpus >= len(usable_cpus()) else max(1, int(cpus))


@dataclass
class MachineLoad:
    """How busy the cores this process may run on were with work not its own, on average over a measured span: other
    processes (`other_cores`) and, in a VM, the hypervisor running other guests (`steal_cores`), in cores."""

    other_cores: float = 0.0
    steal_cores: float = 0.0
    cores: int = 1
    # a CPU quota (a container's, a CI pod's): the CPUs it allows, and the share of its scheduler periods in which
    # it stopped this process's group; None where there is no quota
    quota_cpus: float | None = None
    throttled: float | None = None

    @property
    def busy(self) -> float:
        return self.other_cores + self.steal_cores

    def as_dict(self) -> dict:
        quota = None if self.quota_cpus is None else round(self.quota_cpus, 2)
        return {"other_cores": round(self.other_cores, 2), "steal_cores": round(self.steal_cores, 2), "cores": self.cores,
                "quota_cpus": quota, "throttled_periods": None if self.throttled is None else round(self.throttled, 3)}


class LoadMeter:
    """`with LoadMeter() as load:` measures, over the block, the machine's load not this process's (a MachineLoad,
    filled in on exit): times measured under such load say more about the neighbours than about the model. Counts
    the usable cores only (this process's affinity), and this process's finished children as its own."""

    def __enter__(self) -> MachineLoad:
        self.load, self.start = MachineLoad(), (time.perf_counter(), *self._counters())
        self.quota = CpuQuota.of_this_process()
        self.periods = self.quota.periods() if self.quota else None
        return self.load

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self.start[0]
        busy, steal, own = (now - then for now, then in zip(self._counters(), self.start[1:]))
        if wall > 0:
            self.load.other_cores = max(0.0, (busy - own) / wall)
            self.load.steal_cores = max(0.0, steal / wall)
        self.load.cores = len(usable_cpus())
        cpus = self.quota.cpus() if self.quota else None
        if cpus is not None and self.periods and (now := self.quota.periods()):
            (periods, throttled), (periods0, throttled0) = now, self.periods
            self.load.quota_cpus = cpus
            self.load.throttled = (throttled - throttled0) / (periods - periods0) if periods > periods0 else 0.0

    def _counters(self) -> tuple[float, float, float]:
        """CPU seconds so far: busy and stolen on the usable cores, and this process's own (with finished children)."""
        import psutil

        per_cpu = psutil.cpu_times(percpu=True)
        times = [per_cpu[i] for i in usable_cpus() if i < len(per_cpu)]
        busy = sum(t.user + t.system + sum(getattr(t, k, 0.0) for k in ("nice", "irq", "softirq", "interrupt", "dpc"))
                   for t in times)  # the fields psutil has on this OS (Linux: nice, irq, softirq; Windows: interrupt, dpc)
        steal = sum(getattr(t, "steal", 0.0) for t in times)
        own = psutil.Process().cpu_times()
        return busy, steal, own.user + own.system + own.children_user + own.children_system


def describe() -> dict[str, str]:
    return {"cpu": cpu_name(), "core": cpu_core() or "unknown", "vector_isa": vector_isa(),
            "python": platform.python_version()}


def readout_budget() -> int:
    """Bytes a run that reads out a model's tensors may take: READOUT_MEMORY_SHARE of the memory available now
    (onnxruntime's arena grows in powers of two, so a run can take twice its need)."""
    import psutil

    return int(psutil.virtual_memory().available * defaults.READOUT_MEMORY_SHARE)


def check_memory(tensor_bytes: float, what: str, fix: str, peak: float = defaults.PEAK_ACTIVATIONS) -> None:
    """Refuse at once a run whose largest tensor (`tensor_bytes`, e.g. SwinConfig.activation_bytes times the batch)
    says it cannot fit: a mistyped size or batch (22400 for 224) would otherwise run until the kernel kills the
    process, with no message. A run holds several such tensors at once, at least `peak` (defaults.PEAK_ACTIVATIONS
    says what was measured), so this refuses only what cannot work, never what merely might not."""
    import psutil

    available = psutil.virtual_memory().available
    needs = tensor_bytes * peak
    if needs > available:
        raise UserError(f"{what} needs more than {needs / 2**30:.0f} GiB, and this machine has "
                        f"{available / 2**30:.0f} GiB available: {fix}")
