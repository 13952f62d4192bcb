"""Latency and throughput of several runners side by side, interleaved so drift hits all alike.

`time_round_robin` is the one timing loop: `bench`, and the scripts under benchmarks/, time through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import defaults
from .artifact import IR_SUFFIX, artifact_info
from .backends import runner_for
from .backends.base import Runner, Timing
from .backends.openvino_runner import OPTIONS_NEED_OPENVINO, OpenVinoOptions
from .errors import UserError
from .models import Weights


@dataclass
class BenchEntry:
    """One runner, the seeded input it takes at a batch size (`example(rng, batch)`) and the batches `accepts`
    says it takes (default: any)."""

    label: str
    runner: Runner
    example: Callable[[np.random.Generator, int], np.ndarray]
    accepts: Callable[[int], bool] = lambda batch: True
    load_ms: float | None = None  # how long activate() took: loading, compiling (set by run_bench)

    def describe(self) -> dict:
        return {**self.runner.describe(), "load_ms": None if self.load_ms is None else round(self.load_ms, 1)}

    @property
    def backend(self) -> str:
        """The runtime, and the precision it computes in where it chooses one (OpenVINO)."""
        ran = self.runner.describe().get("execution_precision")
        return f"{self.runner.name} {ran}" if ran else self.runner.name


@dataclass
class BenchStats:
    label: str
    backend: str
    batch_size: int
    iterations: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float  # images per second at the median latency
    compute_p50_ms: float | None = None  # device compute alone (GPU backends)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_timings(cls, label: str, backend: str, batch_size: int, timings: list[Timing]) -> BenchStats:
        ms = np.array([t.total_ms for t in timings])
        computes = [t.compute_ms for t in timings if t.compute_ms is not None]
        p50 = float(np.percentile(ms, 50))
        return cls(label, backend, batch_size, len(ms), p50, float(np.percentile(ms, 90)), float(np.percentile(ms, 99)),
                   float(ms.mean()), batch_size / (p50 / 1000), float(np.percentile(computes, 50)) if computes else None)


def time_round_robin(cases: dict[str, tuple[Runner, np.ndarray]], warmup: int, iterations: int | None = None,
                     seconds: float | None = None, on_round: Callable[[int], None] = lambda n: None
                     ) -> dict[str, list[Timing]]:
    """Time every (active) runner on its input, one run each per round, until `iterations` rounds are done or
    `seconds` have passed; `warmup` untimed runs each first."""
    if (iterations is None) == (seconds is None):
        raise ValueError("pass exactly one of iterations and seconds")
    for runner, x in cases.values():
        for _ in range(warmup):
            runner.infer(x)
    timings: dict[str, list[Timing]] = {label: [] for label in cases}
    deadline = time.perf_counter() + seconds if seconds is not None else None
    n = 0
    while cases and (n < iterations if iterations is not None else time.perf_counter() < deadline):
        for label, (runner, x) in cases.items():
            timings[label].append(runner.infer_timed(x)[1])
        n += 1
        on_round(n)
    return timings


def run_bench(entries: list[BenchEntry], batch_sizes: list[int], warmup: int, iterations: int | None,
              seconds: float | None, on_tick: Callable[[str], None] = lambda msg: None,
              seed: int = defaults.SEED) -> list[BenchStats]:
    """For each batch size: warm every runner that takes it up, then time them round-robin."""
    results: list[BenchStats] = []
    rng = np.random.default_rng(seed)
    for entry in entries:
        start = time.perf_counter()
        entry.runner.activate()
        entry.load_ms = (time.perf_counter() - start) * 1000
    try:
        for b in batch_sizes:
            active = {e.label: e for e in entries if e.accepts(b)}
            cases = {label: (e.runner, e.example(rng, b)) for label, e in active.items()}
            timings = time_round_robin(cases, warmup, iterations, seconds,
                                       on_round=lambda n, b=b: on_tick(f"batch {b}: {n} rounds"))
            results += [BenchStats.from_timings(label, active[label].backend, b, t) for label, t in timings.items()]
    finally:
        for entry in entries:
            entry.runner.deactivate()
    return results


@dataclass
class BenchOptions:
    torch_variant: str | None = None  # also time the PyTorch model of this variant
    weights: Weights = field(default_factory=Weights)  # for the PyTorch model
    backends: tuple[str, ...] | None = None  # each ONNX runs on each of these (default onnxruntime CPU)
    openvino: OpenVinoOptions | None = None  # for the OpenVINO runner
    batch_sizes: list[int] | None = None  # default: BENCH_BATCH_SIZES and any static-batch artifact's own
    warmup: int = defaults.BENCH_WARMUP
    iterations: int | None = None  # default BENCH_ITERATIONS, unless `seconds` is given
    seconds: float | None = None
    threads: int | None = None  # onnxruntime intra-op threads
    seed: int = defaults.SEED


@dataclass
class BenchReport:
    results: list[BenchStats]
    runners: dict[str, dict]
    threads: int | None

    @property
    def device_timed(self) -> bool:
        """Whether some runner timed device compute apart (GPU backends)."""
        return any(r.compute_p50_ms is not None for r in self.results)

    def as_dict(self) -> dict:
        return {"results": [r.as_dict() for r in self.results], "runners": self.runners, "threads": self.threads}


def bench_artifacts(artifacts: list[Path], options: BenchOptions | None = None,
                    on_tick: Callable[[str], None] = lambda msg: None) -> BenchReport:
    """Latency of artifacts (and optionally the PyTorch model), interleaved, at each batch size."""
    o = options or BenchOptions()
    if not artifacts and not o.torch_variant:
        raise UserError("nothing to benchmark: pass artifact paths and/or `torch` VARIANT")
    if o.iterations is not None and o.seconds is not None:
        raise UserError("choose `iterations` or `seconds`, not both")
    iterations = defaults.BENCH_ITERATIONS if o.iterations is None and o.seconds is None else o.iterations
    if (iterations is not None and iterations < 1) or (o.seconds is not None and o.seconds <= 0) or o.warmup < 0:
        raise UserError("`iterations` and `seconds` must be positive, `warmup` not negative")
    infos = {Path(path): artifact_info(path) for path in artifacts}
    if o.openvino is not None and "openvino" not in (o.backends or ()) and not any(p.suffix == IR_SUFFIX for p in infos):
        raise UserError(OPTIONS_NEED_OPENVINO)
    fixed = {i.fixed_batch for i in infos.values() if i.fixed_batch}
    sizes = o.batch_sizes or sorted(set(defaults.BENCH_BATCH_SIZES) | fixed)
    if min(sizes) < 1:
        raise UserError("batch sizes must be positive integers, e.g. `batch_sizes` 1,8,32")
    entries = []
    for path, info in infos.items():
        if not any(info.accepts_batch(b) for b in sizes):
            takes = f"only batch {info.fixed_batch}" if info.fixed_batch else f"batches up to {info.max_batch}"
            raise UserError(f"{path.name} takes {takes}: pick `batch_sizes` it accepts")
        backends = [None] if not o.backends or path.suffix != ".onnx" else list(o.backends)
        for backend in backends:
            label = path.name if len(backends) == 1 else f"{path.name} [{backend}]"
            openvino = o.openvino if backend == "openvino" or path.suffix == IR_SUFFIX else None
            entries.append(BenchEntry(label, runner_for(path, backend, o.threads, openvino), info.example_input,
                                      info.accepts_batch))
    if o.torch_variant:
        from .backends.torch_runner import TorchRunner
        from .models import build_model, get_config

        model, _ = build_model(get_config(o.torch_variant), o.weights)
        shape = (model.cfg.in_chans, *model.cfg.img_size)
        entries.append(BenchEntry(f"pytorch {o.torch_variant}", TorchRunner(model.freeze()),
                                  lambda rng, b: rng.standard_normal((b, *shape), dtype=np.float32)))
    results = run_bench(entries, sizes, o.warmup, iterations, o.seconds, on_tick, o.seed)
    return BenchReport(results, {e.label: e.describe() for e in entries}, o.threads)


def plot(results: list[BenchStats], path: Path) -> None:
    """Latency vs batch size per artifact, and throughput per artifact at each batch size (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from .fileio import atomic_output

    labels = list(dict.fromkeys(r.label for r in results))
    sizes = sorted({r.batch_size for r in results})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        rows = [r for r in results if r.label == label]
        ax1.plot([r.batch_size for r in rows], [r.p50_ms for r in rows], marker="o", label=label)
        xs = [sizes.index(r.batch_size) + i * width for r in rows]
        ax2.bar(xs, [r.throughput for r in rows], width=width, label=label)
    ax1.set(xlabel="batch size", ylabel="p50 latency (ms)", title="Latency", xscale="log", yscale="log")
    ax1.set_xticks(sizes, [str(s) for s in sizes])
    ax1.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.set(xlabel="batch size", ylabel="images / s", title="Throughput")
    ax2.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], [str(s) for s in sizes])
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
