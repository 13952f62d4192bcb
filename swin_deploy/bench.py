"""Latency and throughput of several runners side by side, interleaved so drift hits all alike, with the
confidence intervals and gates of swin_deploy.latency / bench_gates decided on the same rounds.

`time_round_robin` is the one timing loop: `bench`, and the scripts under benchmarks/, time through it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import defaults, machine
from .artifact import artifact_info, artifact_sha256, as_named, kind_of
from .backends import TAKEN_BY, checked_backend, default_backend, options_for, runner_for, unused_options
from .backends.base import Runner, Timing
from .backends.openvino_runner import OpenVinoOptions
from .bench_gates import Baseline, Judge, SpeedGates
from .enums import PerformanceHint
from .errors import UserError, require_at_least
from .fileio import path_list
from .latency import GateResult, Interval, median_ci, speedup_ci
from .models import SwinConfig, Weights
from .parsing import as_hw, one_or_many


@dataclass
class BenchEntry:
    """One runner, the seeded input it takes at a batch size (`example(rng, batch)`) and the batches `accepts`
    says it takes (default: any). `identity`: what a baseline must match (model, and the artifact's hash)."""

    label: str
    runner: Runner
    example: Callable[[np.random.Generator, int], np.ndarray]
    accepts: Callable[[int], bool] = lambda batch: True
    identity: dict[str, str] = field(default_factory=dict)
    spec: RunnerSpec | None = None  # to measure its memory in a fresh process
    load_ms: float | None = None  # how long activate() took: loading, compiling (set by run_bench)
    memory: Memory | None = None  # set by run_bench when asked to measure memory

    def describe(self) -> dict:
        mib = lambda n: None if n is None else round(n / 2**20, 1)  # noqa: E731
        return {**self.runner.describe(), **self.identity, "backend": self.runner.name,
                "load_ms": None if self.load_ms is None else round(self.load_ms, 1),
                "peak_rss_mib": mib(self.memory and self.memory.peak_rss),
                "runner_peak_mib": mib(self.memory and self.memory.added), "gpu_mib": mib(self.memory and self.memory.gpu)}

    def backend_at(self, batch: int) -> str:
        """The runtime, the precision it computes in where it chooses one (OpenVINO), and under the throughput hint
        the streams a batch of `batch` is split over: one part per stream, so a batch smaller than the stream count
        leaves streams idle (a batch of one runs on one stream of one thread)."""
        described = self.runner.describe()
        ran = described.get("execution_precision")
        label = f"{self.runner.name} {ran}" if ran else self.runner.name
        split = described.get("requests_per_batch") or 1
        if split == 1:
            return label
        used = min(batch, split)
        return f"{label}, {split} streams" if used == split else f"{label}, {used} of {split} streams"


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
    p50_ci: tuple[float, float]  # 95% bootstrap interval of the median
    rounds_ms: list[float]  # every timed round, in order (paired with the other runners' by index)
    compute_p50_ms: float | None = None  # device compute alone (GPU backends)
    speedup: Interval | None = None  # median over rounds of reference_i / this_i, with its 95% interval

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rounds_ms"] = [round(t, 4) for t in self.rounds_ms]
        d["speedup"] = None if self.speedup is None else self.speedup.as_dict()
        return d

    @classmethod
    def from_timings(cls, label: str, backend: str, batch_size: int, timings: list[Timing],
                     reference: list[Timing] | None = None) -> BenchStats:
        ms = np.array([t.total_ms for t in timings])
        computes = [t.compute_ms for t in timings if t.compute_ms is not None]
        p50 = median_ci(ms)
        speedup = None if reference is None else speedup_ci([t.total_ms for t in reference], ms)
        return cls(label, backend, batch_size, len(ms), p50.estimate, float(np.percentile(ms, 90)),
                   float(np.percentile(ms, 99)), float(ms.mean()), batch_size / (p50.estimate / 1000),
                   (p50.low, p50.high), ms.tolist(), float(np.percentile(computes, 50)) if computes else None, speedup)


def time_round_robin(cases: dict[str, tuple[Runner, np.ndarray]], warmup: int, iterations: int | None = None,
                     seconds: float | None = None, on_round: Callable[[int], None] = lambda n: None
                     ) -> dict[str, list[Timing]]:
    """Time every (active) runner on its input, one run each per round, until `iterations` rounds are done or
    `seconds` have passed; `warmup` untimed runs each first. Between turns the machine settles (BENCH_SETTLE_S)."""
    if (iterations is None) == (seconds is None):
        raise ValueError("pass exactly one of iterations and seconds")
    for runner, x in cases.values():
        for _ in range(warmup):
            runner.infer(x)
    timings: dict[str, list[Timing]] = {label: [] for label in cases}
    deadline = time.perf_counter() + seconds if seconds is not None else None
    n = 0
    settle = defaults.BENCH_SETTLE_S if len(cases) > 1 else 0.0
    while cases and (n < iterations if iterations is not None else time.perf_counter() < deadline):
        for label, (runner, x) in cases.items():
            timings[label].append(runner.infer_timed(x)[1])
            if settle:
                time.sleep(settle)
        n += 1
        on_round(n)
    return timings


def _backends(path: Path, backends: tuple[str, ...] | None) -> list[str | None]:
    """The backends an artifact runs on: each of `backends` for an ONNX, its own (None) otherwise."""
    return [None] if not backends or kind_of(path) != "onnx" else list(backends)


def _short_names(paths: list[Path]) -> dict[Path, str]:
    """Each path by its file name, or by as many trailing folders as tell it from another of the same name
    (old/model.onnx and new/model.onnx): runners are labelled, and keyed, by these."""
    names = {}
    for path in paths:
        parts = path.resolve().parts
        for n in range(1, len(parts) + 1):
            name = str(Path(*parts[-n:]))
            if not any(other != path and other.resolve().parts[-n:] == parts[-n:] for other in paths):
                break
        names[path] = name
    return names


@dataclass(frozen=True)
class RunnerSpec:
    """How to make a runner again in another process: an artifact (runner_for's arguments) or the PyTorch model."""

    path: Path | None = None
    backend: str | None = None
    threads: int | None = None
    openvino: OpenVinoOptions | None = None
    torch_config: SwinConfig | None = None  # the PyTorch model's architecture (bench's _torch_config)
    weights: Weights | None = None
    variant: str | None = None  # what model an ONNX without swin-deploy metadata is
    img_size: tuple[int, int] | None = None  # the input size it runs at (None: its own)

    def runner(self) -> tuple[Runner, Callable[[np.random.Generator, int], np.ndarray]]:
        if self.path is not None:
            info = artifact_info(self.path, fallback_variant=self.variant)
            runner = runner_for(self.path, self.backend, self.threads, self.openvino, info.precision)
            return runner, lambda rng, b: info.example_input(rng, b, self.img_size)
        assert self.torch_config is not None
        runner, example, _ = torch_runner(self.torch_config, self.weights or Weights(), self.img_size)
        return runner, example


def torch_runner(cfg: SwinConfig, weights: Weights, img_size: tuple[int, int] | None = None
                 ) -> tuple[Runner, Callable[[np.random.Generator, int], np.ndarray], str]:
    """The frozen PyTorch model of `cfg` at `img_size` (None: its own) as a runner, its seeded example input, and its
    weights' sha256."""
    from .backends.torch_runner import TorchRunner
    from .models import build_model

    model, weights_sha = build_model(cfg.at_size(img_size), weights)
    shape = (model.cfg.in_chans, *model.cfg.img_size)
    return TorchRunner(model.freeze()), lambda rng, b: rng.standard_normal((b, *shape), dtype=np.float32), weights_sha


@dataclass(frozen=True)
class Memory:
    peak_rss: int  # the measuring process's high-water mark (it has imported swin-deploy, so torch, too)
    added: int  # of which the runner's: loading its runtime and model, and a run at the largest batch
    gpu: int | None = None  # device memory in use after the run (CUDA machines)


def measure_memory(spec: RunnerSpec, batch: int, seed: int = defaults.SEED) -> Memory | None:
    """Load the runner in a fresh process, run it once at `batch`, and report that process's peak resident memory and
    how much of it the runner added to the process's footprint before loading it. A fresh process because memory in
    this one is shared by other runners and reused from freed blocks (the resident set does not shrink after a
    free), so an in-process number would undercount."""
    import multiprocessing

    try:
        import resource  # noqa: F401 - ru_maxrss is the high-water mark; not on Windows
    except ImportError:
        return None
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_peak_in_child, (spec, batch, seed))


def _peak_in_child(spec: RunnerSpec, batch: int, seed: int) -> Memory:
    import resource
    import sys

    import psutil

    before = psutil.Process().memory_info().rss  # the tool's own imports; a fresh process frees nothing yet to reuse
    runner, example = spec.runner()
    with runner:
        runner.infer(example(np.random.default_rng(seed), batch))
        gpu = _gpu_in_use()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux
    return Memory(peak, max(0, peak - before), gpu)


def _gpu_in_use() -> int | None:
    """Device memory in use on the current CUDA device (None without CUDA); torch is already a dependency."""
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return total - free


def run_bench(entries: list[BenchEntry], batch_sizes: list[int], warmup: int, iterations: int | None,
              seconds: float | None, on_tick: Callable[[str], None] = lambda msg: None,
              seed: int = defaults.SEED, judge: Judge | None = None, reference_of: dict[str, str] | None = None,
              memory: bool = False) -> tuple[list[BenchStats], list[GateResult]]:
    """Load each runner, timing it (with `memory`, first measure its peak memory in a fresh process), then for each
    batch size warm every runner that takes it up and time them round-robin; speed gates still inconclusive get more
    rounds of their runners. `reference_of`: the runner each runner's speedup is relative to."""
    results: list[BenchStats] = []
    gates: list[GateResult] = []
    rng = np.random.default_rng(seed)
    for entry in entries:
        if memory and entry.spec is not None:
            on_tick(f"{entry.label}: peak memory in a fresh process")
            largest = max(b for b in batch_sizes if entry.accepts(b))
            entry.memory = measure_memory(entry.spec, largest, seed)
            if judge is not None and entry.memory is not None and (gate := judge.memory(entry.label, entry.memory.added)):
                gates.append(gate)
        start = time.perf_counter()
        entry.runner.activate()
        entry.load_ms = (time.perf_counter() - start) * 1000
    try:
        for b in batch_sizes:
            active = {e.label: e for e in entries if e.accepts(b)}
            cases = {label: (e.runner, e.example(rng, b)) for label, e in active.items()}
            start = time.perf_counter()
            timings = time_round_robin(cases, warmup, iterations, seconds,
                                       on_round=lambda n, b=b: on_tick(f"batch {b}: {n} rounds"))
            if judge is not None:
                timings, decided = _decide(judge, b, cases, timings, time.perf_counter() - start, on_tick)
                gates += decided
            refs = reference_of or {}
            results += [BenchStats.from_timings(label, active[label].backend_at(b), b, t, timings.get(refs.get(label, "")))
                        for label, t in timings.items()]
    finally:
        for entry in entries:
            entry.runner.deactivate()
    return results, gates


def _decide(judge: Judge, batch: int, cases: dict, timings: dict[str, list[Timing]], first_pass_s: float,
            on_tick: Callable[[str], None]) -> tuple[dict[str, list[Timing]], list[GateResult]]:
    """Time the runners of inconclusive gates further, a quarter of the extra budget at a time, until every gate at
    this batch is decided or the budget is spent."""
    deadline = time.perf_counter() + judge.gates.extra_time * first_pass_s
    while True:
        rounds = {label: [t.total_ms for t in ts] for label, ts in timings.items()}
        final = time.perf_counter() >= deadline
        decided, pending = judge.speed(batch, rounds, final)
        if final or not pending:
            return timings, decided
        on_tick(f"batch {batch}: inconclusive, timing {len(pending)} runners further")
        chunk = max(min(deadline - time.perf_counter(), judge.gates.extra_time * first_pass_s / 4), 0.05)
        more = time_round_robin({label: cases[label] for label in pending}, 0, seconds=chunk)
        for label, ts in more.items():
            timings[label] = timings[label] + ts


@dataclass
class BenchOptions:
    torch_variant: str | None = None  # also time the PyTorch model of this variant
    weights: Weights = field(default_factory=Weights)  # for the PyTorch model
    backends: tuple[str, ...] | None = None  # each ONNX runs on each of these (default onnxruntime CPU)
    openvino: OpenVinoOptions | None = None  # for the OpenVINO runner
    # each runner that takes a performance hint (OpenVINO, onnxruntime's CPU) once per hint, as an ONNX runs once per
    # backend; None: openvino's hint, else the latency hint
    hints: tuple[PerformanceHint | str, ...] | None = None
    batch_sizes: list[int] | None = None  # default: BENCH_BATCH_SIZES, any static batch and any max batch below them
    warmup: int = defaults.BENCH_WARMUP
    iterations: int | None = None  # default BENCH_ITERATIONS, unless `seconds` is given
    seconds: float | None = None
    threads: int | None = None  # onnxruntime intra-op threads
    seed: int = defaults.SEED
    gates: SpeedGates = field(default_factory=SpeedGates)
    memory: bool = False  # measure each runner's peak memory in a fresh process (implied by gates.max_rss)
    variant: str | None = None  # what model an ONNX without swin-deploy metadata is
    img_size: tuple[int, int] | None = None  # every runner's input size (None: each artifact's own)

    def __post_init__(self) -> None:
        self.img_size = as_hw(self.img_size, "img_size")
        require_at_least("seed", self.seed, 0)
        self.backends, self.hints = one_or_many(self.backends), one_or_many(self.hints)
        if self.backends:  # a backend named twice is one runner (two would share a label, and one be lost)
            self.backends = tuple(dict.fromkeys(checked_backend(b) for b in self.backends))
        self.batch_sizes = None if self.batch_sizes is None else list(one_or_many(self.batch_sizes))


@dataclass(frozen=True)
class Fastest:
    """The fastest runner at one batch size and its lead over the next: the median over the interleaved rounds of
    next_i / fastest_i with its 95% interval; `decided` when the whole interval is above 1 (else the two are tied
    within the noise). Speed only: verify gates accuracy."""

    batch_size: int
    label: str
    backend: str
    next_label: str
    next_backend: str
    lead: Interval

    @property
    def decided(self) -> bool:
        return self.lead.low > 1.0

    def as_dict(self) -> dict:
        return {"batch_size": self.batch_size, "label": self.label, "backend": self.backend, "next": self.next_label,
                "next_backend": self.next_backend, "decided": self.decided,
                "lead": self.lead.as_dict()}


@dataclass
class BenchReport:
    results: list[BenchStats]
    runners: dict[str, dict]
    threads: int | None
    gates: list[GateResult] = field(default_factory=list)
    references: dict[str, str] = field(default_factory=dict)  # runner -> the runner its speedup is relative to
    machine: dict[str, str] = field(default_factory=machine.describe)
    notes: list[str] = field(default_factory=list)  # what the timings cannot show (an INT8 that overflows here)
    load: machine.MachineLoad | None = None  # the load not bench's own while it ran (other processes, VM steal)

    @property
    def device_timed(self) -> bool:
        """Whether some runner timed device compute apart (GPU backends)."""
        return any(r.compute_p50_ms is not None for r in self.results)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def failures(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def fastest(self) -> list[Fastest]:
        """Per batch size that two or more runners ran: which was fastest, and by how much over the next."""
        found = []
        for batch in sorted({r.batch_size for r in self.results}):
            ranked = sorted((r for r in self.results if r.batch_size == batch), key=lambda r: r.p50_ms)
            if len(ranked) > 1:
                first, second = ranked[:2]
                found.append(Fastest(batch, first.label, first.backend, second.label, second.backend,
                                     speedup_ci(second.rounds_ms, first.rounds_ms)))
        return found

    def as_dict(self) -> dict:
        return {"machine": self.machine, "threads": self.threads, "references": self.references,
                "passed": self.passed, "gates": [g.as_dict() for g in self.gates],
                "results": [r.as_dict() for r in self.results], "runners": self.runners,
                "fastest": [f.as_dict() for f in self.fastest()], "notes": self.notes,
                "machine_load": self.load.as_dict() if self.load else None}


def bench_artifacts(artifacts: list[str | Path] | str | Path, options: BenchOptions | None = None,
                    on_tick: Callable[[str], None] = lambda msg: None) -> BenchReport:
    """Latency of artifacts (one path, or a list; and optionally the PyTorch model), interleaved, at each batch size;
    with `options.gates`, the speed and memory gates decided on the same rounds."""
    artifacts = path_list(artifacts)
    o = options or BenchOptions()
    g = o.gates
    given: dict[Path, Path] = {}
    for path in artifacts:  # one file named twice (t.onnx, ./dir/t.onnx) would be timed as one runner and shown once
        if (first := given.setdefault(path.resolve(), path)) is not path:
            spelled = "" if str(first) == str(path) else f" (as {first} and {path})"
            raise UserError(f"{first.name} is given twice{spelled}: pass each artifact once")
    if g.against is not None and Path(g.against).resolve() not in given:
        artifacts.append(Path(g.against))
    if not artifacts and not o.torch_variant:
        raise UserError("nothing to benchmark: pass artifact paths and/or `torch` VARIANT")
    if not o.torch_variant and o.weights.option is not None:
        raise UserError("the weights options (`checkpoint`, `random_init`, `pretrained`) are the PyTorch model's: "
                        "add `torch` VARIANT, or leave them out (an artifact carries its own)")
    if o.iterations is not None and o.seconds is not None:
        raise UserError("choose `iterations` or `seconds`, not both")
    iterations = defaults.BENCH_ITERATIONS if o.iterations is None and o.seconds is None else o.iterations
    require_at_least("iterations", iterations, 1)
    if o.seconds is not None and not 0 < o.seconds < math.inf:  # nan timed nothing, inf never ended
        raise UserError(f"`seconds` must be a positive number of seconds, not {o.seconds:g}")
    require_at_least("warmup", o.warmup, 0)
    if g.timed and iterations is not None and iterations < defaults.GATE_MIN_ROUNDS:
        raise UserError(f"speed gates need at least {defaults.GATE_MIN_ROUNDS} rounds: raise `iterations`")
    if g.timed and g.against is None and not o.torch_variant:
        raise UserError("speed gates compare with a reference timed in the same run: pass `torch` VARIANT or "
                        "`against` FILE")
    infos = {path: artifact_info(path, fallback_variant=o.variant) for path in artifacts}
    if o.variant is not None and all(info.weights_sha256 for info in infos.values()):
        for path, info in infos.items():  # no artifact here lacks metadata: `variant` may only repeat what theirs say
            as_named(info, o.variant, path)
    if o.backends and not any(kind_of(p) == "onnx" for p in infos):
        own = ", ".join(f"{p.name} on {default_backend(p)}" for p in infos)
        raise UserError(f"`backend` chooses each ONNX's runtime, and none of these is an ONNX ({own}): drop it")
    hints = _hints(o)
    given = o.openvino if hints == (None,) else replace(o.openvino or OpenVinoOptions(), performance_hint=hints[0])
    if said := unused_options(given, {b or default_backend(p) for p in infos for b in _backends(p, o.backends)}):
        raise UserError(said)
    runs_at = _input_sizes(infos, o.img_size)
    torch_cfg = _torch_config(o.torch_variant, infos, o.weights) if o.torch_variant else None
    torch_size = _torch_size(infos, runs_at, o.img_size, torch_cfg) if torch_cfg else None
    # each artifact's defaults (a static batch's own, a max batch's in place of those above it), benched for all
    sizes = list(dict.fromkeys(o.batch_sizes)) if o.batch_sizes else sorted(set(defaults.BENCH_BATCH_SIZES).union(
        *(i.default_batch_sizes(defaults.BENCH_BATCH_SIZES) for i in infos.values())))
    if min(sizes) < 1:
        raise UserError("batch sizes must be positive integers, e.g. `batch_sizes` 1,8,32")
    missing = sorted(set(g.batch_sizes or ()) - set(sizes))
    if missing:
        raise UserError(f"`gate_batch` {missing[0]} is not benched: add it to `batch_sizes`")
    entries, notes = [], []
    names = _short_names(list(infos))
    for path, info in infos.items():
        if not any(info.accepts_batch(b) for b in sizes):
            takes = f"only batch {info.fixed_batch}" if info.fixed_batch else f"batches up to {info.max_batch}"
            raise UserError(f"{path.name} takes {takes}: pick `batch_sizes` it accepts")
        info.check_memory(max(b for b in sizes if info.accepts_batch(b)), [runs_at[path]],
                          "choose smaller `batch_sizes`", path.name)
        backends = _backends(path, o.backends)
        identity = {"model": f"{info.variant} {info.precision} weights {info.weights_sha256[:16] or 'unknown'}",
                    "artifact_sha256": artifact_sha256(path), "input_size": _hw(runs_at[path])}
        ran_on = []
        for backend, hint in _runs(path, backends, hints):
            shown = [str(s) for s in (backend if len(backends) > 1 else None, hint if len(hints) > 1 else None) if s]
            label = f"{names[path]} [{', '.join(shown)}]" if shown else names[path]
            options = options_for(o.openvino, backend or default_backend(path))
            if hint is not None:
                options = replace(options or OpenVinoOptions(), performance_hint=hint)
            spec = RunnerSpec(path, backend, o.threads, options, variant=o.variant, img_size=runs_at[path])
            runner, example = spec.runner()
            entries.append(BenchEntry(label, runner, example, info.accepts_batch, identity, spec))
            ran_on.append(runner.name)
        # what its times cannot show: a speed that may be that of a wrong answer (verify it there before shipping),
        # or a runtime that runs this artifact slower than float
        for note_of in (info.overflow_note, info.speed_note):
            if runtimes := [name for name in dict.fromkeys(ran_on) if note_of(name)]:
                notes.append(f"{names[path]} on {', '.join(runtimes)}: {note_of(runtimes[0])}")
    torch_label = None
    if torch_cfg:
        runner, example, weights_sha = torch_runner(torch_cfg, o.weights, torch_size)
        torch_label = f"pytorch {o.torch_variant}"
        entries.append(BenchEntry(torch_label, runner, example,
                                  identity={"model": f"{o.torch_variant} fp32 weights {weights_sha[:16]}",
                                            "input_size": _hw(torch_size)},
                                  spec=RunnerSpec(torch_config=torch_cfg, weights=o.weights, img_size=torch_size)))
    reference_of = _references(entries, g.against, torch_label, required=g.timed)
    if g.timed and not reference_of:  # the reference alone: a gate with nothing to judge would pass every time
        what = f"`against` {Path(g.against).name}" if g.against is not None else "the `torch` model"
        raise UserError(f"the speed gates compare other runners with {what}, and it is the only one here: pass the "
                        "artifacts to gate beside it")
    judge = None
    if g.any:
        baseline = Baseline.load(g.baseline) if g.baseline is not None else None
        changed = set()
        if baseline is not None:
            gated = [e for e in entries if e.label in reference_of or e.label in reference_of.values()]
            baseline.check_machine(machine.describe(), o.threads, cpu=any(map(_on_cpu, gated)))
            labels = {}  # this run's label -> the baseline's, for the same runner
            for e in gated:
                hint = None if e.runner.hint is None else str(e.runner.hint)
                described = {**e.identity, "backend": e.runner.name, "performance_hint": hint}
                labels[e.label] = baseline.label_for(e.label, described)
                if baseline.check(labels[e.label], described, [b for b in (g.batch_sizes or sizes) if e.accepts(b)]):
                    changed.add(e.label)
            baseline = baseline.relabelled(labels)
        judge = Judge(g, reference_of, baseline, frozenset(changed))
    with machine.LoadMeter() as load:
        results, gates = run_bench(entries, sizes, o.warmup, iterations, o.seconds, on_tick, o.seed, judge,
                                   reference_of, memory=o.memory or g.max_rss is not None)
    if load.busy >= defaults.BUSY_MACHINE_CORES:
        stolen = f" and the hypervisor {load.steal_cores:.1f} (steal)" if load.steal_cores >= 0.05 else ""
        notes.append(f"the machine was busy: while this ran, other processes kept {load.other_cores:.1f} of its "
                     f"{load.cores} usable cores busy on average{stolen}; these times and gates were measured beside "
                     "that load, which slows some runners more than others (a gate can fail on it): repeat on a quiet "
                     "machine before trusting them")
    if load.throttled is not None and load.throttled >= defaults.THROTTLED_PERIODS:
        fits = int(load.quota_cpus)
        fix = f"bench with at most {fits} thread(s) (`threads`), or " if fits else "bench "
        notes.append(f"the CPU quota throttled this run: its cgroup may use {load.quota_cpus:.2g} CPUs, and the kernel "
                     f"stopped it for the rest of the period in {load.throttled:.0%} of the scheduler periods while it "
                     "ran, so these times include waits for the quota, longer in some rounds than others (a gate can "
                     f"fail on them): {fix}where the quota covers the threads")
    return BenchReport(results, {e.label: e.describe() for e in entries}, o.threads, gates, reference_of,
                       notes=notes, load=load)


def _hints(o: BenchOptions) -> tuple[PerformanceHint | None, ...]:
    """The performance hints each hinted runner runs under, in order, once each; (None,): its options' own."""
    if not o.hints:
        return (None,)
    if o.openvino is not None and o.openvino.performance_hint is not None:
        raise UserError("give the performance hints in `hints` alone, not in `openvino` too")
    return tuple(dict.fromkeys(PerformanceHint.parse(h, "performance_hint") for h in o.hints))


def _runs(path: Path, backends: list[str | None], hints: tuple) -> list[tuple[str | None, PerformanceHint | None]]:
    """(backend, hint) of each runner of an artifact: once per backend, and per hint on a backend that takes one."""
    return [(b, h) for b in backends
            for h in (hints if (b or default_backend(path)) in TAKEN_BY["performance_hint"] else (None,))]


def _on_cpu(entry: BenchEntry) -> bool:
    described = entry.describe()
    return described.get("backend") in ("onnxruntime-cpu", "openvino") or described.get("device") == "cpu"


def _hw(size) -> str:
    return f"{size[0]}x{size[1]}"


def _input_sizes(infos: dict, img_size: tuple[int, int] | None) -> dict[Path, tuple[int, int]]:
    """The input size each artifact runs at: `img_size` where given (every artifact must take it), else its own."""
    if img_size is None:
        return {path: tuple(info.img_size) for path, info in infos.items()}
    for path, info in infos.items():
        try:
            info.check_size(img_size)
        except UserError as e:
            raise UserError(f"{path.name}: {e}") from None
    return {path: tuple(img_size) for path in infos}


def _torch_config(variant: str, infos: dict, weights: Weights) -> SwinConfig:
    """The PyTorch model `variant` names: the architecture an artifact of that name records (a fine-tune's or a
    transformers checkpoint's, which the registry does not know), else the registry's (timm names too), or a
    transformers checkpoint's config.json that agrees with it."""
    from .models import config_for

    recorded = [info for info in infos.values() if info.variant == variant and info.architecture]
    return recorded[0].config() if recorded else config_for(variant, weights)


def _torch_size(infos: dict, runs_at: dict[Path, tuple[int, int]], img_size: tuple[int, int] | None,
                cfg: SwinConfig) -> tuple[int, int]:
    """The size the PyTorch model `cfg` runs at: `img_size`, or the size its variant's artifacts run at, so that
    speedups compare the same work, or with no artifact of it to match, the variant's own."""
    if img_size is not None:
        return tuple(img_size)
    sizes = sorted({runs_at[path] for path, info in infos.items() if info.variant == cfg.name})
    if len(sizes) > 1:
        raise UserError(f"the {cfg.name} artifacts run at {' and '.join(map(_hw, sizes))}: pass `img_size` to time "
                        "them and the PyTorch model at one size")
    return sizes[0] if sizes else tuple(cfg.img_size)


def _references(entries: list[BenchEntry], against: Path | None, torch_label: str | None,
                required: bool = False) -> dict[str, str]:
    """Each gated runner's reference: the `against` artifact on the same backend under the same performance hint, or
    else the PyTorch model. `required` (speed gates): a runner with no such reference is an error, not left ungated."""
    if against is None:
        return {e.label: torch_label for e in entries if torch_label and e.label != torch_label}
    target = Path(against).resolve()
    refs = {e.label: e for e in entries if e.spec is not None and e.spec.path is not None
            and Path(e.spec.path).resolve() == target}
    runs_as = {e.label: (e.runner.name, e.runner.hint) for e in refs.values()}
    out = {}
    for e in entries:
        if e.label in refs or e.label == torch_label:
            continue
        same = [label for label, how in runs_as.items() if how == (e.runner.name, e.runner.hint)]
        if same:
            out[e.label] = same[0]
        elif required:
            def where(runner: Runner) -> str:
                return runner.name + (f" under the {runner.hint} hint" if runner.hint else "")

            raise UserError(f"{e.label} runs on {where(e.runner)}, where `against` {target.name} does not run in this "
                            f"call (it runs on {', '.join(sorted({where(r.runner) for r in refs.values()}))}): a speed "
                            "gate compares runners of one runtime; add that runtime to `backend` so the reference runs "
                            "there too, or gate against an artifact of that runtime or the `torch` model")
    return out


PLOT_FORMATS = ("png", "svg", "pdf")


def plot_format(path: Path) -> str:
    """The format a plot at `path` is written in, by its suffix; a UserError for one matplotlib is not asked to write
    (checked before the run, which a plot follows)."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise UserError(f"`plot` writes {', '.join(PLOT_FORMATS)} files by their suffix, not '{Path(path).name}': "
                        f"name it {Path(path).stem}.png")
    return fmt


def plot(results: list[BenchStats], path: Path) -> None:
    """Latency vs batch size per artifact, and throughput per artifact at each batch size (PNG, SVG or PDF by the
    suffix of `path`)."""
    fmt = plot_format(path)
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
        ax1.errorbar([r.batch_size for r in rows], [r.p50_ms for r in rows], marker="o", capsize=3, label=label,
                     yerr=[[r.p50_ms - r.p50_ci[0] for r in rows], [r.p50_ci[1] - r.p50_ms for r in rows]])
        xs = [sizes.index(r.batch_size) + i * width for r in rows]
        ax2.bar(xs, [r.throughput for r in rows], width=width, label=label)
    ax1.set(xlabel="batch size", ylabel="p50 latency (ms), 95% CI", title="Latency", xscale="log", yscale="log")
    ax1.set_xticks(sizes, [str(s) for s in sizes])
    ax1.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax2.set(xlabel="batch size", ylabel="images / s", title="Throughput")
    ax2.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], [str(s) for s in sizes])
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=f".{fmt}") as tmp:
        fig.savefig(tmp, format=fmt, dpi=110)
    plt.close(fig)
