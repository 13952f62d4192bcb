"""Running a candidate and a reference over the same inputs, batch size by batch size."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import defaults
from ..artifact import ArtifactInfo
from ..backends import artifact_info, runner_for
from ..backends.base import Runner
from ..data import list_images, load_all, preprocess_fn
from ..errors import UserError
from ..fileio import sha256_file
from ..models import Weights
from ..tolerances import DEFAULT_THRESHOLDS, Thresholds
from .compare import Check, compare_outputs, gate
from .reference import reference_runner


@dataclass
class VerifyOptions:
    """What `verify_artifact` checks against what, on which inputs. None means the artifact's own default."""

    weights: Weights = field(default_factory=Weights)  # the native reference's weights (or timm's checkpoint)
    timm: bool = False  # timm's model as the reference
    reference: Path | None = None  # another artifact as the reference
    variant: str | None = None  # for an ONNX without swin-deploy metadata
    data: Path | None = None  # image folder; None: seeded synthetic inputs
    samples: int = defaults.VERIFY_SAMPLES
    limit: int | None = None
    seed: int = defaults.SEED
    batch_sizes: list[int] | None = None
    img_sizes: list[tuple[int, int]] | None = None  # dynamic-size artifacts
    backend: str | None = None
    thresholds: dict[str, float | None] = field(default_factory=dict)  # overrides of the precision's defaults


@dataclass
class Inputs:
    x: np.ndarray  # (N, 3, H, W) float32, preprocessed
    labels: np.ndarray | None
    source: str
    skipped: int = 0


def load_inputs(info: ArtifactInfo, data: Path | None, samples: int, seed: int, limit: int | None = None,
                img_size: tuple[int, int] | None = None) -> Inputs:
    """Images from `data` preprocessed per the artifact's metadata (at `img_size`, default the artifact's),
    or `samples` seeded N(0, 1) inputs."""
    img_size = tuple(img_size or info.img_size)
    if data is not None:
        images = list_images(data, limit=limit, seed=seed)
        transform = preprocess_fn(img_size, info.mean, info.std, info.interpolation, info.crop_pct)
        x, labels = load_all(images, transform)
        if labels is not None and images.classes and len(images.classes) > info.num_classes:
            raise UserError(f"{data} has {len(images.classes)} class folders but the model has {info.num_classes} classes")
        return Inputs(x, labels, str(data), images.skipped)
    if samples < 1:
        raise UserError("`samples` must be at least 1")
    x = np.random.default_rng(seed).standard_normal((samples, 3, *img_size), dtype=np.float32)
    return Inputs(x, None, f"{samples} seeded N(0,1) inputs (seed {seed})")


def run_batched(runner: Runner, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Every run at exactly `batch_size` (what the gate claims to check, and all a static-batch artifact
    takes): the last partial batch is padded with copies of its last input and the copies' outputs dropped."""
    parts = []
    for i in range(0, len(x), batch_size):
        chunk = x[i:i + batch_size]
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - n, axis=0)])
        parts.append({name: out[:n] for name, out in runner.infer(chunk).items()})
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


@dataclass
class BatchResult:
    batch_size: int
    metrics: dict[str, float]
    checks: list[Check]
    img_size: tuple[int, int] = (0, 0)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


@dataclass
class VerifyResult:
    artifact: Path
    info: ArtifactInfo
    candidate: dict
    reference: dict
    inputs: str
    thresholds: Thresholds
    batches: list[BatchResult] = field(default_factory=list)
    skipped_images: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.batches)

    def shown_metrics(self) -> list[str]:
        """The metrics a summary shows, in order: deltas, every gated metric, then accuracies."""
        first = self.batches[0]
        return [*[m for m in ("max_abs_delta", "mean_abs_delta") if m in first.metrics], *[c.metric for c in first.checks],
                *[m for m in ("ref_top1", "cand_top1", "ref_top5", "cand_top5") if m in first.metrics]]

    def limits(self) -> dict[str, str]:
        return {c.metric: ("<= " if c.kind == "max" else ">= ") + f"{c.threshold:.6g}" for c in self.batches[0].checks}

    def failures(self) -> list[str]:
        return [f"batch {b.batch_size}: {c.describe()}" for b in self.batches for c in b.checks if not c.passed]

    def report(self) -> dict:
        import onnxruntime
        import torch

        from .. import __version__

        return {
            "artifact": str(self.artifact), "sha256": sha256_file(self.artifact), "variant": self.info.variant,
            "precision": self.info.precision, "candidate": self.candidate, "reference": self.reference,
            "inputs": self.inputs, "skipped_images": self.skipped_images, "thresholds": self.thresholds.as_dict(),
            "passed": self.passed, "seconds": round(self.seconds, 2),
            "batches": [{"batch_size": b.batch_size, "img_size": list(b.img_size), "passed": b.passed, "metrics": b.metrics,
                         "checks": [c.as_dict() for c in b.checks]} for b in self.batches],
            "environment": {"swin_deploy": __version__, "python": platform.python_version(),
                            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                            "cpu": platform.processor() or platform.machine(),
                            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        }


def verify_artifact(artifact: Path, options: VerifyOptions | None = None,
                    on_batch: Callable[[int, tuple[int, int]], None] = lambda b, size: None) -> VerifyResult:
    """Gate `artifact` against its reference: every batch size at every input size, thresholds by precision."""
    options = options or VerifyOptions()
    info = artifact_info(artifact, options.variant)
    sizes = options.batch_sizes or info.default_batch_sizes(defaults.VERIFY_BATCH_SIZES)
    info.check_batch_sizes(sizes)
    thresholds = DEFAULT_THRESHOLDS[info.precision].override(**options.thresholds)
    candidate = runner_for(artifact, options.backend)
    reference = reference_runner(info, options.weights, options.timm, options.reference)
    img_sizes = options.img_sizes or [tuple(info.img_size)]
    for size in img_sizes:
        info.check_size(size)
    inputs = [load_inputs(info, options.data, options.samples, options.seed, options.limit, s) for s in img_sizes]
    return run_verify(Path(artifact), info, candidate, reference, inputs, sizes, thresholds, on_batch)


def run_verify(artifact: Path, info: ArtifactInfo, candidate: Runner, reference: Runner, inputs: list[Inputs],
               batch_sizes: list[int], thresholds: Thresholds,
               on_batch: Callable[[int, tuple[int, int]], None] = lambda b, size: None) -> VerifyResult:
    """Run both on each input set (one per image size) at each batch size and gate every output."""
    start = time.perf_counter()
    result = VerifyResult(artifact, info, {}, {}, inputs[0].source, thresholds,
                          skipped_images=sum(i.skipped for i in inputs))
    with candidate, reference:
        result.candidate, result.reference = candidate.describe(), reference.describe()
        for inp in inputs:
            for b in batch_sizes:
                on_batch(b, tuple(inp.x.shape[2:]))
                ref = run_batched(reference, inp.x, b)
                cand = run_batched(candidate, inp.x, b)
                metrics = compare_outputs(ref, cand, inp.labels)
                result.batches.append(BatchResult(b, metrics, gate(metrics, thresholds), tuple(inp.x.shape[2:])))
    result.seconds = time.perf_counter() - start
    return result
