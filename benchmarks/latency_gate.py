"""The latency gate, measured on this machine: how often it fails an unchanged artifact, and how often it catches a
real slowdown.

    python benchmarks/latency_gate.py [--repeats 20] [--max-slowdown 0.1] [--slowdown 1.3]

Candidate: the demo model's onnxruntime-target INT8 ONNX; reference: its fp32 ONNX on the same runtime (what the
README's CI example gates against). One baseline run writes the JSON every gate run compares with
(`bench --against fp32 --baseline base.json --max-slowdown 10%`, default batch sizes and rounds), then:
  false alarms, idle       the unchanged candidate, `--repeats` gate runs;
  false alarms, loaded     the same while a competing process does matrix products (started before and
                           stopped after each gate run by this script; meant for one core, its BLAS may take
                           more: each case prints the load bench measured beside its runs);
  detection                the candidate with an injected slower path: its runner spins after each inference for
                           (slowdown - 1) x that inference's own time, so it is `--slowdown` times slower whatever
                           the machine's speed; gated idle and loaded.
It also times a plain bench and a gated one (the gate's cost). Ends with the rates, for the README.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from calibration import Int8Options, QuantizeOptions, quantize
from swin_deploy import bench as bench_module
from swin_deploy import defaults
from swin_deploy.backends.base import Runner
from swin_deploy.bench import BenchOptions, bench_artifacts
from swin_deploy.bench_gates import SpeedGates
from swin_deploy.demo import write_digits
from swin_deploy.enums import Verdict
from swin_deploy.export import ExportOptions, export_variant
from swin_deploy.fileio import write_text_atomic
from swin_deploy.models import Weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

MODEL = "swinv2_digits"


class Slowed(Runner):
    """`inner`, `factor` times slower: after each inference it spins for (factor - 1) x that inference's time."""

    def __init__(self, inner: Runner, factor: float):
        super().__init__()
        # the same runtime and hint as `inner`: bench gates it against the reference on the same ones
        self.inner, self.factor, self.name, self.hint = inner, factor, inner.name, inner.hint

    def _activate(self) -> None:
        self.inner.activate()

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        out = self.inner.infer(x)
        until = start + (time.perf_counter() - start) * self.factor
        while time.perf_counter() < until:
            pass
        return out

    def _deactivate(self) -> None:
        self.inner.deactivate()

    def describe(self) -> dict:
        return self.inner.describe()


def _busy(stop) -> None:
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    a = np.random.default_rng(0).standard_normal((384, 384), dtype=np.float32)
    while not stop.is_set():
        a = np.tanh(a @ a)


class CompetingLoad:
    """A process doing matrix products for the duration of the block (OMP_NUM_THREADS=1 is set after its BLAS has
    started, so it may run more than one thread: on a 2-core Zen 3 bench measured 1.3-1.5 cores beside it)."""

    def __enter__(self):
        self.stop = multiprocessing.Event()
        self.process = multiprocessing.Process(target=_busy, args=(self.stop,), daemon=True)
        self.process.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.process.join(5)


def gate_run(candidate: Path, reference: Path, baseline: Path, max_slowdown: float, slowdown: float | None
             ) -> tuple[bool, bool, list[str], float]:
    """One `bench --against reference --baseline --max-slowdown` run of the candidate: whether every gate passed,
    whether any was left inconclusive (which a regression gate passes), each failed gate's batch size and value, and
    the load beside it that bench measured (cores kept busy by other processes and VM steal)."""
    original = bench_module.runner_for

    def runner_for(path, *args, **kwargs):
        runner = original(path, *args, **kwargs)
        return Slowed(runner, slowdown) if slowdown and Path(path) == candidate else runner

    bench_module.runner_for = runner_for
    try:
        report = bench_artifacts([candidate], BenchOptions(gates=SpeedGates(against=reference, baseline=baseline,
                                                                            max_slowdown=max_slowdown)))
    finally:
        bench_module.runner_for = original
    failed = [f"b{g.batch_size} {g.value}" for g in report.gates if g.verdict == Verdict.FAIL]
    return report.passed, any(g.verdict == Verdict.INCONCLUSIVE for g in report.gates), failed, report.load.busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--max-slowdown", type=float, default=0.1)
    ap.add_argument("--slowdown", type=float, default=1.3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    write_digits(tmp / "data")
    fp32 = export_variant(MODEL, Weights(), tmp / f"{MODEL}.onnx", ExportOptions(max_batch=32)).path
    int8 = quantize(fp32, tmp / f"{MODEL}.int8.onnx", QuantizeOptions(
        "int8", calib_data=tmp / "data" / "calib", int8=Int8Options(target="onnxruntime"))).path
    print(f"{machine()}; candidate {int8.name} vs reference {fp32.name} on onnxruntime, default bench settings",
          flush=True)

    start = time.perf_counter()
    plain = bench_artifacts([int8, fp32], BenchOptions())
    plain_s = time.perf_counter() - start
    baseline = tmp / "base.json"
    write_text_atomic(baseline, json.dumps(bench_artifacts([int8], BenchOptions(gates=SpeedGates(against=fp32))).as_dict()))
    start = time.perf_counter()
    gate_run(int8, fp32, baseline, args.max_slowdown, None)  # timed for what a decision costs; its outcome is below
    gated_s = time.perf_counter() - start
    print(f"plain bench {plain_s:.1f} s, one gate decision {gated_s:.1f} s ({gated_s / plain_s:.2f}x); "
          f"p50 at batch 8: {next(r.p50_ms for r in plain.results if r.label == int8.name and r.batch_size == 8):.1f} ms",
          flush=True)

    rows = []
    for what, slowdown, loaded in (("unchanged, idle", None, False), ("unchanged, competing load", None, True),
                                   (f"{args.slowdown}x slower, idle", args.slowdown, False),
                                   (f"{args.slowdown}x slower, competing load", args.slowdown, True)):
        passed = unsure = 0
        alarms = []  # unchanged artifact: each false alarm's failed gates, to see where they come from
        busy = []  # the load bench measured beside each run
        for _ in range(args.repeats):
            with CompetingLoad() if loaded else contextlib.nullcontext():
                ok, inconclusive, failures, load = gate_run(int8, fp32, baseline, args.max_slowdown, slowdown)
            passed, unsure = passed + ok, unsure + inconclusive
            busy.append(load)
            if failures and slowdown is None:
                alarms.append(", ".join(failures))
        failed = args.repeats - passed
        rate = f"false alarms {failed}/{args.repeats}" if slowdown is None else f"caught {failed}/{args.repeats}"
        rate += (f" ({unsure} run(s) with a batch size left inconclusive; load beside it {min(busy):.2f}-{max(busy):.2f} "
                 f"cores, noted busy in {sum(b >= defaults.BUSY_MACHINE_CORES for b in busy)})")
        rate += "".join(f"; {a}" for a in alarms)
        rows.append((what, rate))
        print(f"| {what} | {rate} |", flush=True)
    print(f"\n--max-slowdown {args.max_slowdown:.0%} on {machine()}:")
    for what, rate in rows:
        print(f"  {what}: {rate}")


if __name__ == "__main__":
    main()
