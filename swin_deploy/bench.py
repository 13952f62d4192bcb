"""Latency and throughput of several runners side by side, interleaved so drift hits all alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .backends.base import Runner


@dataclass
class BenchEntry:
    """One runner that takes inputs of `img_size` and batches up to `max_batch` (None: any)."""

    label: str
    runner: Runner
    img_size: tuple[int, int]
    max_batch: int | None = None
    static_batch: int | None = None

    def accepts(self, batch: int) -> bool:
        if self.static_batch is not None:
            return batch == self.static_batch
        return self.max_batch is None or batch <= self.max_batch


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


def run_bench(entries: list[BenchEntry], batch_sizes: list[int], warmup: int, iterations: int | None,
              seconds: float | None, on_tick: Callable[[str], None] = lambda msg: None, seed: int = 0) -> list[BenchStats]:
    """For each batch size: warm every runner up, then time them round-robin until the budget is spent."""
    results: list[BenchStats] = []
    rng = np.random.default_rng(seed)
    for entry in entries:
        entry.runner.activate()
    try:
        for b in batch_sizes:
            active = [e for e in entries if e.accepts(b)]
            inputs = {e.label: rng.standard_normal((b, 3, *e.img_size), dtype=np.float32) for e in active}
            for e in active:
                for _ in range(warmup):
                    e.runner.infer(inputs[e.label])
            totals: dict[str, list[float]] = {e.label: [] for e in active}
            computes: dict[str, list[float]] = {e.label: [] for e in active}
            deadline = time.perf_counter() + seconds if seconds else None
            n = 0
            while active and (n < iterations if iterations else time.perf_counter() < deadline):
                for e in active:
                    _, t = e.runner.infer_timed(inputs[e.label])
                    totals[e.label].append(t.total_ms)
                    if t.compute_ms is not None:
                        computes[e.label].append(t.compute_ms)
                n += 1
                on_tick(f"batch {b}: {n} rounds")
            for e in active:
                ms = np.array(totals[e.label])
                p50 = float(np.percentile(ms, 50))
                results.append(BenchStats(
                    e.label, e.runner.name, b, len(ms), p50, float(np.percentile(ms, 90)), float(np.percentile(ms, 99)),
                    float(ms.mean()), b / (p50 / 1000),
                    float(np.percentile(computes[e.label], 50)) if computes[e.label] else None))
    finally:
        for entry in entries:
            entry.runner.deactivate()
    return results


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
