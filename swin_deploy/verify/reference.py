"""The reference a candidate is gated against: the native float32 model, timm's, or another artifact."""

from __future__ import annotations

from pathlib import Path

from ..artifact import ArtifactInfo
from ..backends import runner_for
from ..backends.base import Runner
from ..enums import WeightsSource
from ..errors import UserError
from ..models import FeatureMaps, Weights, build_model


def torch_reference(info: ArtifactInfo, weights: Weights) -> Runner:
    """The float32 native model rebuilt from the artifact's metadata, with weights that must be the ones exported."""
    from ..backends.torch_runner import TorchRunner

    model, sha = build_model(info.config(), weights, dynamic=info.dynamic_size is not None)
    if info.weights_sha256 and sha != info.weights_sha256:
        raise UserError(f"these weights are not the ones {info.variant} was exported from (sha256 {sha[:12]} vs "
                        f"{info.weights_sha256[:12]} in the artifact): pass the same `checkpoint`/`random_init`/`seed`")
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


def reference_runner(info: ArtifactInfo, weights: Weights, timm: bool = False, artifact: Path | None = None) -> Runner:
    """Another artifact if given, else timm's model (with a checkpoint), else the native model with `weights`."""
    if artifact is not None:
        return runner_for(artifact)
    if timm:
        if weights.source != WeightsSource.CHECKPOINT or weights.path is None:
            raise UserError("`timm` needs `checkpoint`: the weights timm's model should load")
        return timm_reference(info, weights.path)
    return torch_reference(info, weights)
