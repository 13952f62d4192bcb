"""Comparing logits: metrics and the gate. Pure numpy; nothing here runs a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..tolerances import Thresholds


def max_rel_delta(ref: np.ndarray, cand: np.ndarray) -> float:
    """max |cand - ref| / max |ref|: the one relative-delta formula every gate and parity check uses."""
    return float(np.abs(cand - ref).max() / max(float(np.abs(ref).max()), 1e-30))


def max_rel_delta_outputs(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray]) -> float:
    """The worst `max_rel_delta` over every named output."""
    return max(max_rel_delta(ref[name], cand[name]) for name in ref)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean() * 100)


def compare_logits(ref: np.ndarray, cand: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of a candidate's logits against the reference's for the same inputs (N, classes)."""
    finite = bool(np.isfinite(cand).all())
    cand_f = np.nan_to_num(cand, nan=0.0, posinf=0.0, neginf=0.0)
    delta = np.abs(cand_f - ref)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand_f, axis=1)
    cosine = np.sum(ref * cand_f, axis=1) / np.maximum(norms, 1e-30)
    k = min(5, ref.shape[1])
    ref_top1 = ref.argmax(1)
    cand_topk = np.argsort(-cand_f, axis=1)[:, :k]
    metrics = {
        "max_abs_delta": float(delta.max()),
        "mean_abs_delta": float(delta.mean()),
        "max_rel_delta": max_rel_delta(ref, cand_f),
        "min_cosine": float(cosine.min()),
        "top1_agreement": float((cand_f.argmax(1) == ref_top1).mean()),
        "top5_agreement": float((cand_topk == ref_top1[:, None]).any(axis=1).mean()),
        "all_finite": float(finite),
    }
    if labels is not None:
        metrics["ref_top1"] = topk_accuracy(ref, labels, 1)
        metrics["ref_top5"] = topk_accuracy(ref, labels, 5)
        metrics["cand_top1"] = topk_accuracy(cand_f, labels, 1)
        metrics["cand_top5"] = topk_accuracy(cand_f, labels, 5)
        metrics["top1_drop"] = metrics["ref_top1"] - metrics["cand_top1"]
    return metrics


def compare_features(ref: np.ndarray, cand: np.ndarray) -> dict[str, float]:
    """Metrics for a feature-map output: deltas and per-sample cosine of the flattened maps."""
    r, c = ref.reshape(len(ref), -1), np.nan_to_num(cand.reshape(len(cand), -1), nan=0.0, posinf=0.0, neginf=0.0)
    delta = np.abs(c - r)
    cosine = np.sum(r * c, axis=1) / np.maximum(np.linalg.norm(r, axis=1) * np.linalg.norm(c, axis=1), 1e-30)
    return {"max_abs_delta": float(delta.max()), "mean_abs_delta": float(delta.mean()),
            "max_rel_delta": max_rel_delta(r, c), "min_cosine": float(cosine.min()),
            "all_finite": float(np.isfinite(cand).all())}


def compare_outputs(ref: dict[str, np.ndarray], cand: dict[str, np.ndarray],
                    labels: np.ndarray | None = None) -> dict[str, float]:
    """Metrics for every output: `logits` ones unprefixed, feature maps as `stageN.metric`."""
    missing = set(ref) - set(cand)
    if missing:
        raise ValueError(f"candidate lacks outputs {sorted(missing)}")
    metrics: dict[str, float] = {}
    for name in ref:
        if name == "logits":
            metrics.update(compare_logits(ref[name], cand[name], labels))
        else:
            metrics.update({f"{name}.{k}": v for k, v in compare_features(ref[name], cand[name]).items()})
    return metrics


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
