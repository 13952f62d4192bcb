"""bench's gates: minimum speedup against a reference in the same run, maximum slowdown against an earlier run's
JSON (normalised by the reference measured in both), maximum host memory. Statistics: swin_deploy.latency."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import defaults
from .enums import GateKind, Verdict
from .errors import UserError
from .latency import GateResult, Interval, at_least, at_most, slowdown_ci, speedup_ci


@dataclass(frozen=True)
class SpeedGates:
    """What bench must show, validated on construction. Speed gates compare each runner with a reference timed in
    the same rounds: `against` (another artifact) or else the PyTorch model bench times."""

    min_speedup: float | None = None  # x: the 95% CI's low end of the median of reference_i / runner_i
    against: Path | None = None
    baseline: Path | None = None  # an earlier bench JSON
    max_slowdown: float | None = None  # fraction: 0.1 = at most 10% slower than the baseline, relative to the reference
    batch_sizes: tuple[int, ...] | None = None  # gate only these (default: every batch size benched)
    max_rss: int | None = None  # bytes: the peak memory a runner may add to a process (load, and one run)
    extra_time: float = defaults.GATE_EXTRA_TIME  # inconclusive: time again for up to this x the first pass

    def __post_init__(self) -> None:
        if self.min_speedup is not None and not self.min_speedup > 0:
            raise UserError(f"`min_speedup` must be positive (1.2 = 20% faster than the reference), not {self.min_speedup}")
        if (self.baseline is None) != (self.max_slowdown is None):
            raise UserError("`baseline` and `max_slowdown` go together: pass both (e.g. --baseline bench.json "
                            "--max-slowdown 10%)")
        if self.max_slowdown is not None and not self.max_slowdown >= 0:
            raise UserError(f"`max_slowdown` must not be negative, not {self.max_slowdown}")
        if self.max_rss is not None and self.max_rss <= 0:
            raise UserError("`max_rss` must be a positive size, e.g. 2GiB")
        if self.extra_time < 0:
            raise UserError("`extra_time` must not be negative")
        if self.batch_sizes is not None:
            object.__setattr__(self, "batch_sizes", tuple(self.batch_sizes))
        if self.batch_sizes is not None and not self.any:
            raise UserError("`gate_batch` restricts gates: pass one (`min_speedup`, `max_slowdown` or `max_rss`)")

    @property
    def timed(self) -> bool:
        """Whether a gate compares times (and so needs a reference and enough rounds)."""
        return self.min_speedup is not None or self.max_slowdown is not None

    @property
    def any(self) -> bool:
        return self.timed or self.max_rss is not None


@dataclass(frozen=True)
class Baseline:
    """The per-round times and runner descriptions of an earlier bench JSON."""

    path: Path
    rounds: dict[tuple[str, int], np.ndarray]
    runners: dict[str, dict]
    machine: dict = field(default_factory=dict)  # CPU model and vector ISA it was measured on (older JSON: none)
    threads: int | None = None

    @classmethod
    def load(cls, path: Path) -> Baseline:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            rounds = {(r["label"], int(r["batch_size"])): np.asarray(r["rounds_ms"], np.float64)
                      for r in data["results"]}
            runners = dict(data["runners"])
            machine, threads = dict(data.get("machine") or {}), data.get("threads")
        except FileNotFoundError:
            raise UserError(f"baseline {path} does not exist: write one with `json` PATH in an earlier bench") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{path} is not a bench JSON with per-round times (\"rounds_ms\"): write the baseline with "
                            "`json` PATH in a bench of this version") from None
        return cls(path, rounds, runners, machine, threads)

    def check_machine(self, machine: dict, threads: int | None, cpu: bool = True) -> None:
        """Refuse a baseline measured on another kind of CPU (where the gated runners run on it, `cpu`) or thread
        count: how two runtimes or precisions compare turns on the vector ISA (INT8 against FP32 without VNNI, bf16
        with AMX; docs/cpu.md), and on the core (Zen 4 and Zen 5 have the same ISA, not the same vector units), so a
        ratio from there says nothing of a regression here. The CPU's model name may differ (a cloud fleet's
        steppings)."""
        for key, what in (("vector_isa", "a CPU with {}"), ("core", "a {} core")):
            then, now = self.machine.get(key), machine.get(key)
            if cpu and then and now and "unknown" not in (then, now) and then != now:
                raise UserError(f"baseline {self.path.name} was measured on {what.format(then)} "
                                f"({self.machine.get('cpu')}), this one is {what.format(now)} "
                                f"({machine.get('cpu')}): runtimes and precisions compare differently there; keep a "
                                "baseline per machine kind")
        if self.threads != threads:
            raise UserError(f"baseline {self.path.name} was measured with `threads` {self.threads}, this run has "
                            f"{threads}: pass the same `threads`, or write a new baseline")

    def label_for(self, label: str, runner: dict) -> str:
        """This run's runner `label` (described by `runner`) as the baseline labels it: its runner of the same
        artifact or PyTorch model, runtime and performance hint, whatever the labels of each run add to tell its own
        runners apart (a run of two backends labels `m.onnx [openvino]` what a run of one labels `m.onnx`); else
        `label`, which `check` then compares with what the baseline has under it."""
        name = label.split(" [", 1)[0]
        same = [then for then, described in self.runners.items() if then.split(" [", 1)[0] == name
                and described.get("backend") == runner.get("backend") and _hint(described) == _hint(runner)]
        return same[0] if len(same) == 1 else label

    def relabelled(self, labels: dict[str, str]) -> Baseline:
        """The baseline with its runners and rounds under this run's labels (`labels`: this run's -> the baseline's)."""
        return replace(self, runners={now: self.runners[then] for now, then in labels.items()},
                       rounds={(now, b): times for now, then in labels.items()
                               for (label, b), times in self.rounds.items() if label == then})

    def check(self, label: str, runner: dict, batch_sizes: list[int]) -> bool:
        """Refuse a baseline of another model, runtime, input size, performance hint or batch size under this label; True
        if the artifact file itself changed since (a re-export or re-quantization of the same model: what the gate is
        for)."""
        if label not in self.runners:
            raise UserError(f"baseline {self.path.name} has no runner '{label}' (it has {', '.join(self.runners)}): "
                            "bench the same files, or write a new baseline")
        then = self.runners[label]
        then, now = {**then, "performance_hint": _hint(then)}, {**runner, "performance_hint": _hint(runner)}
        for key, what in (("model", "model"), ("backend", "runtime"), ("input_size", "input size"),
                          ("performance_hint", "performance hint")):
            if then.get(key) != now.get(key) and (key != "input_size" or key in then):  # older JSON: no size
                raise UserError(f"baseline {self.path.name} measured '{label}' as {what} {then.get(key)}, this run "
                                f"has {now.get(key)}: compare like with like, or write a new baseline")
        missing = [b for b in batch_sizes if (label, b) not in self.rounds]
        if missing:
            have = sorted(b for (name, b) in self.rounds if name == label)
            raise UserError(f"baseline {self.path.name} has no batch {missing[0]} for '{label}' (it has "
                            f"{', '.join(map(str, have))}): pass `gate_batch` from those")
        return then.get("artifact_sha256") != runner.get("artifact_sha256")


def _hint(described: dict) -> str | None:
    """The performance hint a runner ran under (None: it takes none); onnxruntime's CPU runner wrote none before it
    took one, and ran as under the latency hint."""
    return described.get("performance_hint") or ("latency" if described.get("backend") == "onnxruntime-cpu" else None)


class Judge:
    """Decides the speed gates of one batch size from the rounds timed so far."""

    def __init__(self, gates: SpeedGates, reference_of: dict[str, str], baseline: Baseline | None,
                 changed: frozenset[str] = frozenset()):
        self.gates, self.reference_of, self.baseline = gates, reference_of, baseline
        self.changed = changed  # runners whose artifact file differs from the baseline's

    def speed(self, batch: int, rounds: dict[str, list[float]], final: bool) -> tuple[list[GateResult], set[str]]:
        """The gates at `batch` and the runners whose gates are still inconclusive (to time more, unless `final`:
        then an inconclusive gate stays so, failing a speed claim and passing a regression gate)."""
        if not self.gates.timed or (self.gates.batch_sizes and batch not in self.gates.batch_sizes):
            return [], set()
        results, pending = [], set()
        for label, ref in self.reference_of.items():
            if label not in rounds or ref not in rounds:
                continue
            n = min(len(rounds[label]), len(rounds[ref]))  # the paired rounds (latency._round_ratios)
            for kind, threshold, value, verdict in self._decide(label, ref, batch, rounds[label], rounds[ref]):
                note = ""
                if verdict == Verdict.INCONCLUSIVE:
                    if not final:
                        pending |= {label, ref}
                    elif kind == GateKind.MIN_SPEEDUP:
                        note = (f"still inconclusive after {n} rounds and the extra time: the interval straddles the "
                                "threshold; time longer (`seconds`) or on a quieter machine")
                    else:
                        note = (f"inconclusive after {n} rounds: not shown to be slower than allowed, so it passes; "
                                "time longer (`seconds`) for a tighter interval")
                changed = None if kind != GateKind.MAX_SLOWDOWN else label in self.changed
                results.append(GateResult(kind, label, batch, threshold, value, verdict, n, ref, note, changed))
        return results, pending

    def _decide(self, label: str, ref: str, batch: int, cand: list[float], reference: list[float]):
        g = self.gates
        if g.min_speedup is not None:
            value = speedup_ci(reference, cand)
            yield GateKind.MIN_SPEEDUP, g.min_speedup, value, at_least(value, g.min_speedup)
        if g.max_slowdown is not None and self.baseline is not None:
            value = slowdown_ci(cand, reference, self.baseline.rounds[(label, batch)], self.baseline.rounds[(ref, batch)])
            yield GateKind.MAX_SLOWDOWN, g.max_slowdown, value, at_most(value, 1 + g.max_slowdown)

    def memory(self, label: str, added_bytes: int | None) -> GateResult | None:
        if self.gates.max_rss is None or added_bytes is None:
            return None
        value = Interval(float(added_bytes), float(added_bytes), float(added_bytes))
        verdict = Verdict.PASS if added_bytes <= self.gates.max_rss else Verdict.FAIL
        return GateResult(GateKind.MAX_RSS, label, None, float(self.gates.max_rss), value, verdict)


def junit_report(gates: list[GateResult], runners: dict[str, dict] | None = None, seconds: float = 0.0) -> str:
    """One JUnit test case per gate (runner, batch size, gate), named like verify's: under a class naming the
    artifact and what ran it (`runners`: each runner's description by label; fileio.junit_class)."""
    from .fileio import junit_class, junit_xml

    def classname(label: str) -> str:
        described = (runners or {}).get(label)
        return junit_class(label.split(" [")[0], described, ("backend", "execution_precision", "performance_hint")) \
            if described else label

    cases = [(classname(g.label), f"batch{g.batch_size}.{g.gate}" if g.batch_size else str(g.gate),
              None if g.passed else g.describe()) for g in gates]
    return junit_xml("swin-deploy bench gates", cases, seconds)
