"""Variant registry: short name -> frozen architecture and preprocessing config.

Preprocessing (mean, std, interpolation, crop_pct, num_classes) is copied from timm's
pretrained_cfg of each model's default tag; `tests/test_models.py` checks it against the
installed timm so the two never drift apart silently.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..errors import UserError
from ..parsing import as_hw

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def channel_stats(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """Per-channel normalisation for `channels` inputs from a statistic given per channel, once for all, or for RGB
    (ImageNet's, on a grayscale or multispectral model: their average for every channel, as timm's adapt_input_conv
    sums the RGB filters into one)."""
    if len(values) == channels:
        return values
    if len(values) in (1, 3):
        return (round(sum(values) / len(values), 6),) * channels
    raise UserError(f"{len(values)} normalisation values for a {channels}-channel model: give one per channel")


INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")  # timm's eval resize modes
CROP_MODES = ("center", "squash", "border")  # timm's eval crop modes


@dataclass(frozen=True)
class Preprocessing:
    """How a fine-tune's images are prepared where its checkpoint does not say (a timm state_dict carries no
    preprocessing; a variant's is timm's pretrained one): any field given replaces the variant's or config's."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None
    crop_pct: float | None = None
    crop_mode: str | None = None

    def __post_init__(self) -> None:
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and not all(map(math.isfinite, values)):
                raise UserError(f"`{name}` must be finite numbers, not {', '.join(map(str, values))}")
        if self.std is not None and min(self.std) <= 0:
            raise UserError(f"`std` must be positive, not {', '.join(map(str, self.std))}")
        if self.interpolation is not None and self.interpolation not in INTERPOLATIONS:
            raise UserError(f"unknown `interpolation` '{self.interpolation}': choose {', '.join(INTERPOLATIONS)}")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise UserError(f"`crop_pct` must be in (0, 1], not {self.crop_pct}")
        if self.crop_mode is not None and self.crop_mode not in CROP_MODES:
            raise UserError(f"unknown `crop_mode` '{self.crop_mode}': choose {', '.join(CROP_MODES)}")

    def over(self, under: Preprocessing | None) -> Preprocessing:
        """These settings, and `under`'s where these give none."""
        if under is None:
            return self
        return Preprocessing(**{k: v if v is not None else getattr(under, k) for k, v in asdict(self).items()})

    def left_by(self, above: Preprocessing | None) -> Preprocessing | None:
        """These settings where `above` gives none: what `above.over(self)` takes from here (None: nothing)."""
        left = Preprocessing(**{k: v if above is None or getattr(above, k) is None else None
                                for k, v in asdict(self).items()})
        return None if left == Preprocessing() else left

    def apply(self, cfg: SwinConfig) -> SwinConfig:
        given = {k: v for k, v in asdict(self).items() if v is not None}
        return replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})


@dataclass(frozen=True)
class SwinConfig:
    name: str
    version: int  # 1 or 2
    img_size: tuple[int, int]
    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int
    timm_name: str | None = None
    patch_size: int = 4
    mlp_ratio: float = 4.0
    pretrained_window_sizes: tuple[int, ...] = (0, 0, 0, 0)
    num_classes: int = 1000
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.9
    # timm's eval crop_mode: "center" (the short side to size / crop_pct, then a center crop) or "squash" (both sides
    # to the size, aspect ratio not kept: transformers' ViTImageProcessor, the one its Swin checkpoints name)
    crop_mode: str = "center"
    bundled_weights: str | None = None  # file name under swin_deploy/weights/ (demo models)
    labels: tuple[str, ...] | None = None
    in_chans: int = 3  # input channels: 1 for grayscale, 4+ for multispectral
    # transformers' SwinBackbone/Swinv2Backbone: the stages it returns (its out_features, "stem" and/or "stageN");
    # such a model has no final norm and no classifier. SwinBackbone (not Swinv2Backbone) normalises each with a
    # LayerNorm of its own (backbone_norms) and keeps the shifted window on grids of exactly one window
    # (always_partition)
    backbone: tuple[str, ...] | None = None
    backbone_norms: bool = False
    always_partition: bool = False
    # transformers' Swinv2 decides each block's shift once, at its config's image_size (none on an axis one window
    # covers there), and keeps it and the window at every input size; timm, and transformers' Swin, decide per size
    shifts_at: tuple[int, int] | None = None
    # transformers' Swin drops a block's shift on both axes when either axis of its stage grid fits one window; timm
    # decides per axis
    square_shift: bool = False
    # transformers pads a stage grid to whole windows before the cyclic shift, timm after (see
    # layers.window_partition_index); the two agree where the windows tile the grid
    pad_first: bool = False
    # torchvision's Swin keeps its window on stage grids smaller than it (padded to it), with timm's per-axis shift rule
    # (no shift on an axis one window covers); timm and transformers' Swin shrink the window to such a grid
    keep_window: bool = False

    def __post_init__(self) -> None:
        if self.in_chans < 1:
            raise UserError(f"a model needs at least one input channel, not {self.in_chans}")
        if self.backbone is not None:
            unknown = [s for s in self.backbone if s not in self.map_names]
            if unknown:
                raise UserError(f"backbone output '{unknown[0]}' is not one of {', '.join(self.map_names)}")
            object.__setattr__(self, "num_classes", 0)
        elif self.backbone_norms or self.always_partition:
            raise UserError("`backbone_norms` and `always_partition` describe a transformers backbone: set `backbone`")
        for stat in ("mean", "std"):
            object.__setattr__(self, stat, channel_stats(tuple(getattr(self, stat)), self.in_chans))

    @property
    def map_names(self) -> tuple[str, ...]:
        """The feature maps a model has: "stem" (the patch embedding's) and "stage1".."stageN"."""
        return ("stem", *(f"stage{i + 1}" for i in range(len(self.depths))))

    def map_level(self, name: str) -> int:
        """How many times a feature map is downsampled after the patch embedding: stem and stage1 0, stageN N-1;
        its channels are embed_dim * 2**level and its stride patch_size * 2**level."""
        return 0 if name == "stem" else int(name.removeprefix("stage")) - 1

    @property
    def headless(self) -> bool:
        """No classifier: the model outputs pooled features (timm's num_classes=0) or a backbone's stage maps."""
        return self.num_classes == 0

    @property
    def stride(self) -> int:
        """Total downsampling: the input must be a multiple of this."""
        return self.patch_size * 2 ** (len(self.depths) - 1)

    def activation_bytes(self, img_size: tuple[int, int]) -> float:
        """One image's largest float32 activation at `img_size`, at stage 1: its MLP hidden layer (tokens x 4C) or
        its attention scores (tokens x heads x a window's tokens), whichever is larger (the scores, from 16x16
        windows: 1.3 GiB for swinv2_b_192to384 at 1536x1536, 4.5 times its MLP's)."""
        h, w = self.stage_grids(img_size)[0]
        wh, ww = min(self.window_size, h), min(self.window_size, w)
        windows = -(-h // wh) * -(-w // ww)  # the grid padded to whole windows
        return max(h * w * self.embed_dim * self.mlp_ratio, windows * self.num_heads[0] * (wh * ww) ** 2) * 4

    def stage_grids(self, img_size: tuple[int, int]) -> list[tuple[int, int]]:
        g = (img_size[0] // self.patch_size, img_size[1] // self.patch_size)
        return [(g[0] >> i, g[1] >> i) for i in range(len(self.depths))]

    def shifts_fixed_at(self, img_size: tuple[int, int] | None) -> bool:
        """Whether a model at `img_size` (None: any, dynamic) takes its shifts from `shifts_at`: where the two
        sizes differ (at `shifts_at` itself both rules agree)."""
        return self.shifts_at is not None and (img_size is None or tuple(img_size) != tuple(self.shifts_at))

    def fixed_shifts(self, index: int) -> list[tuple[int, int]]:
        """Stage `index`'s block shifts as transformers' Swinv2 decides them at `shifts_at`, per axis."""
        assert self.shifts_at is not None
        grid = self.stage_grids(self.shifts_at)[index]
        if min(grid) < self.window_size:
            raise UserError(f"transformers' Swinv2 shrinks stage {index + 1}'s window to its {grid[0]}x{grid[1]} grid at "
                            f"image_size {self.shifts_at[0]}x{self.shifts_at[1]} and keeps it at every input size, "
                            "which is not supported: export it at that size")
        half = self.window_size // 2
        return [(0, 0) if j % 2 == 0 else tuple(0 if g <= self.window_size else half for g in grid)
                for j in range(self.depths[index])]

    @property
    def keeps_window(self) -> bool:
        """Whether the window stays the configured one on stage grids smaller than it (padded to it): transformers'
        SwinBackbone (always_partition) and its Swinv2 (shifts fixed at its config's size), and torchvision's Swin
        (keep_window). timm and transformers' Swin shrink the window to such a grid instead."""
        return self.always_partition or self.shifts_at is not None or self.keep_window

    @property
    def dynamic_min_size(self) -> int:
        """Smallest side for a dynamic-size export: every stage grid must hold at least one full window where the
        window shrinks to smaller grids (per size, which would need control flow in the graph); one stride where it
        stays and the grid is padded."""
        return self.stride if self.keeps_window else self.window_size * self.stride

    def check_dynamic_range(self, min_size: tuple[int, int], max_size: tuple[int, int]) -> None:
        low = self.dynamic_min_size
        for s in (*min_size, *max_size):
            if s % self.stride:
                raise UserError(f"dynamic sizes must be multiples of {self.stride} for {self.name}, not {s}")
        if min(min_size) < low:
            raise UserError(f"`min_size` for {self.name} must be at least {low} on each side "
                            f"(every stage needs one full {self.window_size}x{self.window_size} window)")
        if any(a > b for a, b in zip(min_size, max_size)):
            raise UserError(f"`min_size` {min_size[0]}x{min_size[1]} exceeds `max_size` {max_size[0]}x{max_size[1]} on "
                            "a side: pass a min no larger than the max")

    def for_dynamic(self, min_size: tuple[int, int] | None, max_size: tuple[int, int] | None
                    ) -> tuple[SwinConfig, tuple[tuple[int, int], tuple[int, int]]]:
        """The config and (min, max) range of a dynamic-size export. Defaults: the smallest size with full
        windows, and twice the larger of the default size and that. The config's size moves into the range if it lies
        outside."""
        low = self.dynamic_min_size
        lo = min_size or (low, low)
        hi = max_size or (2 * max(self.img_size[0], lo[0]), 2 * max(self.img_size[1], lo[1]))
        self.check_dynamic_range(lo, hi)
        inside = lo[0] <= self.img_size[0] <= hi[0] and lo[1] <= self.img_size[1] <= hi[1]
        return (self if inside else replace(self, img_size=lo)), (lo, hi)

    def check_img_size(self, img_size: tuple[int, int]) -> None:
        if min(img_size) < 1:
            raise UserError(f"image size must be positive, not {img_size[0]}x{img_size[1]}")
        if any(s % self.stride for s in img_size):
            # the nearest fitting sizes below and above (a side that fits stays as it is)
            down = "x".join(str(s - s % self.stride or self.stride) for s in img_size)
            up = "x".join(str(s + -s % self.stride) for s in img_size)
            raise UserError(
                f"{self.name} takes input sides that are multiples of {self.stride} (patch {self.patch_size}, then "
                f"{len(self.depths) - 1} patch mergings), not {img_size[0]}x{img_size[1]}: e.g. "
                + (down if down == up else f"{down} or {up}"))
        small = [(i, g) for i, g in enumerate(self.stage_grids(img_size), start=1) if min(g) < self.window_size]
        if small and self.pad_first and self.version == 1 and not self.always_partition and not self.keep_window:
            i, (h, w) = small[0]
            # transformers' Swin shrinks such a stage's window to the grid but keeps a position-bias table sized for
            # the configured window, so its own forward fails (checked with transformers 5); Swinv2 rebuilds its bias
            raise UserError(f"at {img_size[0]}x{img_size[1]} stage {i}'s grid ({h}x{w}) is smaller than window_size "
                            f"{self.window_size}, which transformers' Swin cannot run either (its position bias is sized "
                            "for the window): there is no reference to export against; use a larger size")

    def with_img_size(self, size: tuple[int, int] | int) -> SwinConfig:
        size = as_hw(size, "img_size")
        self.check_img_size(size)
        return replace(self, img_size=size)

    def at_size(self, size: tuple[int, int] | None, dynamic: bool = False) -> SwinConfig:
        """This config at input `size` (None: its own). A static size must be a multiple of the stride (stages
        that do not tile into windows are padded); a dynamic-size model's range is checked by `for_dynamic`."""
        size = as_hw(size, "img_size")
        if size is None or size == tuple(self.img_size):
            return self
        if min(size) < 1:
            raise UserError(f"image size must be positive, not {size[0]}x{size[1]}")
        return replace(self, img_size=size) if dynamic else self.with_img_size(size)

    def weights_shape(self) -> tuple:
        """What a timm-layout state_dict of this model shows of its architecture: version, patch size, embedding
        width, depths, heads and mlp width, and V1's window (its position tables are (2w-1)^2 long; V2's window
        leaves no trace in its tensors). Channel and class counts are left out: a checkpoint's own are taken."""
        return (self.version, self.patch_size, self.embed_dim, self.depths, self.num_heads,
                int(self.embed_dim * self.mlp_ratio), self.window_size if self.version == 1 else None)

    def architecture(self) -> dict:
        """Everything but the class names, as JSON-ready data: what an artifact records to rebuild its model."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k != "labels"}

    @classmethod
    def from_architecture(cls, arch: dict, labels: tuple[str, ...] | None = None) -> SwinConfig:
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items() if k in known}
        return cls(**values, labels=labels)

    def summary(self) -> dict:
        """What `swin-deploy variants --json` lists for this variant."""
        return dict(name=self.name, timm_name=self.timm_name, version=self.version, input_size=list(self.img_size),
                    window=self.window_size, params_m=round(self.params / 1e6, 2), gmacs=round(self.gmacs(), 2),
                    num_classes=self.num_classes)

    @property
    def params(self) -> int:
        """Parameter count, from the architecture alone."""
        C, total = self.embed_dim, 0
        total += self.in_chans * self.patch_size**2 * C + C + 2 * C  # patch embed conv + norm
        for i, (depth, grid) in enumerate(zip(self.depths, self.stage_grids(self.img_size))):
            d, h = C * 2**i, self.num_heads[i]
            if i > 0:
                total += 4 * (d // 2) * d + 2 * (d if self.version == 2 else 4 * (d // 2))
            hidden = int(d * self.mlp_ratio)
            per_block = 4 * d + 3 * d * d + 3 * d + d * d + d + d * hidden + hidden + hidden * d + d
            wh, ww = (min(g, self.window_size) for g in grid)
            if self.version == 1:
                per_block += (2 * wh - 1) * (2 * ww - 1) * h
            else:
                per_block += h + 2 * 512 + 512 + 512 * h - d  # logit scale, cpb mlp; qkv has q,v bias only
            total += depth * per_block
        F = C * 2 ** (len(self.depths) - 1)
        if self.backbone is not None:  # no final norm or head; SwinBackbone: a LayerNorm per returned stage
            return total + self.backbone_norms * sum(2 * C * 2 ** self.map_level(s) for s in self.backbone)
        return total + 2 * F + F * self.num_classes + self.num_classes

    def gmacs(self, img_size: tuple[int, int] | None = None) -> float:
        """Multiply-accumulates of the matmuls and convolutions, in billions: the unit of timm's model cards and what
        the Swin papers call FLOPs (4.5G for swin_t). V2's position-bias MLP is left out: it depends on no input, so
        the export computes it once into a constant."""
        img_size = img_size or self.img_size
        C, macs = self.embed_dim, 0
        grids = self.stage_grids(img_size)
        macs += grids[0][0] * grids[0][1] * self.in_chans * self.patch_size**2 * C
        for i, depth in enumerate(self.depths):
            d, L = C * 2**i, grids[i][0] * grids[i][1]
            if i > 0:
                macs += L * 4 * (d // 2) * d
            win = [min(g, self.window_size) for g in grids[i]]
            N = win[0] * win[1]
            padded = math.prod(-(-g // w) * w for g, w in zip(grids[i], win))  # attention runs on whole windows
            macs += depth * (padded * (4 * d * d + 2 * N * d) + 2 * L * d * int(d * self.mlp_ratio))
        F = C * 2 ** (len(self.depths) - 1)
        return (macs + F * self.num_classes) / 1e9


def _v1(name: str, timm_name: str, dim: int, depths, heads, window: int, size: int) -> SwinConfig:
    return SwinConfig(name=name, version=1, img_size=(size, size), embed_dim=dim, depths=depths, num_heads=heads,
                      window_size=window, timm_name=timm_name, crop_pct=1.0 if size >= 384 else 0.9)


def _v2(name: str, timm_name: str, dim: int, depths, heads, window: int, size: int, pretrained=(0, 0, 0, 0),
        num_classes: int = 1000) -> SwinConfig:
    return SwinConfig(name=name, version=2, img_size=(size, size), embed_dim=dim, depths=depths, num_heads=heads,
                      window_size=window, timm_name=timm_name, pretrained_window_sizes=pretrained,
                      crop_pct=1.0 if size >= 384 else 0.9, num_classes=num_classes)


_T, _S = (2, 2, 6, 2), (2, 2, 18, 2)
_H96, _H128, _H192 = (3, 6, 12, 24), (4, 8, 16, 32), (6, 12, 24, 48)
_PT = (12, 12, 12, 6)
DIGIT_LABELS = tuple(str(i) for i in range(10))

_ALL = [
    _v1("swin_t", "swin_tiny_patch4_window7_224", 96, _T, _H96, 7, 224),
    _v1("swin_s", "swin_small_patch4_window7_224", 96, _S, _H96, 7, 224),
    _v1("swin_b", "swin_base_patch4_window7_224", 128, _S, _H128, 7, 224),
    _v1("swin_b_384", "swin_base_patch4_window12_384", 128, _S, _H128, 12, 384),
    _v1("swin_l", "swin_large_patch4_window7_224", 192, _S, _H192, 7, 224),
    _v1("swin_l_384", "swin_large_patch4_window12_384", 192, _S, _H192, 12, 384),
    _v2("swinv2_t", "swinv2_tiny_window8_256", 96, _T, _H96, 8, 256),
    _v2("swinv2_t_w16", "swinv2_tiny_window16_256", 96, _T, _H96, 16, 256),
    _v2("swinv2_s", "swinv2_small_window8_256", 96, _S, _H96, 8, 256),
    _v2("swinv2_s_w16", "swinv2_small_window16_256", 96, _S, _H96, 16, 256),
    _v2("swinv2_b", "swinv2_base_window8_256", 128, _S, _H128, 8, 256),
    _v2("swinv2_b_w16", "swinv2_base_window16_256", 128, _S, _H128, 16, 256),
    _v2("swinv2_b_192", "swinv2_base_window12_192", 128, _S, _H128, 12, 192, num_classes=21841),
    _v2("swinv2_b_192to256", "swinv2_base_window12to16_192to256", 128, _S, _H128, 16, 256, _PT),
    _v2("swinv2_b_192to384", "swinv2_base_window12to24_192to384", 128, _S, _H128, 24, 384, _PT),
    _v2("swinv2_l_192", "swinv2_large_window12_192", 192, _S, _H192, 12, 192, num_classes=21841),
    _v2("swinv2_l_192to256", "swinv2_large_window12to16_192to256", 192, _S, _H192, 16, 256, _PT),
    _v2("swinv2_l_192to384", "swinv2_large_window12to24_192to384", 192, _S, _H192, 24, 384, _PT),
    # tiny configurations for fast tests (random weights only)
    SwinConfig(name="swin_test", version=1, img_size=(64, 64), embed_dim=16, depths=(2, 2, 2), num_heads=(2, 2, 4),
               window_size=4, num_classes=10, pretrained_window_sizes=(0, 0, 0)),
    SwinConfig(name="swinv2_test", version=2, img_size=(64, 64), embed_dim=16, depths=(2, 2, 2), num_heads=(2, 2, 4),
               window_size=4, num_classes=10, pretrained_window_sizes=(3, 3, 2)),
    # demo models trained on scikit-learn's handwritten digits (scripts/train_demo.py); weights ship in the package
    SwinConfig(name="swin_digits", version=1, img_size=(32, 32), patch_size=2, embed_dim=32, depths=(2, 2, 2),
               num_heads=(2, 4, 8), window_size=4, num_classes=10, pretrained_window_sizes=(0, 0, 0),
               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear", crop_pct=1.0,
               bundled_weights="swin_digits.safetensors", labels=DIGIT_LABELS),
    SwinConfig(name="swinv2_digits", version=2, img_size=(32, 32), patch_size=2, embed_dim=32, depths=(2, 2, 2),
               num_heads=(2, 4, 8), window_size=4, num_classes=10, pretrained_window_sizes=(0, 0, 0),
               mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear", crop_pct=1.0,
               bundled_weights="swinv2_digits.safetensors", labels=DIGIT_LABELS),
]

VARIANTS: dict[str, SwinConfig] = {c.name: c for c in _ALL}
_BY_TIMM = {c.timm_name: c for c in _ALL if c.timm_name}


def registered(name: str) -> bool:
    """Whether `name` is a registered variant's short or timm name."""
    try:
        get_config(name)
    except UserError:
        return False
    return True


def get_config(name: str) -> SwinConfig:
    """Look a variant up by short name or full timm name (a timm pretrained tag like `.ms_in1k` is ignored)."""
    key = name.strip().lower()  # timm names are lower case; SWIN_T is no other model
    base = key.split(".")[0]
    if key in VARIANTS:
        return VARIANTS[key]
    if base in _BY_TIMM:
        return _BY_TIMM[base]
    close = difflib.get_close_matches(key, list(VARIANTS) + list(_BY_TIMM), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UserError(f"unknown variant '{name}': {hint}`swin-deploy variants` lists them all")
