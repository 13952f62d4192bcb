"""Checkpoint reading, conversion to timm layout, and strict loading into the native model."""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import logging
import math
import pickle
import re
import socket
import warnings
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from ..enums import WeightsSource
from ..errors import UserError, require_at_least
from ..fileio import sha256_file, sha256_files
from .hf import (
    SHARD_INDEXES,
    check_agrees,
    convert_hf_state_dict,
    hf_config,
    hf_config_path,
    hf_weights_file,
    is_hf_state_dict,
    timm_hub_config,
    weight_files,
)
from .registry import CROP_MODES, INTERPOLATIONS, VARIANTS, WEIGHTS_DIR, Preprocessing, SwinConfig, get_config
from .swin import SwinTransformer, WindowAttention

_BUFFERS = ("relative_position_index", "relative_coords_table", "attn_mask")


def is_torchvision_state_dict(state_dict: dict) -> bool:
    """torchvision's Swin (`torchvision.models.swin_t`, `swin_v2_t`, ...): one `features` Sequential of the patch
    embedding, then each stage's blocks and patch merging in turn."""
    return "features.0.0.weight" in state_dict and "features.1.0.norm1.weight" in state_dict


def convert_torchvision_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's Swin V1/V2 layout -> timm's (pure; the input is not modified).

    `features.0` is the patch embedding (conv, permute, norm); `features.{2s+1}` stage s's blocks, `features.{2s}`
    (s >= 1) the patch merging before it, timm's `layers.{s}.downsample`; the MLP is `mlp.0`/`mlp.3`, the classifier
    `head`. torchvision's V2 attention holds one qkv bias whose key part it zeroes in its forward; timm keeps the q and
    v parts (`q_bias`, `v_bias`). Buffers (position index, coordinate table) are dropped."""
    out: dict[str, torch.Tensor] = {}
    v2 = any(k.endswith("attn.logit_scale") for k in state_dict)
    for key, value in state_dict.items():
        if any(b in key for b in _BUFFERS):
            continue
        if m := re.fullmatch(r"features\.0\.(0|2)\.(weight|bias)", key):
            out[f"patch_embed.{'proj' if m[1] == '0' else 'norm'}.{m[2]}"] = value
        elif m := re.fullmatch(r"features\.(\d+)\.(\d+)\.(.+)", key):
            stage, block, rest = (int(m[1]) - 1) // 2, m[2], m[3]
            rest = re.sub(r"^mlp\.0\.", "mlp.fc1.", re.sub(r"^mlp\.3\.", "mlp.fc2.", rest))
            name = f"layers.{stage}.blocks.{block}.{rest}"
            if v2 and rest == "attn.qkv.bias":
                width = value.shape[0] // 3
                out[name.replace("qkv.bias", "q_bias")] = value[:width]
                out[name.replace("qkv.bias", "v_bias")] = value[2 * width:]
            else:
                out[name] = value
        elif m := re.fullmatch(r"features\.(\d+)\.(reduction|norm)\.(weight|bias)", key):
            out[f"layers.{int(m[1]) // 2}.downsample.{m[2]}.{m[3]}"] = value
        elif m := re.fullmatch(r"head\.(weight|bias)", key):
            out[f"head.fc.{m[1]}"] = value
        else:
            out[key] = value
    return out


def feature_list_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's features_only model (`create_model(..., features_only=True)`, a FeatureListNet) -> the model's own names
    (pure). FeatureListNet names the stages `layers_0`, `layers_1`, ... and keeps no final norm or classifier, which
    fit_to_state_dict reads as a backbone of stage maps."""
    if not any(re.match(r"layers_\d+\.", k) for k in state_dict):
        return state_dict
    return {re.sub(r"^layers_(\d+)\.", r"layers.\1.", k): v for k, v in state_dict.items()}


def convert_official_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """microsoft/Swin-Transformer layout -> timm layout (pure; the input is not modified).

    The official code downsamples at the end of stage i, timm at the start of stage i + 1; the
    official classifier is `head`, timm's `head.fc` (timm before 0.9 named it `head` too, with either downsampling
    layout; timm's own checkpoint filter renames it whenever `head.fc` is absent, and so does this). Derived
    buffers are dropped. timm-layout input passes through unchanged apart from the buffers.
    """
    official = "layers.0.downsample.reduction.weight" in state_dict
    old_head = "head.fc.weight" not in state_dict
    out = {}
    for k, v in state_dict.items():
        if any(b in k for b in _BUFFERS):
            continue
        if official:
            k = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", k)
        if old_head:
            k = re.sub(r"^head\.(weight|bias)$", r"head.fc.\1", k)
        out[k] = v
    return out


# where training scripts keep the weights: timm ("state_dict", EMA in "state_dict_ema"), the official Swin code and
# many others ("model", EMA in "model_ema"); the raw weights are preferred, EMA when asked for or all there is
EMA_KEYS = ("state_dict_ema", "model_ema")
CONTAINER_KEYS = ("state_dict", "model", *EMA_KEYS)


def unwrap_checkpoint(checkpoint: dict, ema: bool = False, name: str = "checkpoint") -> dict:
    """The state_dict inside a training checkpoint (a flat state_dict passes through); with `ema`, its exponential
    moving average (what timm's validate.py --use-ema loads), which must be there: in an EMA container, or as a
    wrapped model whose attribute names it (`model_prefix`)."""
    if ema:
        if not holds_ema(checkpoint):
            raise UserError(f"{name} holds no EMA weights ({' or '.join(EMA_KEYS)}): leave out `ema`")
        found = next((checkpoint[k] for k in EMA_KEYS if isinstance(checkpoint.get(k), dict)), None)
        if found is None and any(_is_ema(k) for k in _nested_models(checkpoint)):
            found = _nested_model(checkpoint, True, name)
        return found if found is not None else unwrap_checkpoint(checkpoint, name=name)  # `model_prefix` picks it
    if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    found = next((checkpoint[k] for k in CONTAINER_KEYS if isinstance(checkpoint.get(k), dict)), None)
    return found if found is not None else _nested_model(checkpoint, False, name)


def _nested_models(checkpoint: dict) -> list[str]:
    """The keys under which a training script of its own kept a model's flat state_dict ('net', 'network',
    'weights', ...): tensors only, a 4D one among them (every Swin layout's patch embedding is a convolution), so a
    dict of metrics is not taken for a model."""
    return [str(k) for k, v in checkpoint.items() if isinstance(v, dict) and v
            and all(isinstance(t, torch.Tensor) for t in v.values()) and any(t.ndim == 4 for t in v.values())]


def _nested_model(checkpoint: dict, ema: bool, name: str) -> dict:
    """The one model `_nested_models` finds (beside an EMA copy, `ema` chooses), else the checkpoint as it is (where
    it holds no model, read_checkpoint says what it holds)."""
    keys = _nested_models(checkpoint)
    chosen = [k for k in keys if _is_ema(k) == ema] if len(keys) > 1 else keys
    if len(chosen) > 1:
        raise UserError(f"{name} holds several models ({', '.join(chosen)}): save the one to deploy as its own "
                        "state_dict")
    return checkpoint[chosen[0]] if chosen else checkpoint


# a tensor every Swin checkpoint in timm or official layout has, under whatever a wrapper saved the model as
_ANCHOR = "patch_embed.proj.weight"


def _model_prefixes(state_dict: dict) -> list[str]:
    return sorted(k[:-len(_ANCHOR)] for k in state_dict if k.endswith(f".{_ANCHOR}"))


def _is_ema(prefix: str) -> bool:
    return "ema" in prefix.lower().split(".")[0]


def holds_ema(checkpoint: dict) -> bool:
    """Whether a training checkpoint holds EMA weights: in an EMA container, or as a wrapped copy ('model_ema.')."""
    return any(isinstance(checkpoint.get(k), dict) for k in EMA_KEYS) or any(map(_is_ema, _nested_models(checkpoint))) \
        or any(_is_ema(prefix) for prefix in _model_prefixes(unwrap_checkpoint(checkpoint)))


def model_prefix(state_dict: dict, ema: bool = False, name: str = "checkpoint") -> dict:
    """The Swin model's tensors where a wrapper saved them under its attribute's name: a Lightning module's
    `self.model` as 'model.patch_embed...', or 'net.', 'backbone.', 'encoder.' (timm's clean_state_dict takes off DDP's
    'module.' and torch.compile's '_orig_mod.' only). The prefix is taken off and the wrapper's other tensors (a loss's
    class weights, metrics) left out. Beside an EMA copy ('model_ema.module.'), `ema` chooses between the two. A
    state_dict in timm layout passes through. Pure: a new dict."""
    if _ANCHOR in state_dict:
        return state_dict
    prefixes = _model_prefixes(state_dict)
    chosen = [p for p in prefixes if _is_ema(p) == ema] if len(prefixes) > 1 else prefixes
    if len(chosen) > 1:
        raise UserError(f"{name} holds several Swin models ({', '.join(p.rstrip('.') for p in chosen)}): save the one "
                        "to deploy as its own state_dict")
    if not chosen:
        return state_dict  # not a Swin in timm layout (transformers', or another model): named where it fails to load
    return {k[len(chosen[0]):]: v for k, v in state_dict.items() if k.startswith(chosen[0])}


def checkpoint_file(path: str | Path) -> Path:
    """The weights file a checkpoint path names (a transformers or timm hub folder names its model.safetensors/.bin)."""
    path = Path(path)
    if path.is_dir():
        if hf_config_path(path) is None and timm_hub_config(path) is None:
            raise UserError(f"checkpoint folder {path} has no config.json: pass a weights file, a transformers "
                            "save_pretrained folder or a timm hub folder")
        return hf_weights_file(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist: pass the path of a .pth, .pt, .safetensors or .ckpt file, "
                        "of a transformers or timm hub folder, or a Hugging Face hub id (owner/name)")
    return path


def _pickle_protocol(path: Path) -> int | None:
    """The pickle protocol a torch.save file was written with (its zip's data.pkl, or the legacy format's first
    pickle), where it can be read."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl")
                head = archive.open(name).read(2)
        else:
            with open(path, "rb") as f:
                head = f.read(2)
    except (OSError, StopIteration, zipfile.BadZipFile):
        return None
    return head[1] if len(head) == 2 and head[0] == pickle.PROTO[0] else None


def _is_torchscript(path: Path) -> bool:
    """Whether a file is a TorchScript archive: a torch.save zip that also holds the module's code."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.split("/")[1:2] == ["code"] for n in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _torch_load(path: Path, mmap: bool = False):
    if _is_torchscript(path):  # torch.load would hand it to torch.jit.load: code and modules, not a state_dict
        raise UserError(f"checkpoint {path} is a TorchScript archive (torch.jit.save): save its weights with "
                        "torch.save(torch.jit.load(path).state_dict(), 'weights.pth') and pass that")
    # weights_only keeps unpickling safe; timm's training checkpoints also carry their argparse.Namespace
    with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
        # torch warns of every pickle protocol above its default before it reads the file: one it cannot read is
        # reported with the file's name and what to do (_unwrapped), so the warning would only say it twice
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


@dataclass(frozen=True)
class TrainingSettings:
    """What a timm checkpoint says about the model it holds, for export's defaults: a training checkpoint's `args`, or
    the config.json of a timm hub folder (`push_to_hf_hub`, `save_for_hf`)."""

    model: str | None = None  # timm's model name (args.model, the config's architecture)
    img_size: tuple[int, int] | None = None  # the input size it was trained and evaluated at
    preprocessing: Preprocessing | None = None  # its eval normalisation, resize filter and crop, where args set them
    ema_weights: bool = False  # the checkpoint also holds EMA weights (state_dict_ema / model_ema)
    labels: tuple[str, ...] | None = None  # its class names (a hub config's label_names)
    source: str = "training args"
    # a fine-tune's window where it changed the model's (timm's window_size / pretrained_window_sizes model arguments:
    # the hub config's model_args, train.py's --model-kwargs), as its position tables are sized for it
    window_size: int | None = None
    pretrained_window_sizes: tuple[int, ...] | None = None

    def fitted(self, cfg: SwinConfig) -> SwinConfig:
        """`cfg` with the window this checkpoint's model arguments give it (its position tables are sized for it)."""
        changes: dict = {"window_size": self.window_size} if self.window_size else {}
        if self.pretrained_window_sizes and len(self.pretrained_window_sizes) == len(cfg.depths):
            changes["pretrained_window_sizes"] = self.pretrained_window_sizes
        return replace(cfg, **changes)

    def describe(self) -> str:
        given = [self.model or "", "x".join(map(str, self.img_size or ()))]
        if self.window_size:
            given.append(f"window {self.window_size}")
        if self.preprocessing is not None:
            given += [f"{k} {v}" for k, v in asdict(self.preprocessing).items() if v is not None]
        if self.labels:
            given.append(f"{len(self.labels)} class names")
        return ", ".join(filter(None, given))


def _own_layout(weights: Weights) -> bool:
    """A checkpoint whose tensors say what model it holds (timm's, the official, torchvision's layouts), not a
    transformers one, whose config.json does."""
    return weights.source == WeightsSource.CHECKPOINT and weights.path is not None and not hf_config_path(weights.path)


def _mapped_training_checkpoint(weights: Weights) -> dict:
    """A .pth/.pt checkpoint's top level, memory-mapped (tensors are not read); empty for other weights."""
    if not _own_layout(weights):
        return {}
    path = Path(weights.path)
    if not path.is_file() or path.suffix.lower() == ".safetensors":
        return {}
    try:
        checkpoint = _torch_load(path, mmap=True)
    except Exception:  # an older non-zip file cannot be mapped; read_checkpoint reports unreadable ones
        return {}
    return checkpoint if isinstance(checkpoint, dict) else {}


def training_settings(weights: Weights) -> TrainingSettings:
    """The `args` timm's train.py saves in its checkpoints (model name, --img-size/--input-size, --mean, --std,
    --interpolation, --crop-pct, --crop-mode), where set, and whether it holds EMA weights; or what a timm hub folder's
    config.json says (architecture, its pretrained_cfg's input size and preprocessing, label_names); empty for other
    weights. A training checkpoint is memory-mapped, so this costs no second read of the tensors."""
    hub = timm_hub_config(weights.path) if weights.source == WeightsSource.CHECKPOINT and weights.path else None
    if hub is not None:
        pretrained = hub.get("pretrained_cfg") if isinstance(hub.get("pretrained_cfg"), dict) else {}
        names = hub.get("label_names")
        if isinstance(names, dict):  # {index: name}
            names = [names[k] for k in sorted(names, key=int)] if all(str(k).isdigit() for k in names) else None
        labels = tuple(map(str, names)) if isinstance(names, list) and len(names) == hub.get("num_classes") else None
        if labels and all(re.fullmatch(r"n\d{8}", name) for name in labels):
            labels = None  # ImageNet's synsets: its readable names are the variant's own
        model_args = hub.get("model_args") if isinstance(hub.get("model_args"), dict) else {}
        return replace(_settings({**model_args, **pretrained, "model": hub["architecture"]}), labels=labels or None,
                       source="config.json")
    checkpoint = _mapped_training_checkpoint(weights)
    ema = holds_ema(checkpoint)
    args = checkpoint.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else args if isinstance(args, dict) else {}
    kwargs = args.get("model_kwargs") if isinstance(args.get("model_kwargs"), dict) else {}
    return replace(_settings({**kwargs, **{k: v for k, v in args.items() if v is not None}} if args else {}),
                   ema_weights=ema)


def _settings(args: dict) -> TrainingSettings:
    """timm's names for a model's name, input size and eval preprocessing (train.py's args and pretrained_cfg share
    them), where set and valid."""
    if not args:
        return TrainingSettings()
    size = args.get("input_size") or args.get("img_size")
    if isinstance(size, int):
        size = (size, size)
    elif isinstance(size, list | tuple) and len(size) in (2, 3):
        size = tuple(int(s) for s in size[-2:])
    else:
        size = None
    model = args.get("model") if isinstance(args.get("model"), str) else None
    interpolation, crop_mode = args.get("interpolation"), args.get("crop_mode")
    crop_pct = args.get("crop_pct")
    pre = Preprocessing(mean=tuple(args["mean"]) if args.get("mean") else None,
                        std=tuple(args["std"]) if args.get("std") else None,
                        interpolation=interpolation if interpolation in INTERPOLATIONS else None,
                        crop_pct=float(crop_pct) if isinstance(crop_pct, int | float) and 0 < crop_pct <= 1 else None,
                        crop_mode=crop_mode if crop_mode in CROP_MODES else None)
    window = args.get("window_size")
    if isinstance(window, list | tuple) and len(set(window)) == 1:
        window = window[0]
    pretrained_windows = args.get("pretrained_window_sizes")
    return TrainingSettings(model, size, None if pre == Preprocessing() else pre,
                            window_size=window if isinstance(window, int) and window > 0 else None,
                            pretrained_window_sizes=tuple(pretrained_windows)
                            if isinstance(pretrained_windows, list | tuple) and
                            all(isinstance(w, int) for w in pretrained_windows) else None)


def _load_weights_file(path: Path):
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return _torch_load(path)


def checkpoint_sha256(path: str | Path) -> str:
    """What identifies a checkpoint's weights: its weights file's sha256, or for shards that of every shard."""
    return sha256_files(weight_files(checkpoint_file(path)))


def read_checkpoint(path: str | Path, ema: bool = False) -> dict[str, torch.Tensor]:
    """A state_dict from .pth/.pt/.bin (weights_only) or .safetensors, or a transformers folder, in timm layout.

    Training checkpoints are unwrapped (see CONTAINER_KEYS; `ema`: their EMA weights), DDP/torch.compile prefixes
    dropped and a wrapper's attribute name taken off (`model_prefix`); official Swin, transformers, torchvision and
    timm features_only layouts are converted."""
    path = checkpoint_file(path)
    sd = _raw(path, ema)
    if is_hf_state_dict(sd):
        sd = convert_hf_state_dict(sd)
    elif is_torchvision_state_dict(sd):
        sd = convert_torchvision_state_dict(sd)
    else:
        sd = convert_official_state_dict(feature_list_names(sd))
    if other := [str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor)]:
        shown = ", ".join(other[:6]) + (", ..." if len(other) > 6 else "")
        raise UserError(f"checkpoint {path} holds no model's state_dict ({shown}: not tensors): save the model's "
                        "state_dict() alone, as torch.save(model.state_dict(), path)")
    return sd


def is_torchvision_checkpoint(weights: Weights) -> bool:
    """Whether a checkpoint holds torchvision's Swin, whose padding rules the model must follow (SwinConfig's
    pad_first and keep_window) where its windows do not tile a stage grid."""
    return _own_layout(weights) and is_torchvision_state_dict(_raw(checkpoint_file(weights.path), weights.ema))


def _raw(path: Path, ema: bool) -> dict[str, torch.Tensor]:
    """`_unwrapped` for the weights file `path`, as its files are now."""
    stats = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in weight_files(path))
    return _unwrapped(path, ema, stats)


def release_checkpoint() -> None:
    """Free the checkpoint `_unwrapped` keeps for the next read (export calls this once its model is built)."""
    _unwrapped.cache_clear()


@functools.lru_cache(maxsize=1)  # export reads a checkpoint's tensors more than once (variant, window, weights)
def _unwrapped(path: Path, ema: bool, stats: tuple) -> dict[str, torch.Tensor]:
    """The checkpoint's state_dict in the layout it was saved in, out of its container and prefixes. Callers convert
    it into new dicts and never modify it (it is cached for the file `stats` describe)."""
    files = weight_files(path)
    try:
        loaded = [_load_weights_file(part) for part in files]
    except UserError:
        raise
    except Exception as e:  # corrupt or foreign files raise many different types
        if isinstance(e, pickle.UnpicklingError) and "Unsupported global" in str(e):
            # weights_only refuses to run the code a pickled object needs: loading it would be unsafe
            raise UserError(f"checkpoint {path} holds pickled Python objects, not only tensors (a whole model saved "
                            "with torch.save(model)?): save its state_dict() instead, as "
                            "torch.save(model.state_dict(), path)") from e
        protocol = max(map(_pickle_protocol, files), key=lambda p: p or 0)
        if isinstance(e, pickle.UnpicklingError) and protocol and protocol >= 4:
            # torch's weights_only unpickler lacks the opcodes of protocols 4 and 5 (torch.save's default is 2)
            raise UserError(f"checkpoint {path} was saved with pickle protocol {protocol}, which PyTorch's safe loader "
                            "cannot read: save it again with torch.save's default protocol, or as safetensors") from e
        if empty := [part for part in files if part.stat().st_size == 0]:  # a download or copy that never finished
            raise UserError(f"checkpoint {empty[0]} is empty (0 bytes): download or copy it again") from e
        raise UserError(f"cannot read checkpoint {path} ({type(e).__name__}): is it a PyTorch or safetensors state_dict?") from e
    if not all(isinstance(part, dict) for part in loaded):
        raise UserError(f"checkpoint {path} holds no state_dict")
    sd = loaded[0] if len(loaded) == 1 else {k: v for part in loaded for k, v in part.items()}
    if not sd:
        raise UserError(f"checkpoint {path} holds no state_dict")
    from timm.models import clean_state_dict  # DDP 'module.' and torch.compile '_orig_mod.' prefixes

    name = f"checkpoint {path.name}"
    return model_prefix(clean_state_dict(unwrap_checkpoint(sd, ema, name)), ema, name)


def fit_to_state_dict(cfg: SwinConfig, state_dict: dict[str, torch.Tensor]) -> SwinConfig:
    """`cfg` as a checkpoint's tensors have it: its input channel count (the patch embedding's), its class count (a
    fine-tune's classifier, as timm's `num_classes`; the variant's class names then no longer apply), and no
    classifier where it has none (a backbone saved for fine-tuning, timm's num_classes=0), and stage maps where it has
    no final norm either (timm's features_only model). Everything else must fit as is."""
    changes: dict = {}
    proj = state_dict.get("patch_embed.proj.weight")
    if proj is not None and proj.ndim == 4 and proj.shape[1] != cfg.in_chans:
        changes["in_chans"] = int(proj.shape[1])
    head = state_dict.get("head.fc.weight")
    headless = not any(k.startswith("head.") for k in state_dict)
    if cfg.backbone is None and headless and "patch_embed.proj.weight" in state_dict and "norm.weight" not in state_dict:
        # timm's features_only model (feature_list_names): its stage maps, as timm returns them, without a final norm
        changes.update(num_classes=0, labels=None, backbone=cfg.map_names[1:])
    elif cfg.backbone is None and cfg.num_classes and headless:
        changes.update(num_classes=0, labels=None)
    elif cfg.backbone is None and head is not None and head.ndim == 2 and head.shape[0] != cfg.num_classes:
        changes.update(num_classes=int(head.shape[0]), labels=None)
    return replace(cfg, **changes) if changes else cfg


def weights_shape(state_dict: dict[str, torch.Tensor]) -> tuple | None:
    """SwinConfig.weights_shape as a timm-layout state_dict has it; None where its tensors are not those of a Swin
    V1/V2 in timm's layout (another architecture, or timm's other Swin V2, `swinv2_cr`)."""
    proj = state_dict.get("patch_embed.proj.weight")
    blocks: dict[int, set[int]] = {}
    for key in state_dict:
        if m := re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", key):
            blocks.setdefault(int(m[1]), set()).add(int(m[2]))
    if proj is None or proj.ndim != 4 or not blocks or sorted(blocks) != list(range(len(blocks))):
        return None
    version = 2 if "layers.0.blocks.0.attn.logit_scale" in state_dict else 1
    heads, window = [], None
    for i in range(len(blocks)):
        attn = f"layers.{i}.blocks.0.attn."
        per_head = state_dict.get(attn + ("logit_scale" if version == 2 else "relative_position_bias_table"))
        if per_head is None:
            return None
        heads.append(int(per_head.shape[0 if version == 2 else 1]))
        if version == 1 and i == 0:  # stage 1 keeps the full window (later ones may shrink to their grid)
            window = (math.isqrt(int(per_head.shape[0])) + 1) // 2
    fc1 = state_dict.get("layers.0.blocks.0.mlp.fc1.weight")
    if fc1 is None:
        return None
    return (version, int(proj.shape[-1]), int(proj.shape[0]), tuple(len(blocks[i]) for i in range(len(blocks))),
            tuple(heads), int(fc1.shape[0]), window)


def variants_fitting(state_dict: dict[str, torch.Tensor], any_window: bool = False) -> list[str]:
    """The registered variants whose architecture a timm-layout state_dict has (several V2 variants that differ only
    in window all fit); `any_window`: V1 variants whose position tables are of another window count too (a fine-tune
    at another window)."""
    shape = weights_shape(state_dict)
    if shape is None:
        return []
    drop = slice(None, -1) if any_window else slice(None)
    return [name for name, cfg in VARIANTS.items() if cfg.weights_shape()[drop] == shape[drop]]


def fit_position_tables(state_dict: dict[str, torch.Tensor], window_size: int,
                        windows: dict[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    """V1 relative position bias tables for blocks whose window shrinks to a stage grid smaller than `window_size`
    (`windows`: each V1 attention module's window at the model's size), resized with timm's own
    `resize_rel_pos_bias_table`, as timm's `checkpoint_filter_fn` does when it loads weights at such a size. Tables
    of another window than `window_size` (another variant) are left for `load_strict` to name. Returns a new dict."""
    from timm.layers import resize_rel_pos_bias_table

    full = (2 * window_size - 1) ** 2
    out = dict(state_dict)
    for name, window in windows.items():
        key, new_len = f"{name}.relative_position_bias_table", (2 * window[0] - 1) * (2 * window[1] - 1)
        table = out.get(key)
        if table is not None and table.ndim == 2 and table.shape[0] == full and new_len != full:
            with warnings.catch_warnings():  # torch deprecation notes from inside timm's interpolation: not the user's
                warnings.simplefilter("ignore")
                out[key] = resize_rel_pos_bias_table(table, new_window_size=window,
                                                     new_bias_shape=(new_len, table.shape[1]))
    return out


def load_strict(model: SwinTransformer, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True) with a one-line error naming the first mismatch, after V1 position tables are
    fitted to windows that shrink at the model's size (fit_position_tables)."""
    windows = {name: m.window for name, m in model.named_modules() if isinstance(m, WindowAttention)}
    state_dict = fit_position_tables(state_dict, model.cfg.window_size, windows)
    own = model.state_dict()
    for k, v in own.items():
        if k not in state_dict:
            raise UserError(f"{source} does not fit {model.cfg.name}: tensor '{k}' is missing (is it another variant?)")
        if tuple(state_dict[k].shape) != tuple(v.shape):
            raise UserError(
                f"{source} does not fit {model.cfg.name}: '{k}' has shape {tuple(state_dict[k].shape)}, "
                f"{model.cfg.name} needs {tuple(v.shape)}"
            )
    extra = [k for k in state_dict if k not in own]
    if extra:
        raise UserError(f"{source} does not fit {model.cfg.name}: unexpected tensor '{extra[0]}' (is it another variant?)")
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state_dict):
        h.update(k.encode())
        h.update(state_dict[k].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def pretrained_state_dict(cfg: SwinConfig) -> dict[str, torch.Tensor]:
    """timm's pretrained weights for a registered timm variant (downloads through timm's hub cache)."""
    if cfg.timm_name is None:
        raise UserError(f"{cfg.name} has no timm pretrained weights: use `checkpoint` PATH or `random_init`")
    reachable = _hub_reachable()
    try:
        import timm

        # cached weights still load offline; an uncached model fails at once instead of ~60 s of retries
        with _quiet_hub(), _hub_offline(not reachable):
            return timm.create_model(cfg.timm_name, pretrained=True).state_dict()
    except Exception as e:
        why = "are not cached and the hub is out of reach (offline?)" if not reachable else \
            f"could not be fetched ({type(e).__name__}; offline?)"
        raise UserError(f"timm's pretrained weights for {cfg.timm_name} {why}: use `checkpoint` PATH for local "
                        "weights or `random_init`") from e


def _hub_reachable() -> bool:
    """Can the Hugging Face hub's host name be resolved? (No traffic beyond a DNS lookup.)"""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    from urllib.parse import urlparse

    host = urlparse(constants.ENDPOINT).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


# a Hugging Face hub model id, owner/name (transformers' microsoft/swin-tiny-patch4-window7-224, timm's
# timm/swin_tiny_patch4_window7_224.ms_in1k)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin", ".tar")  # a missing file, not a hub id


def hub_snapshot(repo_id: str) -> Path:
    """A Hugging Face hub model id as its local snapshot folder, as transformers' and timm's from_pretrained take one:
    from the hub cache, else fetched there (its JSON configs and one weights file, safetensors where it has them)."""
    from huggingface_hub import snapshot_download

    reachable = _hub_reachable()
    try:
        with _quiet_hub(), _hub_offline(not reachable):
            folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", "model.safetensors"]))
            if not (folder / "model.safetensors").is_file():  # shards, as its index (fetched with the JSON) names them
                shards = [pattern for index, pattern in SHARD_INDEXES.items() if (folder / index).is_file()]
                folder = Path(snapshot_download(repo_id, allow_patterns=["*.json", *(shards[:1] or ["pytorch_model.bin"])]))
    except Exception as e:
        why = "is not cached and the hub is out of reach (offline?)" if not reachable else \
            f"could not be fetched ({type(e).__name__})"
        raise UserError(f"checkpoint {repo_id} is no local path, and as a Hugging Face hub model id it {why}: pass the "
                        "path of a checkpoint file or folder") from e
    return folder


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """huggingface_hub in cache-only mode for the duration (its flag is read at call time), then as it was.
    The environment is left alone: it would leak into everything else the process does."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = saved or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


@contextlib.contextmanager
def _quiet_hub():
    """huggingface_hub logs every retry as a warning; the caller reports failure in one line."""
    log = logging.getLogger("huggingface_hub")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


@dataclass(frozen=True)
class Weights:
    """Where a model's weights come from: a WeightsSource, with the checkpoint path or the random seed."""

    source: WeightsSource = WeightsSource.DEFAULT
    path: Path | None = None
    seed: int = 0
    ema: bool = False  # a training checkpoint's EMA weights

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", WeightsSource.parse(self.source))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))  # a str from a library caller
        elif self.source == WeightsSource.CHECKPOINT:
            raise UserError("weights from a `checkpoint` need its path: Weights(\"checkpoint\", PATH)")
        require_at_least("seed", self.seed, 0)  # numpy's generators refuse negative seeds (torch takes them)

    @property
    def option(self) -> str | None:
        """The option that chose these weights (None: the variant's default ones)."""
        return {WeightsSource.CHECKPOINT: "checkpoint", WeightsSource.PRETRAINED: "pretrained",
                WeightsSource.RANDOM: "random_init"}.get(self.source)

    @classmethod
    def from_options(cls, checkpoint: Path | None = None, pretrained: bool = False, random_init: bool = False,
                     seed: int = 0, ema: bool = False) -> Weights:
        chosen = [n for n, on in (("checkpoint", checkpoint is not None), ("pretrained", pretrained),
                                  ("random_init", random_init)) if on]
        if len(chosen) > 1:
            raise UserError(f"choose one source of weights, not {' and '.join(f'`{n}`' for n in chosen)}")
        if ema and checkpoint is None:
            raise UserError("`ema` takes a training checkpoint's EMA weights: pass that `checkpoint` with it")
        if checkpoint is not None:
            path = Path(checkpoint)
            if not path.exists() and HUB_ID.match(str(checkpoint)) and path.suffix.lower() not in WEIGHT_SUFFIXES:
                path = hub_snapshot(str(checkpoint))
            if ema and path.is_dir():
                raise UserError("a checkpoint folder (transformers' or timm's hub) holds one set of weights: leave out "
                                "`ema`")
            return cls(WeightsSource.CHECKPOINT, path, ema=ema)
        if pretrained:
            return cls(WeightsSource.PRETRAINED)
        if random_init:
            return cls(WeightsSource.RANDOM, seed=seed)
        return cls()


def config_for(variant: str | None, weights: Weights, default: str = "swin_t") -> SwinConfig:
    """The architecture to build: from a transformers checkpoint's config.json (a `variant`, if given, must agree),
    else the registry's `variant`, else the variant a checkpoint's tensors fit, else `default`."""
    if weights.source == WeightsSource.CHECKPOINT and weights.path is not None and hf_config_path(weights.path):
        cfg = hf_config(weights.path, name=variant)
        if variant is not None:
            check_agrees(cfg, get_config(variant))
        return cfg
    return get_config(variant or variant_from_tensors(weights) or default)


def window_in_tensors(weights: Weights) -> int | None:
    """The window a checkpoint's tensors are sized for: a V1's position tables (stage 1's: (2w-1)^2 rows), or the
    coordinate table a V2 keeps as a buffer in torchvision's, the official code's and timm-before-0.9's checkpoints
    ((1, 2w-1, 2w-1, 2)); None where no tensor holds it (timm's V2 now) and for other weights."""
    if not _own_layout(weights):
        return None
    raw = _raw(checkpoint_file(weights.path), weights.ema)
    coords = raw.get("features.1.0.attn.relative_coords_table", raw.get("layers.0.blocks.0.attn.relative_coords_table"))
    if coords is not None and coords.ndim == 4:
        return (int(coords.shape[1]) + 1) // 2
    shape = weights_shape(read_checkpoint(weights.path, weights.ema))
    return shape[-1] if shape is not None else None


def variant_from_tensors(weights: Weights) -> str | None:
    """The one registered variant a timm-layout checkpoint's tensors fit, for one that does not name its model (None
    for other weights); a UserError where they fit several, or none."""
    if not _own_layout(weights):
        return None
    source, state_dict = f"checkpoint {weights.path.name}", read_checkpoint(weights.path, weights.ema)
    fits = variants_fitting(state_dict)
    if len(fits) > 1 and (window := window_in_tensors(weights)):  # V2 variants told apart by torchvision's table
        fits = [name for name in fits if VARIANTS[name].window_size == window] or fits
    if len(fits) == 1:
        return fits[0]
    if fits:
        raise UserError(f"{source} has the tensors of {', '.join(fits)} (Swin V2 keeps its window out of its weights): "
                        "pass `variant` to say which it is")
    shape = weights_shape(state_dict)
    loose = variants_fitting(state_dict, any_window=True)  # V1 at another window: it is built with the tables' one
    if len(loose) == 1:
        return loose[0]
    if loose:
        raise UserError(f"{source} has the tensors of {', '.join(loose)} at window {shape[-1]}: pass `variant` to say "
                        "which it is")
    if shape is None:
        telling = [k for k in state_dict if not k.startswith(("patch_embed.", "norm.", "head.", "absolute_pos"))]
        raise UserError(f"{source} does not hold a Swin V1/V2 model in a layout swin-deploy reads (timm's, the "
                        "official, transformers' or torchvision's; it has tensors such as "
                        f"'{(telling or list(state_dict))[0]}')")
    version, _, dim, depths, heads, _, window = shape
    raise UserError(f"{source} holds a Swin V{version} (embedding {dim}, depths {list(depths)}, heads {list(heads)}"
                    f"{f', window {window}' if window else ''}) that is no registered variant: `swin-deploy variants` "
                    "lists them")


def build_model(cfg: SwinConfig, weights: Weights, dynamic: bool = False) -> tuple[SwinTransformer, str]:
    """The native model in eval mode with its weights, and the sha256 that identifies those weights.

    `default` means the bundled weights for demo variants and timm's pretrained weights otherwise.
    `dynamic` builds the dynamic-size geometry (same parameters).
    """
    kind = weights.source
    if kind == WeightsSource.DEFAULT:
        kind = WeightsSource.BUNDLED if cfg.bundled_weights else WeightsSource.PRETRAINED
    if kind == WeightsSource.RANDOM:
        torch.manual_seed(weights.seed)
        model = SwinTransformer(cfg, dynamic).eval()
        return model, state_dict_sha256(model.state_dict())
    if kind == WeightsSource.CHECKPOINT:
        assert weights.path is not None
        state_dict = read_checkpoint(weights.path, weights.ema)
        model = SwinTransformer(fit_to_state_dict(cfg, state_dict), dynamic).eval()
        try:
            load_strict(model, state_dict, f"checkpoint {weights.path.name}")
        except UserError as e:
            fits, shape = variants_fitting(state_dict), weights_shape(state_dict)
            if fits and cfg.name not in fits:
                raise UserError(f"{e}: its tensors are those of {' or '.join(fits)}, pass that as `variant`") from e
            if shape is not None and shape[-1] not in (None, cfg.window_size):
                raise UserError(f"{e}: its position tables are for window {shape[-1]}, pass that as `window_size`") from e
            raise
        # the file names the raw weights; the EMA ones, one file with them, are named by their own content
        return model, state_dict_sha256(state_dict) if weights.ema else checkpoint_sha256(weights.path)
    model = SwinTransformer(cfg, dynamic).eval()
    if kind == WeightsSource.BUNDLED:
        if not cfg.bundled_weights:
            raise UserError(f"{cfg.name} ships no weights: use `checkpoint` PATH, `pretrained` or `random_init`")
        path = WEIGHTS_DIR / cfg.bundled_weights
        load_strict(model, read_checkpoint(path), f"bundled weights {path.name}")
        return model, sha256_file(path)
    sd = convert_official_state_dict(pretrained_state_dict(cfg))
    load_strict(model, sd, f"timm pretrained weights of {cfg.timm_name}")
    return model, state_dict_sha256(sd)
