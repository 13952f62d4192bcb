"""Building the reference a candidate is gated against."""

from __future__ import annotations

from pathlib import Path

from ..artifact import ArtifactInfo
from ..backends.base import Runner
from ..errors import UserError
from ..models.checkpoint import Weights, build_model


def torch_reference(info: ArtifactInfo, weights: Weights) -> Runner:
    """The float32 native model rebuilt from the artifact's metadata, with weights that must be the ones exported."""
    from ..backends.torch_runner import TorchRunner
    from ..export.onnx_export import FeatureMaps

    model, sha = build_model(info.config(), weights, dynamic=info.dynamic_size is not None)
    if info.weights_sha256 and sha != info.weights_sha256:
        raise UserError(f"these weights are not the ones {info.variant} was exported from (sha256 {sha[:12]} vs "
                        f"{info.weights_sha256[:12]} in the artifact): pass the same --checkpoint/--random-init/--seed")
    module = FeatureMaps(model.freeze()) if info.features else model.freeze()
    return TorchRunner(module, name="pytorch-fp32", output_names=info.outputs)


def timm_reference(info: ArtifactInfo, checkpoint: Path) -> Runner:
    """timm's own model with the same checkpoint, as an independent reference."""
    from ..backends.torch_runner import TorchRunner
    from ..models.checkpoint import read_checkpoint
    from .timm_reference import timm_model

    model = timm_model(info.config())
    model.load_state_dict(read_checkpoint(checkpoint))
    return TorchRunner(model, name="timm-fp32")


def check_batch_sizes(info: ArtifactInfo, sizes: list[int]) -> None:
    if not sizes or any(b < 1 for b in sizes):
        raise UserError("batch sizes must be positive integers, e.g. --batch-sizes 1,3,8")
    if info.fixed_batch is not None and any(b != info.fixed_batch for b in sizes):
        raise UserError(f"this artifact has a static batch of {info.fixed_batch}: use --batch-sizes {info.fixed_batch}")
    if info.max_batch and max(sizes) > info.max_batch:
        raise UserError(f"batch size {max(sizes)} exceeds the artifact's max batch {info.max_batch}: "
                        f"use sizes up to {info.max_batch} or re-export with a larger --max-batch")
