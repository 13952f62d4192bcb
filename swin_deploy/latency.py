"""Latency statistics and speed gates over paired, interleaved rounds (pure numpy; times nothing itself).

bench times every runner once per round, round-robin, so round i of the candidate and round i of the reference ran
milliseconds apart under the same machine state. A speed claim is therefore made about the median of the per-round
ratios (reference_i / candidate_i), with a confidence interval from a bootstrap over rounds. Per-round ratios cancel
drift that slows both runners, and their median ignores the rounds a burst of load hit one runner and not the other:
measured with a competing process on one of two cores, the ratio of the two medians moved by up to 29% at batch 8
where the median of the ratios moved by 8% (benchmarks/RESULTS.md, "Latency gates"). The percentile bootstrap of a
median is distribution-free, which matters because latencies on shared machines are skewed and multi-modal.

A gate is decided when the interval is on one side of its threshold:
  min speedup X   pass if low >= X, fail if high < X
  max slowdown S  pass if high <= 1 + S, fail if low > 1 + S
and is otherwise inconclusive: bench then takes more rounds (up to a time budget). What an inconclusive gate means at
the end differs by what it protects: a speed claim (min speedup) that the rounds cannot show fails, saying so; a
regression gate (max slowdown) fails only on evidence of a regression, so on a machine too noisy to tell it passes,
reported as inconclusive (a gate that fails whenever the runner is busy gets switched off). A baseline from an earlier
run is compared through the reference measured in both runs: median(candidate_i / reference_i) now over the same then,
so a slower or busier machine moves both alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import defaults
from .enums import GateKind, Verdict
from .parsing import format_bytes
from .tolerances import GATE_CONFIDENCE


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}]"

    def as_dict(self) -> dict:
        """As the JSON reports hold it."""
        return {"estimate": self.estimate, "ci": [self.low, self.high]}


def _percentiles(samples: np.ndarray, estimate: float, level: float) -> Interval:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


def _resample(n: int, seed: int, resamples: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _median_resamples(values: np.ndarray, seed: int, resamples: int) -> np.ndarray:
    return np.median(values[_resample(len(values), seed, resamples)], axis=1)


def median_ci(ms: np.ndarray | list[float], level: float = GATE_CONFIDENCE, seed: int = defaults.SEED,
              resamples: int = defaults.BOOTSTRAP_RESAMPLES) -> Interval:
    """The median of `ms` and its bootstrap confidence interval."""
    ms = np.asarray(ms, dtype=np.float64)
    return _percentiles(_median_resamples(ms, seed, resamples), float(np.median(ms)), level)


def _round_ratios(numerator, denominator) -> np.ndarray:
    """numerator_i / denominator_i for the rounds both were timed in (rounds pair by index; a runner timed further
    while a gate was inconclusive has extra rounds at the end, which pair with nothing)."""
    n = min(len(numerator), len(denominator))
    return np.asarray(numerator[:n], np.float64) / np.asarray(denominator[:n], np.float64)


def speedup_ci(reference_ms, candidate_ms, level: float = GATE_CONFIDENCE, seed: int = defaults.SEED,
               resamples: int = defaults.BOOTSTRAP_RESAMPLES) -> Interval:
    """The median over rounds of reference_i / candidate_i, with its bootstrap interval."""
    ratios = _round_ratios(reference_ms, candidate_ms)
    return _percentiles(_median_resamples(ratios, seed, resamples), float(np.median(ratios)), level)


def slowdown_ci(now_ms, now_reference_ms, then_ms, then_reference_ms, level: float = GATE_CONFIDENCE,
                seed: int = defaults.SEED, resamples: int = defaults.BOOTSTRAP_RESAMPLES) -> Interval:
    """How much slower the candidate is now than in a baseline run, each run's time relative to the reference
    measured in it: median(now_i / now_reference_i) / median(then_i / then_reference_i). The two runs are resampled
    independently."""
    now, then = _round_ratios(now_ms, now_reference_ms), _round_ratios(then_ms, then_reference_ms)
    estimate = float(np.median(now) / np.median(then))
    return _percentiles(_median_resamples(now, seed, resamples) / _median_resamples(then, seed + 1, resamples),
                        estimate, level)


def at_least(interval: Interval, threshold: float) -> Verdict:
    if interval.low >= threshold:
        return Verdict.PASS
    return Verdict.FAIL if interval.high < threshold else Verdict.INCONCLUSIVE


def at_most(interval: Interval, threshold: float) -> Verdict:
    if interval.high <= threshold:
        return Verdict.PASS
    return Verdict.FAIL if interval.low > threshold else Verdict.INCONCLUSIVE


@dataclass
class GateResult:
    """One gate on one runner at one batch size (max_rss: at the largest batch it ran)."""

    gate: GateKind
    label: str
    batch_size: int | None
    threshold: float  # min speedup (x), max slowdown (fraction), max memory (bytes)
    value: Interval
    verdict: Verdict
    rounds: int = 0
    against: str | None = None  # the reference runner's label
    note: str = ""
    artifact_changed: bool | None = None  # max_slowdown: whether the artifact file differs from the baseline's

    @property
    def passed(self) -> bool:
        """A speed claim passes on evidence only; a regression gate fails on evidence only (see the module doc)."""
        return self.verdict == Verdict.PASS or (self.verdict == Verdict.INCONCLUSIVE and self.gate == GateKind.MAX_SLOWDOWN)

    def describe(self) -> str:
        where = f"{self.label}" + (f" at batch {self.batch_size}" if self.batch_size else "")
        if self.gate == GateKind.MAX_RSS:
            return (f"{where}: peak host memory of the runner {format_bytes(self.value.estimate)}, limit "
                    f"{format_bytes(self.threshold)}: {self.verdict}")
        if self.gate == GateKind.MIN_SPEEDUP:
            claim = f"speedup vs {self.against} {self.value} (95% CI), needs >= {self.threshold:g}x"
        else:
            claim = (f"time relative to {self.against} is {self.value} x the baseline's (95% CI), allowed <= "
                     f"{1 + self.threshold:g}x" + (", artifact changed since the baseline" if self.artifact_changed else ""))
        return f"{where}: {claim}: {self.verdict}" + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(gate=str(self.gate), verdict=str(self.verdict), passed=self.passed,
                 value=self.value.as_dict())
        return d
