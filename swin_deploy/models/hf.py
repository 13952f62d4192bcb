"""Hugging Face transformers checkpoints: Swin/Swinv2 ForImageClassification (logits), Model (pooled features, no
classifier) and Backbone (AutoBackbone's stage maps; SwinBackbone's through per-stage LayerNorms), any `num_channels`.

A `save_pretrained` folder (config.json + model.safetensors or pytorch_model.bin), or the weights file with its
config.json beside it. `hf_config` reads the architecture, labels and preprocessing into a SwinConfig;
`convert_hf_state_dict` is a pure state_dict -> state_dict function into timm's layout (the native model's):
transformers keeps each stage's downsample at the end of the stage (timm at the start of the next) and q, k, v as
three linears (timm one fused qkv; V2 has no key bias). Both transformers 4.x names (attention.self.query,
intermediate.dense, ...) and 5.x names (attention.q_proj, mlp.fc1, ...) are read.

Not the same in transformers: it pads a stage's tokens to whole windows before the cyclic shift, timm after, so at
sizes that are not multiples of the window the two differ; the config's `pad_first` makes the model pad as transformers
does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..errors import UserError
from .registry import IMAGENET_MEAN, IMAGENET_STD, SwinConfig

MODEL_TYPES = {"swin": 1, "swinv2": 2}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# save_pretrained's shards past max_shard_size: an index naming the shard file of every tensor
SHARD_INDEXES = {"model.safetensors.index.json": "model-*-of-*.safetensors",
                 "pytorch_model.bin.index.json": "pytorch_model-*-of-*.bin"}
# PIL resample codes in preprocessor_config.json -> timm interpolation names
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}

# block parameter (after `...layers.{i}.blocks.{j}.`) -> (role, part); both transformers 4.x and 5.x spellings
_BLOCK = [
    (r"attention\.(?:self\.query|q_proj)\.(weight|bias)", "q"),
    (r"attention\.(?:self\.key|k_proj)\.(weight|bias)", "k"),
    (r"attention\.(?:self\.value|v_proj)\.(weight|bias)", "v"),
    (r"attention\.(?:output\.dense|o_proj)\.(weight|bias)", "attn.proj"),
    (r"attention\.(?:self\.|relative_position_bias\.)?relative_position_bias_table()", "attn.relative_position_bias_table"),
    (r"attention\.self\.logit_scale()", "attn.logit_scale"),
    (r"attention\.self\.continuous_position_bias_mlp\.(\d\.weight|\d\.bias)", "attn.cpb_mlp"),
    (r"(?:intermediate\.dense|mlp\.fc1)\.(weight|bias)", "mlp.fc1"),
    (r"(?:output\.dense|mlp\.fc2)\.(weight|bias)", "mlp.fc2"),
    (r"layernorm_before\.(weight|bias)", "norm1"),
    (r"layernorm_after\.(weight|bias)", "norm2"),
]
_BUFFERS = ("relative_position_index", "relative_coords_table")


def hf_config_path(path: str | Path) -> Path | None:
    """The config.json of a transformers checkpoint (a folder, or a weights file beside one), else None.
    timm's hub folders have their own config.json (an "architecture", no model_type), which is not one; beside a file,
    only a transformers config (one with a model_type) counts."""
    path = Path(path)
    config = path / "config.json" if path.is_dir() else path.with_name("config.json")
    if not config.is_file() or timm_hub_config(path) is not None:
        return None
    if path.is_dir():
        return config  # an unreadable one is named where it is read
    try:
        return config if "model_type" in json.loads(config.read_text()) else None
    except (OSError, ValueError):
        return None


def timm_hub_config(path: str | Path) -> dict | None:
    """The config.json timm writes beside its weights for the Hugging Face hub ({"architecture", "num_classes",
    "pretrained_cfg", "label_names", ...}) of a hub folder, or beside a weights file in one; None elsewhere
    (transformers' config.json has a model_type instead)."""
    path = Path(path)
    config = path / "config.json" if path.is_dir() else path.with_name("config.json")
    try:
        c = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    return c if isinstance(c, dict) and isinstance(c.get("architecture"), str) and "model_type" not in c else None


def hf_weights_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file():
        return path
    for name in (*WEIGHT_FILES, *SHARD_INDEXES):
        if (path / name).is_file():
            return path / name
    raise UserError(f"{path} has a config.json but no {' or '.join(WEIGHT_FILES)} (or shards of them): save the model "
                    "with save_pretrained")


def weight_files(path: Path) -> list[Path]:
    """The files a checkpoint's weights file stands for: itself, or the shards a shard index names."""
    return shard_files(path) if path.name in SHARD_INDEXES else [path]


def shard_files(index: Path) -> list[Path]:
    """The shard files a sharded checkpoint's index names (save_pretrained's `*.index.json`), each checked to exist."""
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UserError(f"{index} has no weight_map: is it a save_pretrained shard index?")
    shards = [index.parent / name for name in sorted(set(weight_map.values()))]
    missing = [s for s in shards if not s.is_file()]
    if missing:
        raise UserError(f"{index.name} names the shard {missing[0].name}, which is not in {index.parent}: copy or "
                        "download every shard")
    return shards


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not readable JSON ({type(e).__name__})") from e


def hf_config(path: str | Path, name: str | None = None) -> SwinConfig:
    """The SwinConfig of a transformers Swin/Swinv2 checkpoint: architecture, classes and their names
    (id2label), and preprocessing from preprocessor_config.json when present."""
    config_path = hf_config_path(path)
    if config_path is None:
        raise UserError(f"{path} has no config.json beside it: is it a transformers save_pretrained folder?")
    c = _read_json(config_path)
    model_type = c.get("model_type")
    if model_type not in MODEL_TYPES:
        raise UserError(f"{config_path} describes a '{model_type}' model, not Swin or Swinv2 "
                        "(SwinForImageClassification, Swinv2ForImageClassification)")
    if c.get("use_absolute_embeddings"):
        raise UserError(f"{config_path}: absolute position embeddings (use_absolute_embeddings) are not supported")
    if not c.get("qkv_bias", True):
        raise UserError(f"{config_path}: qkv_bias=false is not supported")
    version = MODEL_TYPES[model_type]
    architecture = (c.get("architectures") or ["ForImageClassification"])[0]
    backbone = tuple(c.get("out_features") or [c["stage_names"][-1]]) if architecture.endswith("Backbone") else None
    size = c.get("image_size", 224)
    img_size = tuple(size) if isinstance(size, list | tuple) else (size, size)
    depths = tuple(c["depths"])
    id2label = c.get("id2label") or {}
    # transformers' own default is 2 labels, and transformers 5 leaves a default label map out of config.json
    num_classes = int(c.get("num_labels") or len(id2label) or 2) if architecture.endswith("ForImageClassification") else 0
    labels = tuple(id2label.get(str(i), id2label.get(i, str(i))) for i in range(num_classes)) if id2label else None
    if not num_classes or labels is not None and all(re.fullmatch(r"LABEL_\d+", x) for x in labels):
        labels = None  # transformers' placeholder names carry nothing
    cfg = SwinConfig(
        name=name or f"hf-{config_path.parent.name}", version=version, img_size=img_size, embed_dim=int(c["embed_dim"]),
        depths=depths, num_heads=tuple(c["num_heads"]), window_size=int(c["window_size"]),
        patch_size=int(c.get("patch_size", 4)), mlp_ratio=float(c.get("mlp_ratio", 4.0)),
        pretrained_window_sizes=tuple((c.get("pretrained_window_sizes") or [0] * len(depths))[:len(depths)]) if version == 2
        else (0,) * len(depths), num_classes=num_classes, labels=labels, in_chans=int(c.get("num_channels", 3)),
        # SwinBackbone normalises its maps and calls its encoder with always_partition; Swinv2Backbone does neither
        backbone=backbone, backbone_norms=architecture == "SwinBackbone", always_partition=architecture == "SwinBackbone",
        shifts_at=img_size if version == 2 else None, square_shift=version == 1 and architecture != "SwinBackbone",
        pad_first=True)
    try:
        cfg.check_img_size(img_size)
    except UserError as e:
        raise UserError(f"{config_path}: {e}") from None
    return _with_preprocessing(cfg, config_path.parent / "preprocessor_config.json")


def _with_preprocessing(cfg: SwinConfig, path: Path) -> SwinConfig:
    """mean, std, resample and crop from an image processor's config (timm's transforms then apply them)."""
    from dataclasses import replace

    if not path.is_file():
        return replace(cfg, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic", crop_pct=0.9)
    p = _read_json(path)
    crop_pct = float(p.get("crop_pct") or 1.0)
    size, crop = p.get("size"), p.get("crop_size")
    cropped = p.get("crop_pct") is not None  # ConvNextImageProcessor: the short side to size / crop_pct, then a crop
    if p.get("do_center_crop") and isinstance(size, dict) and "shortest_edge" in size and isinstance(crop, dict):
        crop_pct, cropped = crop.get("height", cfg.img_size[0]) / size["shortest_edge"], True
    # otherwise (ViTImageProcessor) both sides are resized straight to the model size: no crop, aspect ratio not kept
    return replace(cfg, mean=tuple(p.get("image_mean", IMAGENET_MEAN)), std=tuple(p.get("image_std", IMAGENET_STD)),
                   interpolation=RESAMPLE.get(p.get("resample", 3), "bicubic"), crop_pct=crop_pct,
                   crop_mode="center" if cropped else "squash")


def is_hf_state_dict(state_dict: dict) -> bool:
    """transformers' layout: under swin./swinv2. in a classifier, at the top in SwinModel and the backbones."""
    return any(k.startswith(("swin.embeddings.", "swinv2.embeddings.", "embeddings.patch_embeddings."))
               for k in state_dict)


def convert_hf_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers Swin/Swinv2 (ForImageClassification, Model, Backbone) -> timm layout (pure; the input is not
    modified); a backbone's per-stage norms become `stage_norms.<stage>`.

    Every tensor is accounted for: one that has no place in the native model is a UserError naming it."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    backbone = any(k.startswith("hidden_states_norms.") for k in state_dict)
    for key, value in state_dict.items():
        if key.endswith(_BUFFERS):
            continue
        if backbone and re.fullmatch(r"(?:swin\.|swinv2\.)?layernorm\.(weight|bias)", key):
            continue  # SwinBackbone keeps its SwinModel's final norm, which its forward never applies
        m = re.fullmatch(r"(swin|swinv2)\.(.+)", key)
        rest = m.group(2) if m else key
        if (b := re.fullmatch(r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)", rest)) is not None:
            stage, block, param = b.groups()
            prefix = f"layers.{stage}.blocks.{block}."
            for pattern, role in _BLOCK:
                if (p := re.fullmatch(pattern, param)) is not None:
                    part = p.group(1)
                    if role in ("q", "k", "v"):
                        qkv.setdefault(prefix, {})[f"{role}.{part}"] = value
                    else:
                        out[prefix + role + (f".{part}" if part else "")] = value
                    break
            else:
                raise UserError(f"transformers tensor '{key}' has no place in the native model")
        elif (d := re.fullmatch(r"encoder\.layers\.(\d+)\.downsample\.(.+)", rest)) is not None:
            out[f"layers.{int(d.group(1)) + 1}.downsample.{d.group(2)}"] = value
        elif rest.startswith("embeddings.patch_embeddings.projection."):
            out["patch_embed.proj." + rest.rsplit(".", 1)[1]] = value
        elif rest.startswith("embeddings.norm."):
            out["patch_embed.norm." + rest.rsplit(".", 1)[1]] = value
        elif rest.startswith("layernorm."):
            out["norm." + rest.rsplit(".", 1)[1]] = value
        elif key.startswith("classifier."):
            out["head.fc." + key.rsplit(".", 1)[1]] = value
        elif (n := re.fullmatch(r"hidden_states_norms\.(\w+)\.(weight|bias)", key)) is not None:
            out[f"stage_norms.{n.group(1)}.{n.group(2)}"] = value
        else:
            raise UserError(f"transformers tensor '{key}' has no place in the native model (absolute position "
                            "embeddings and masked-image-modeling heads are not supported)")
    v2 = any(k.startswith("swinv2.") or ".logit_scale" in k or "continuous_position_bias_mlp" in k for k in state_dict)
    for prefix, parts in qkv.items():
        missing = [p for p in ("q.weight", "k.weight", "v.weight") if p not in parts]
        if missing:
            raise UserError(f"transformers checkpoint lacks the {missing[0].split('.')[0]} projection of {prefix[:-1]}")
        out[prefix + "attn.qkv.weight"] = torch.cat([parts["q.weight"], parts["k.weight"], parts["v.weight"]])
        if v2:  # timm's V2 has q and v biases and a fixed zero key bias
            out[prefix + "attn.q_bias"], out[prefix + "attn.v_bias"] = parts["q.bias"], parts["v.bias"]
        else:
            out[prefix + "attn.qkv.bias"] = torch.cat([parts["q.bias"], parts["k.bias"], parts["v.bias"]])
    return out


def check_agrees(hf: SwinConfig, registered: SwinConfig) -> None:
    """A --variant given with a transformers checkpoint must describe the same architecture (classes may differ)."""
    def plain(x):
        return tuple(x) if isinstance(x, tuple | list) else x

    for field in ("version", "img_size", "patch_size", "embed_dim", "depths", "num_heads", "window_size", "mlp_ratio",
                  *(("pretrained_window_sizes",) if hf.version == 2 else ())):
        a, b = getattr(hf, field), getattr(registered, field)
        if plain(a) != plain(b):
            raise UserError(f"`variant` {registered.name} disagrees with the checkpoint's config.json on {field} "
                            f"({b} vs {a}): drop `variant`, or pass the variant the checkpoint was made from")
