"""The reference a candidate is gated against: the native float32 model, timm's, or another artifact."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..artifact import ArtifactInfo, artifact_info, artifact_sha256
from ..backends import runner_for
from ..backends.base import Runner
from ..enums import WeightsSource
from ..errors import UserError
from ..models import Weights, build_model, output_module
from ..models.checkpoint import checkpoint_sha256
from ..models.hf import hf_config_path


@dataclass
class Reference:
    runner: Runner
    identity: str  # what the reference is, with its weights' sha256: a reference cache is valid for this only
    prepare: Callable[[np.ndarray], np.ndarray] = field(default=lambda x: x)  # candidate's input -> reference's


def torch_reference(info: ArtifactInfo, weights: Weights, device: str = "cpu") -> Runner:
    """The float32 native model rebuilt from the artifact's metadata, with weights that must be the ones exported."""
    from ..backends.torch_runner import TorchRunner

    model, sha = build_model(info.config(), weights, dynamic=info.dynamic_size is not None)
    if info.weights_sha256 and sha != info.weights_sha256:
        raise UserError(f"these weights are not the ones {info.variant} was exported from (sha256 {sha[:12]} vs "
                        f"{info.weights_sha256[:12]} in the artifact): pass the same `checkpoint` (with `ema` if it "
                        "was exported with it), `random_init` or `seed`")
    module = output_module(model.freeze(), info.features)
    return TorchRunner(module, name="pytorch-fp32", output_names=info.outputs, device=device)


def timm_reference(info: ArtifactInfo, weights: Weights, device: str = "cpu") -> Runner:
    """timm's own model with the same checkpoint, as an independent reference; for a dynamic-size artifact, timm's
    model built at each input size it is given."""
    from ..backends.torch_runner import TorchRunner
    from ..models.checkpoint import read_checkpoint
    from .timm_reference import timm_model

    if info.features:
        raise UserError("`timm` compares outputs of timm's forward (logits or pooled features), not feature maps: "
                        "verify a feature-map export against the native model")
    state = read_checkpoint(weights.path, weights.ema)

    def build(size: tuple[int, int]) -> torch.nn.Module:
        import timm.models.swin_transformer as v1
        import timm.models.swin_transformer_v2 as v2

        cfg = info.config().at_size(size)
        model = timm_model(cfg)
        # through timm's own checkpoint filter, as timm loads weights at a size whose windows shrink (it resizes V1's
        # position tables); its interpolation warns of torch deprecations that are not the user's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.load_state_dict((v1 if cfg.version == 1 else v2).checkpoint_filter_fn(state, model))
        return model.eval()

    size = tuple(info.img_size)
    model = build(size) if info.dynamic_size is None else AtInputSize(build, size)
    return TorchRunner(model, name="timm-fp32", output_names=info.outputs, device=device)


class AtInputSize(torch.nn.Module):
    """A model per input size, each built by `build(size)` when first given that size, for references whose windows
    and shifts depend on the sizes they have seen. timm's Swin fixes them when it is built (`dynamic_img_size` keeps
    those of the build size: for V1, 0.3-6% of max|logit| away from timm built at the size, which swin-deploy's
    dynamic-size export matches); transformers' Swin changes them in place as it runs."""

    def __init__(self, build: Callable[[tuple[int, int]], torch.nn.Module], size: tuple[int, int]):
        super().__init__()
        self.build = build
        self.models = torch.nn.ModuleDict({_size_key(size): build(size)})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = _size_key(x.shape[-2:])
        if key not in self.models:
            self.models[key] = self.build(tuple(x.shape[-2:])).to(x.device)
        return self.models[key](x)


def _size_key(size) -> str:
    return f"{size[0]}x{size[1]}"


class TransformersOutputs(torch.nn.Module):
    """A transformers Swin as a plain (B, C, H, W) -> outputs module: a classifier's logits, a SwinModel's pooled
    features, a backbone's feature maps."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model(pixel_values=x)
        if hasattr(out, "feature_maps"):
            return tuple(out.feature_maps)
        return out.logits if hasattr(out, "logits") else out.pooler_output


def transformers_reference(folder: Path, info: ArtifactInfo, device: str = "cpu") -> Runner:
    """transformers' own model (the class its config.json names) from a save_pretrained folder, as an independent
    reference; it must output what the artifact does (a classifier's logits, a SwinModel's pooled features, a
    backbone's feature maps)."""
    import json

    from ..backends.torch_runner import TorchRunner
    from ..errors import missing_package

    try:
        import transformers
    except ImportError as e:
        raise missing_package("transformers", "hf") from e
    architecture = (json.loads((Path(folder) / "config.json").read_text()).get("architectures") or [""])[0]
    gives = "feature maps" if architecture.endswith("Backbone") else \
        "pooled features" if architecture.endswith("Model") else "logits"
    wants = "feature maps" if info.features else "pooled features" if info.headless else "logits"
    if gives != wants:
        # a classifier checkpoint exported with `features`: transformers' backbone class would add LayerNorms
        # to each stage that the checkpoint has no weights for, so there is no transformers model to compare with
        raise UserError(f"`transformers` compares with {architecture or 'the checkpoint'}'s {gives}, and this artifact "
                        f"outputs {wants}: verify it against the native model (drop `transformers`)")
    cls = getattr(transformers, architecture, None) or transformers.AutoModelForImageClassification

    def build(size: tuple[int, int] | None = None) -> torch.nn.Module:
        return TransformersOutputs(cls.from_pretrained(str(folder), local_files_only=True).eval())

    # transformers' Swin shrinks a block's window and drops its shift in place when an input's stage grid fits one
    # window, and keeps them for every later input: a model per input size runs each as a fresh model would
    model = build() if info.dynamic_size is None else AtInputSize(build, tuple(info.img_size))
    return TorchRunner(model, name="transformers-fp32", output_names=info.outputs, device=device)


def reference_for(info: ArtifactInfo, weights: Weights, timm: bool = False, artifact: Path | None = None,
                  device: str = "auto", transformers: bool = False) -> Reference:
    """Another artifact if given, else timm's model (with a checkpoint), else the native model with `weights`;
    PyTorch references run on `device` (auto: CUDA where there is one)."""
    if artifact is not None:
        given = [n for n in (weights.option, timm and "timm", transformers and "transformers",
                             device != "auto" and "reference_device") if n]
        if given:
            raise UserError(f"{' and '.join(f'`{n}`' for n in given)} choose{'s' * (len(given) == 1)} a PyTorch "
                            f"reference, and `reference` {Path(artifact).name} is the one gated against: drop "
                            f"{'it' if len(given) == 1 else 'them'} or `reference`")
        other = artifact_info(artifact, fallback_variant=info.variant)  # one without metadata: the candidate's model
        if other.weights_sha256 and other.preprocessing != info.preprocessing:  # both record theirs, and they differ
            differ = next(k for k, v in other.preprocessing.items() if info.preprocessing[k] != v)
            raise UserError(f"the reference {Path(artifact).name} prepares its images otherwise ({differ} "
                            f"{other.preprocessing[differ]} vs {info.preprocessing[differ]}): gate against an "
                            "artifact exported with the candidate's preprocessing")
        if (other.input_format, other.channels_last) == (info.input_format, info.channels_last):
            prepare = lambda x: x  # noqa: E731 - both take the same input
        elif not other.pixels:
            prepare = info.normalized
        else:
            raise UserError(f"the reference {Path(artifact).name} takes raw pixels ({other.input_format}"
                            f"{', channels last' if other.channels_last else ''}) and the candidate does not: "
                            "gate the candidate against a float32 artifact or the PyTorch model")
        return Reference(runner_for(artifact, precision=other.precision), f"artifact {artifact_sha256(artifact)}", prepare)
    if transformers:
        if weights.source != WeightsSource.CHECKPOINT or weights.path is None or not Path(weights.path).is_dir():
            raise UserError("`transformers` needs `checkpoint` FOLDER: the save_pretrained folder to load")
        if hf_config_path(weights.path) is None:
            raise UserError(f"{weights.path} is not a transformers save_pretrained folder (no transformers config.json; "
                            "a timm hub folder is gated with `timm`): pass the folder transformers loads")
        identity = f"transformers {checkpoint_sha256(weights.path)}"
        return Reference(transformers_reference(weights.path, info, device), identity, info.normalized)
    if timm:
        if weights.source != WeightsSource.CHECKPOINT or weights.path is None:
            raise UserError("`timm` needs `checkpoint`: the weights timm's model should load")
        if hf_config_path(weights.path) or info.config().pad_first:
            # timm's model pads and shifts by timm's rules, which transformers' and torchvision's differ from where the
            # windows do not tile a stage grid
            raise UserError("this artifact follows a transformers or torchvision checkpoint, which pads otherwise than "
                            "timm's model: gate it against the native model (a transformers one also with "
                            "`transformers` and `checkpoint` FOLDER)")
        return Reference(timm_reference(info, weights, device),
                         f"timm {checkpoint_sha256(weights.path)}{' ema' * weights.ema}", info.normalized)
    # torch_reference refuses weights other than the exported ones, so the artifact's sha256 names them
    return Reference(torch_reference(info, weights, device), f"pytorch {info.weights_sha256 or weights}", info.normalized)
