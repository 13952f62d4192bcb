"""What an exported artifact says about itself: the swin-deploy metadata in ONNX `metadata_props`.

Export writes it; quantize, verify, bench and build-engine read it instead of asking the user again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .enums import InputFormat, Precision
from .errors import UserError
from .models.registry import SwinConfig, get_config


@dataclass
class ArtifactInfo:
    variant: str
    timm_name: str | None
    img_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float
    num_classes: int
    weights_sha256: str
    precision: Precision = Precision.FP32
    opset: int = 17
    version: str = ""
    max_batch: int | None = None
    static_batch: bool = False
    outputs: tuple[str, ...] = ("logits",)  # ("stage1", ..., "stageN") for a --features export
    dynamic_size: tuple[int, int, int, int] | None = None  # min H, min W, max H, max W
    architecture: dict | None = None  # SwinConfig.architecture(): rebuilds models not in the registry (fine-tunes)
    labels: tuple[str, ...] | None = None  # class names (id2label of a transformers fine-tune, the demo digits)
    input_format: InputFormat = InputFormat.FLOAT32  # uint8: raw pixels, normalisation folded into the graph
    channels_last: bool = False  # uint8 input as (B, H, W, 3)
    extra: dict[str, str] = field(default_factory=dict)  # precision details (target, method, ...)

    @property
    def fixed_batch(self) -> int | None:
        """The only batch size a --static-batch artifact takes; None when the batch is dynamic."""
        return (self.max_batch or 1) if self.static_batch else None

    def accepts_batch(self, batch: int) -> bool:
        if self.fixed_batch is not None:
            return batch == self.fixed_batch
        return self.max_batch is None or batch <= self.max_batch

    def default_batch_sizes(self, defaults: tuple[int, ...]) -> list[int]:
        """`defaults`, or the one batch a static-batch artifact takes."""
        return [self.fixed_batch] if self.fixed_batch else list(defaults)

    def check_batch_sizes(self, sizes: list[int]) -> None:
        """A UserError unless every size is one this artifact takes."""
        if not sizes or any(b < 1 for b in sizes):
            raise UserError("batch sizes must be positive integers, e.g. `batch_sizes` 1,3,8")
        if self.fixed_batch is not None and any(b != self.fixed_batch for b in sizes):
            raise UserError(f"this artifact has a static batch of {self.fixed_batch}: use `batch_sizes` {self.fixed_batch}")
        if self.max_batch and max(sizes) > self.max_batch:
            raise UserError(f"batch size {max(sizes)} exceeds the artifact's max batch {self.max_batch}: "
                            f"use sizes up to {self.max_batch} or re-export with a larger `max_batch`")

    @classmethod
    def for_config(cls, cfg: SwinConfig, weights_sha256: str, opset: int, max_batch: int | None,
                   static_batch: bool) -> ArtifactInfo:
        from . import __version__

        return cls(variant=cfg.name, timm_name=cfg.timm_name, img_size=tuple(cfg.img_size), mean=tuple(cfg.mean),
                   std=tuple(cfg.std), interpolation=cfg.interpolation, crop_pct=cfg.crop_pct,
                   num_classes=cfg.num_classes, weights_sha256=weights_sha256, opset=opset, version=__version__,
                   max_batch=max_batch, static_batch=static_batch, architecture=cfg.architecture(),
                   labels=tuple(cfg.labels) if cfg.labels else None)

    def to_props(self) -> dict[str, str]:
        props = {
            "swin_deploy.variant": self.variant,
            "swin_deploy.timm_name": self.timm_name or "",
            "swin_deploy.input_size": json.dumps([3, *self.img_size]),
            "swin_deploy.mean": json.dumps(list(self.mean)),
            "swin_deploy.std": json.dumps(list(self.std)),
            "swin_deploy.interpolation": self.interpolation,
            "swin_deploy.crop_pct": str(self.crop_pct),
            "swin_deploy.num_classes": str(self.num_classes),
            "swin_deploy.weights_sha256": self.weights_sha256,
            "swin_deploy.precision": str(self.precision),
            "swin_deploy.opset": str(self.opset),
            "swin_deploy.version": self.version,
            "swin_deploy.max_batch": "" if self.max_batch is None else str(self.max_batch),
            "swin_deploy.static_batch": str(self.static_batch).lower(),
            "swin_deploy.outputs": ",".join(self.outputs),
            "swin_deploy.dynamic_size": "" if self.dynamic_size is None else json.dumps(list(self.dynamic_size)),
            "swin_deploy.architecture": "" if self.architecture is None else json.dumps(self.architecture),
            "swin_deploy.labels": "" if self.labels is None else json.dumps(list(self.labels)),
            "swin_deploy.input_format": str(self.input_format),
            "swin_deploy.channels_last": str(self.channels_last).lower(),
        }
        props.update({f"swin_deploy.{k}": v for k, v in self.extra.items()})
        return props

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ArtifactInfo | None:
        if "swin_deploy.variant" not in props:
            return None
        p = {k.removeprefix("swin_deploy."): v for k, v in props.items() if k.startswith("swin_deploy.")}
        known = {"variant", "timm_name", "input_size", "mean", "std", "interpolation", "crop_pct", "num_classes",
                 "weights_sha256", "precision", "opset", "version", "max_batch", "static_batch", "outputs",
                 "dynamic_size", "architecture", "labels", "input_format", "channels_last"}
        return cls(variant=p["variant"], timm_name=p.get("timm_name") or None,
                   img_size=tuple(json.loads(p["input_size"])[1:]), mean=tuple(json.loads(p["mean"])),
                   std=tuple(json.loads(p["std"])), interpolation=p["interpolation"], crop_pct=float(p["crop_pct"]),
                   num_classes=int(p["num_classes"]), weights_sha256=p["weights_sha256"],
                   precision=Precision.parse(p.get("precision", "fp32")), opset=int(p.get("opset", "17")),
                   version=p.get("version", ""),
                   max_batch=int(p["max_batch"]) if p.get("max_batch") else None,
                   static_batch=p.get("static_batch") == "true",
                   outputs=tuple(p.get("outputs", "logits").split(",")),
                   dynamic_size=tuple(json.loads(p["dynamic_size"])) if p.get("dynamic_size") else None,
                   architecture=json.loads(p["architecture"]) if p.get("architecture") else None,
                   labels=tuple(json.loads(p["labels"])) if p.get("labels") else None,
                   input_format=InputFormat.parse(p.get("input_format") or "float32"),
                   channels_last=p.get("channels_last") == "true",
                   extra={k: v for k, v in p.items() if k not in known})

    @property
    def features(self) -> bool:
        return self.outputs != ("logits",)

    @property
    def pixels(self) -> bool:
        """Takes raw uint8 pixels (normalisation inside the graph) rather than normalised float32."""
        return self.input_format == InputFormat.UINT8

    def input_shape(self, batch: int, size: tuple[int, int] | None = None) -> tuple[int, ...]:
        h, w = size or self.img_size
        return (batch, h, w, 3) if self.channels_last else (batch, 3, h, w)

    def example_input(self, rng: np.random.Generator, batch: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Seeded synthetic input the artifact takes: N(0, 1) float32, or uniform uint8 pixels."""
        shape = self.input_shape(batch, size)
        if self.pixels:
            return rng.integers(0, 256, shape, dtype=np.uint8)
        return rng.standard_normal(shape, dtype=np.float32)

    def normalized(self, x: np.ndarray) -> np.ndarray:
        """What a float32 model (the PyTorch reference) takes for input `x` of this artifact: x itself, or for
        pixels (B, 3, H, W) float32 computed as timm's ToTensor + Normalize do, (p / 255 - mean) / std."""
        if not self.pixels:
            return x
        x = x.transpose(0, 3, 1, 2) if self.channels_last else x
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
        return np.ascontiguousarray((x.astype(np.float32) / np.float32(255) - mean) / std)

    def config(self) -> SwinConfig:
        """The config this artifact was exported from (recorded, or the registry's for older artifacts), at the
        artifact's input size."""
        cfg = SwinConfig.from_architecture(self.architecture, self.labels) if self.architecture else get_config(self.variant)
        return cfg.at_size(tuple(self.img_size), dynamic=self.dynamic_size is not None)

    def check_size(self, size: tuple[int, int]) -> None:
        """A UserError unless this artifact accepts inputs of `size`."""
        if self.dynamic_size is None:
            if tuple(size) != tuple(self.img_size):
                raise UserError(f"this artifact takes {self.img_size[0]}x{self.img_size[1]} inputs only: "
                                "re-export with `dynamic_size` for other sizes")
            return
        lo_h, lo_w, hi_h, hi_w = self.dynamic_size
        stride = self.config().stride
        if not (lo_h <= size[0] <= hi_h and lo_w <= size[1] <= hi_w) or size[0] % stride or size[1] % stride:
            raise UserError(f"size {size[0]}x{size[1]} is outside this artifact's range {lo_h}x{lo_w} to {hi_h}x{hi_w} "
                            f"(multiples of {stride})")


def write_info(model: onnx.ModelProto, info: ArtifactInfo) -> None:
    props = {p.key: p.value for p in model.metadata_props if not p.key.startswith("swin_deploy.")}
    props.update(info.to_props())
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)


def load_onnx(path: str | Path, load_weights: bool = True) -> onnx.ModelProto:
    """onnx.load with a one-line error for missing, corrupt or non-ONNX files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: pass the path of an ONNX file (swin-deploy export writes one)")
    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except Exception as e:
        raise UserError(f"{path} is not a readable ONNX model ({type(e).__name__}): re-export it") from e
    if not model.graph.node:
        raise UserError(f"{path} is not a readable ONNX model (no graph): re-export it")
    return model


def read_info(path: str | Path, variant: str | None = None) -> ArtifactInfo:
    """The artifact's metadata; for a foreign ONNX, the registry's view of `variant` (else a UserError)."""
    model = load_onnx(path, load_weights=False)
    info = ArtifactInfo.from_props({p.key: p.value for p in model.metadata_props})
    if info is not None:
        return info
    if variant is None:
        raise UserError(f"{path} carries no swin-deploy metadata: pass `variant` NAME to say what model it is")
    cfg = get_config(variant)
    return ArtifactInfo.for_config(cfg, weights_sha256="", opset=model.opset_import[0].version, max_batch=None,
                                   static_batch=False)
