"""Comparing logits: metrics and the gate. Pure numpy; nothing here runs a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import UserError
from .tolerances import NEAR_TIE_MEAN_DELTAS, Thresholds


def max_rel_delta(ref: np.ndarray, cand: np.ndarray) -> float:
    """max |cand - ref| / max |ref|: the one relative-delta formula every gate and parity check uses."""
    return float(np.abs(cand - ref).max() / max(float(np.abs(ref).max()), 1e-30))


def max_rel_delta_outputs(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray]) -> float:
    """The worst `max_rel_delta` over every named output."""
    return max(max_rel_delta(ref[name], cand[name]) for name in ref)


def _clean(cand: np.ndarray) -> np.ndarray:
    return np.nan_to_num(cand, nan=0.0, posinf=0.0, neginf=0.0)


class _Deltas:
    """Running delta, cosine and finiteness statistics of one output, batch by batch."""

    def __init__(self) -> None:
        self.max_abs, self.sum_abs, self.count, self.ref_peak = 0.0, 0.0, 0, 0.0
        self.min_cos, self.finite = float("inf"), True

    def update(self, ref: np.ndarray, cand: np.ndarray) -> None:
        r, c = ref.reshape(len(ref), -1), _clean(cand.reshape(len(cand), -1))
        delta = np.abs(c - r)
        self.max_abs = max(self.max_abs, float(delta.max()))
        self.sum_abs += float(delta.sum(dtype=np.float64))
        self.count += delta.size
        self.ref_peak = max(self.ref_peak, float(np.abs(r).max()))
        norms = np.linalg.norm(r, axis=1) * np.linalg.norm(c, axis=1)
        self.min_cos = min(self.min_cos, float((np.sum(r * c, axis=1) / np.maximum(norms, 1e-30)).min()))
        self.finite &= bool(np.isfinite(cand).all())

    def metrics(self) -> dict[str, float]:
        return {"max_abs_delta": self.max_abs, "mean_abs_delta": self.sum_abs / max(self.count, 1),
                "max_rel_delta": self.max_abs / max(self.ref_peak, 1e-30), "min_cosine": self.min_cos,
                "all_finite": float(self.finite)}


def named_as(outputs: dict[str, np.ndarray], names) -> dict[str, np.ndarray]:
    """`outputs` under `names`: as they are, or the one output of a graph exported by someone else (named `output`,
    `1234`, ...) under the one name expected; else a UserError."""
    names = list(names)
    if set(names) <= set(outputs):
        return {name: outputs[name] for name in names}
    if len(names) == 1 and len(outputs) == 1:
        return {names[0]: next(iter(outputs.values()))}
    raise UserError(f"a model with outputs {', '.join(sorted(outputs))} where {', '.join(names)} were expected: is "
                    "`variant` the model it was exported from?")


def paired_outputs(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The candidate's outputs under the reference's names, each of the reference's shape (else a UserError)."""
    cand = named_as(cand, ref)
    for name, r in ref.items():
        if cand[name].shape != r.shape:
            raise UserError(f"the artifact's output '{name}' has shape {tuple(cand[name].shape)} where the reference's "
                            f"has {tuple(r.shape)}: is `variant` the model it was exported from?")
    return cand


class Comparison:
    """Metrics of a candidate's outputs against the reference's, accumulated batch by batch so a whole
    validation set never sits in memory: `logits` metrics unprefixed, feature maps as `stageN.metric`."""

    def __init__(self) -> None:
        self.deltas: dict[str, _Deltas] = {}
        self.samples = 0
        self.top1_agree = self.top5_agree = 0
        self.correct: dict[str, int] = {"ref_top1": 0, "ref_top5": 0, "cand_top1": 0, "cand_top5": 0}
        self.labelled = 0
        self.flip_margins: list[float] = []  # per input whose top-1 differs: how far the reference preferred its own

    def update(self, ref: dict[str, np.ndarray], cand: dict[str, np.ndarray], labels: np.ndarray | None = None) -> None:
        cand = paired_outputs(ref, cand)
        for name in ref:
            self.deltas.setdefault(name, _Deltas()).update(ref[name], cand[name])
        self.samples += len(next(iter(ref.values())))
        if "logits" in ref:
            r, c = ref["logits"], _clean(cand["logits"])
            k = min(5, r.shape[1])
            ref_top1, cand_top1 = r.argmax(1), c.argmax(1)
            cand_topk = np.argsort(-c, axis=1)[:, :k]
            self.top1_agree += int((cand_top1 == ref_top1).sum())
            rows = np.flatnonzero(cand_top1 != ref_top1)
            self.flip_margins += (r[rows, ref_top1[rows]] - r[rows, cand_top1[rows]]).tolist()
            self.top5_agree += int((cand_topk == ref_top1[:, None]).any(axis=1).sum())
            if labels is not None:
                ref_topk = np.argsort(-r, axis=1)[:, :k]
                for who, top in (("ref", ref_topk), ("cand", cand_topk)):
                    self.correct[f"{who}_top1"] += int((top[:, 0] == labels).sum())
                    self.correct[f"{who}_top5"] += int((top == labels[:, None]).any(axis=1).sum())
                self.labelled += len(labels)

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, d in self.deltas.items():
            if name == "logits":
                out.update(d.metrics())
                out["top1_agreement"] = self.top1_agree / max(self.samples, 1)
                out["top5_agreement"] = self.top5_agree / max(self.samples, 1)
                # which disagreements are the reference's near-ties (tolerances.NEAR_TIE_MEAN_DELTAS): a failed
                # top-1 gate of those alone says the reference cannot tell the classes apart, not that the artifact
                # is off; both counts are reported, the gate stays on top1_agreement
                tie = NEAR_TIE_MEAN_DELTAS * out["mean_abs_delta"]
                out["top1_disagreements"] = float(len(self.flip_margins))
                out["top1_near_ties"] = float(sum(m <= tie for m in self.flip_margins))
                if self.labelled:
                    out.update({k: v * 100 / self.labelled for k, v in self.correct.items()})
                    out["top1_drop"] = out["ref_top1"] - out["cand_top1"]
            else:
                out.update({f"{name}.{k}": v for k, v in d.metrics().items()})
        return out


@dataclass
class Check:
    metric: str
    value: float
    threshold: float
    kind: str  # "max" (value must be <=) or "min" (value must be >=)
    passed: bool

    def describe(self) -> str:
        op = "<=" if self.kind == "max" else ">="
        return f"{self.metric} = {self.value:.6g} (needs {op} {self.threshold:.6g})"

    def as_dict(self) -> dict:
        return asdict(self)


def gate(metrics: dict[str, float], t: Thresholds) -> list[Check]:
    """Each gated metric against its threshold. NaN/Inf anywhere fails outright."""
    prefixes = sorted({k.rsplit(".", 1)[0] + "." for k in metrics if "." in k})
    rules = [(p + "max_rel_delta", t.max_rel_delta, "max") for p in prefixes]
    rules += [(p + "min_cosine", t.min_cosine, "min") for p in prefixes]
    rules += [(p + "all_finite", 1.0, "min") for p in prefixes]
    if "max_rel_delta" in metrics:  # logits
        rules += [("max_rel_delta", t.max_rel_delta, "max"), ("min_cosine", t.min_cosine, "min"),
                  ("top1_agreement", t.min_top1_agreement, "min"), ("top5_agreement", t.min_top5_agreement, "min"),
                  ("all_finite", 1.0, "min")]
    if "top1_drop" in metrics:
        rules.append(("top1_drop", t.max_top1_drop, "max"))
    checks = []
    for name, threshold, kind in rules:
        value = metrics[name]
        ok = value <= threshold if kind == "max" else value >= threshold
        checks.append(Check(name, value, threshold, kind, bool(ok and np.isfinite(value))))
    return checks
