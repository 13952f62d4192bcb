"""What an artifact sees in pictures: top-k classes with names, for any ONNX (any precision), OpenVINO IR or
TensorRT engine.

Class names come from the artifact's metadata (a transformers fine-tune's id2label, the demo digits), else from
timm's offline ImageNet class descriptions for 1000- and 21841-class models, else the class index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import defaults
from .artifact import ArtifactInfo, artifact_info
from .backends import run_padded, runner_for
from .compare import named_as
from .data import ImageSet, image_files, stream_batches, transform_for
from .errors import UserError, require_at_least
from .parsing import as_hw

IMAGENET_INFO = {1000: "imagenet-1k", 21841: "imagenet-22k"}


@dataclass
class Prediction:
    image: str
    top: list[dict]  # [{"index", "label", "probability"}], best first

    def as_dict(self) -> dict:
        return {"image": self.image, "top_k": self.top}


@dataclass
class PredictResult:
    artifact: Path
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable images
    skip_reasons: list[str] = field(default_factory=list)  # why, one per skipped image
    label_source: str = "indices"
    notes: list[str] = field(default_factory=list)  # why the scores may be off here (an INT8 that overflows)
    runner: dict = field(default_factory=dict)  # what computed the scores: runtime, version, execution precision

    def as_dict(self) -> dict:
        return {"artifact": str(self.artifact), "runner": self.runner, "labels": self.label_source,
                "predictions": [p.as_dict() for p in self.predictions], "skipped": self.skipped, "notes": self.notes}


def class_names(info: ArtifactInfo) -> tuple[list[str], str]:
    """(a name per class, where the names come from)."""
    if info.labels and len(info.labels) == info.num_classes:
        return list(info.labels), "metadata"
    if info.num_classes in IMAGENET_INFO:
        try:
            from timm.data import ImageNetInfo

            names = ImageNetInfo(IMAGENET_INFO[info.num_classes])
            return [names.index_to_description(i) for i in range(info.num_classes)], f"timm {IMAGENET_INFO[info.num_classes]}"
        except Exception:  # an older timm without the class info: indices still say something
            pass
    return [str(i) for i in range(info.num_classes)], "indices"


def predict(artifact: Path, images: list[str | Path] | str | Path, top_k: int = 5, batch_size: int | None = None,
            backend: str | None = None, workers: int | None = None,
            on_progress: Callable[[str, int, int], None] = lambda what, n, total: None,
            openvino=None, threads: int | None = None, variant: str | None = None,
            img_size: tuple[int, int] | None = None) -> PredictResult:
    """Top-k of every image (files, or folders searched recursively); unreadable images are listed, not fatal
    unless none could be read. `openvino`: OpenVinoOptions for `backend` openvino (the hint also for
    onnxruntime-cpu); `threads`: the runtime's CPU threads (None: its choice); `variant`: what model an ONNX without
    swin-deploy metadata is; `img_size`: the size images are preprocessed to (None: the artifact's own; a
    dynamic-size artifact takes any in its range)."""
    artifact, img_size = Path(artifact), as_hw(img_size, "img_size")
    info = artifact_info(artifact, variant)
    if info.headless:
        what = "feature maps" if info.features else "pooled features (no classifier)"
        raise UserError(f"{artifact.name} outputs {what}, not class scores: predict needs a classifier export")
    require_at_least("top_k", top_k, 1)
    require_at_least("batch_size", batch_size, 1)
    files = ImageSet(image_files(images), None)
    # the default batch, within the artifact's max batch; fewer images run as one batch of their own count (a photo
    # alone: batch 1, not 8 with seven copies); a batch the user or a static artifact sets is run as it is
    batch = batch_size or info.fixed_batch or min(defaults.PREDICT_BATCH, len(files), info.max_batch or len(files))
    info.check_batch_sizes([batch])
    if img_size is not None:
        info.check_size(img_size)
    info.check_memory(batch, [img_size or info.img_size], "choose a smaller `batch_size`")
    names, source = class_names(info)
    transform = transform_for(info, img_size)
    result = PredictResult(artifact, label_source=source)
    k = min(top_k, info.num_classes)
    with runner_for(artifact, backend, threads, openvino, info.precision) as runner:
        result.notes = [n for n in [info.overflow_note(runner.name)] if n]
        for b in stream_batches(files, transform, batch, workers):
            logits = named_as(run_padded(runner, b.x, batch), ["logits"])["logits"].astype(np.float64)
            probs = np.exp(logits - logits.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
            for i, row in zip(b.index, probs):
                top = np.argsort(-row)[:k]
                result.predictions.append(Prediction(str(files.files[i]), [
                    {"index": int(c), "label": names[c], "probability": round(float(row[c]), 6)} for c in top]))
            on_progress("predicting", len(b.x), len(files))
        result.runner = runner.describe()
    result.skipped, result.skip_reasons = [str(p) for p, _ in files.skips()], [str(w) for _, w in files.skips()]
    if not result.predictions:
        raise files.none_readable()
    return result
