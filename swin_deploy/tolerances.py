"""Every numeric threshold swin-deploy gates on, in one place.

Export parity (fp32 ONNX vs the PyTorch model it came from): max |delta| <= 1e-4 x max |logits|.
Float32 reorderings measured here stay near 1e-6.

Verify gates, by the artifact's precision. Relative deltas are max |delta| / max |reference logits|.
  fp32: the same math in another runtime; only summation order differs.
  fp16: 10-bit mantissa (~5e-4 relative per op), accumulated over ~50 layers; LayerNorm and the V2
        cosine path stay fp32. Argmax flips are allowed only between near-tied classes.
  int8: 8-bit activations cost ~1% relative error per quantized matmul; the gate protects the
        decision (top-1 agreement, accuracy drop) more than the raw logits.

A runtime may compute in a lower precision than the artifact's (OpenVINO runs float32 models in bf16 on CPUs with
BF16 unless told otherwise). The gate is then the looser, metric by metric, of the artifact's thresholds and those
of the execution precision:
  bf16: 8 significant bits, a unit roundoff of 2^-9 (~2e-3), eight times float16's; OpenVINO accumulates matmuls
        in float32, so the error grows like float16's per op but 8x larger: the fp16 logit gate scaled by ~2.5
        (measured on the demo models and random swin_t/swinv2_t: benchmarks/RESULTS.md), and argmax flips allowed
        between near-tied classes.
  f16:  as an fp16 artifact.
Every value can be overridden on the command line (`swin-deploy verify --help`).

Near-ties: where an artifact's top-1 differs from the reference's, the reference's top-1 led the artifact's pick by
some margin. A margin within NEAR_TIE_MEAN_DELTAS x the artifact's mean |delta| is a near-tie: were each logit's
error independent and normal with that mean |delta| m (sigma ~1.25 m), two logits' errors (their difference's sigma
~1.8 m) would differ by more than 4 m about 2% of the time, so such reorders are the artifact's ordinary error
meeting classes the reference barely separates (random weights' flat logits over 1000 classes: swinv2_b INT8 on
OpenVINO differed on 5 of 64 inputs, all within 0.03 logits against a mean |delta| of 0.02; benchmarks/RESULTS.md).
Over many close classes the largest of their errors passes 4 m more often, so a few larger reorders come with them
(random swin_b_384: 2 of 38). verify counts them and says so when top-1 agreement fails only by them (it would pass
with them counted as agreeing); it still gates on every disagreement.

Speed gates (`bench --min-speedup/--max-slowdown`) are decided on 95% confidence intervals (swin_deploy.latency):
a gate passes or fails only when the interval is on one side of its threshold, so a fair run fails a correct
claim about 2.5% of the time at most, before bench's extra rounds narrow the interval.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .enums import ExecutionPrecision, Precision
from .errors import UserError

EXPORT_PARITY_REL = 1e-4
NEAR_TIE_MEAN_DELTAS = 4.0  # a top-1 disagreement the reference decided by under this many mean |delta|: a near-tie
GATE_CONFIDENCE = 0.95
TIMM_PARITY_REL = 1e-4


@dataclass(frozen=True)
class Thresholds:
    max_rel_delta: float  # max |cand - ref| / max |ref|
    min_cosine: float  # minimum per-sample cosine similarity of the logit vectors
    min_top1_agreement: float  # fraction of samples with the same argmax
    min_top5_agreement: float  # fraction of samples whose reference top-1 is in the candidate's top-5
    max_top1_drop: float  # accuracy points (0-100) the candidate may lose on labelled data

    def override(self, **values: float | None) -> Thresholds:
        given = {k: v for k, v in values.items() if v is not None}
        if unknown := sorted(set(given) - set(RANGES)):
            raise UserError(f"unknown threshold `{unknown[0]}`: choose {', '.join(f'`{k}`' for k in RANGES)}")
        for name, v in given.items():
            low, high = RANGES[name]
            if not low <= v <= high:
                raise UserError(f"`{name}` must be between {low} and {high}, not {v}")
        return replace(self, **given)

    def loosest(self, other: Thresholds) -> Thresholds:
        """Metric by metric, the looser of the two."""
        return Thresholds(max(self.max_rel_delta, other.max_rel_delta), min(self.min_cosine, other.min_cosine),
                          min(self.min_top1_agreement, other.min_top1_agreement),
                          min(self.min_top5_agreement, other.min_top5_agreement),
                          max(self.max_top1_drop, other.max_top1_drop))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# what each gate can mean: a threshold outside its range is a typo, not a gate
RANGES = {"max_rel_delta": (0.0, float("inf")), "min_cosine": (-1.0, 1.0), "min_top1_agreement": (0.0, 1.0),
          "min_top5_agreement": (0.0, 1.0), "max_top1_drop": (0.0, 100.0)}

DEFAULT_THRESHOLDS: dict[Precision, Thresholds] = {
    Precision.FP32: Thresholds(max_rel_delta=1e-4, min_cosine=0.99999, min_top1_agreement=1.0, min_top5_agreement=1.0,
                       max_top1_drop=0.0),
    Precision.FP16: Thresholds(max_rel_delta=2e-2, min_cosine=0.999, min_top1_agreement=0.99, min_top5_agreement=0.999,
                       max_top1_drop=0.1),
    Precision.INT8: Thresholds(max_rel_delta=0.25, min_cosine=0.98, min_top1_agreement=0.95, min_top5_agreement=0.99,
                       max_top1_drop=1.0),
}

EXECUTION_THRESHOLDS: dict[ExecutionPrecision, Thresholds] = {
    ExecutionPrecision.BF16: Thresholds(max_rel_delta=5e-2, min_cosine=0.998, min_top1_agreement=0.98,
                                        min_top5_agreement=0.995, max_top1_drop=0.5),
    ExecutionPrecision.F16: DEFAULT_THRESHOLDS[Precision.FP16],
}


def thresholds_for(precision: Precision, execution: ExecutionPrecision | str | None = None) -> Thresholds:
    """The default gate of an artifact of `precision` run in `execution` precision (None or f32: the artifact's own)."""
    base = DEFAULT_THRESHOLDS[Precision.parse(precision)]
    if execution is None:
        return base
    extra = EXECUTION_THRESHOLDS.get(ExecutionPrecision.parse(execution, "inference_precision"))
    return base if extra is None else base.loosest(extra)
