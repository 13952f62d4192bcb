"""Swin Transformer V1 and V2, written for deployment and weight-compatible with timm.

Parameter names follow timm (`patch_embed`, `layers.{i}.downsample`, `layers.{i}.blocks.{j}.attn`,
`norm`, `head.fc`) so a timm state_dict loads unchanged. Differences from timm are in how the
computation is laid out, not in what it computes (see `layers.py`):
  * the residual stream stays in window order, one constant Gather between blocks;
  * attention is 4D with batch symbolic: (B * nW, heads, N, d), or (B, nW * heads, N, d) where a shift mask
    differs per window (layers.heads_major says why);
  * relative position bias (V1 table, V2 CPB MLP) and the shifted-window mask are one additive
    tensor per block; `freeze()` turns it (and V2's clamped logit scale) into constants before export.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import (
    Mlp,
    PatchEmbed,
    PatchMerging,
    Spatial,
    attend,
    heads_major,
    inverse_order,
    merge_heads,
    project_heads,
    relative_position_index,
    shift_region_mask,
    shifted_window_mask,
    window_order,
    window_partition_index,
    window_shift_for,
)
from .registry import SwinConfig


class _WindowAttentionBase(nn.Module):
    """What V1 and V2 share: q, k, v token-major from the fused qkv weight, into heads_major's 4D layout, and back
    through the output projection. Subclasses define qkv_heads (their scaling) and position_bias."""

    num_heads: int
    window: tuple[int, int]

    def token_major(self, x: torch.Tensor, bias: list[torch.Tensor | None], num_windows) -> tuple[torch.Tensor, ...]:
        return project_heads(x, self.qkv.weight, bias, self.num_heads, num_windows * self.window_area)

    @property
    def window_area(self) -> int:
        return self.window[0] * self.window[1]

    @property
    def head_dim(self) -> int:
        return self.qkv.in_features // self.num_heads

    def to_heads(self, tensors, num_windows, per_window: bool) -> tuple[torch.Tensor, ...]:
        return tuple(heads_major(t, num_windows, self.window_area, self.num_heads, self.head_dim, per_window)
                     for t in tensors)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, num_windows, per_window: bool) -> torch.Tensor:
        """x (B, nW * N, C) in window order; bias (1 or nW, heads, N, N); `per_window`: the bias differs per window
        (see heads_major)."""
        out = attend(*self.qkv_heads(x, num_windows, per_window), bias, self.window_area)
        return self.proj(merge_heads(out, num_windows, self.num_heads, self.window_area, self.head_dim, per_window))


class WindowAttention(_WindowAttentionBase):
    """V1 window attention: scaled dot product plus a learned relative position bias table.

    (B, nW * N, C) in window order -> (B, nW * N, C).
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int]):
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) from the table."""
        N = self.window_area
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(N, N, -1).permute(2, 0, 1)

    def qkv_heads(self, x: torch.Tensor, num_windows, per_window: bool) -> tuple[torch.Tensor, ...]:
        q, k, v = self.to_heads(self.token_major(x, list(self.qkv.bias.chunk(3)), num_windows), num_windows, per_window)
        return q * self.scale, k, v


class WindowAttentionV2(_WindowAttentionBase):
    """V2 window attention: scaled cosine attention and a continuous, log-spaced position bias.

    logits = cos(q, k) * exp(min(logit_scale, log 100)) + 16 * sigmoid(cpb_mlp(log-spaced coords)).
    `pretrained_window` > 0 normalises the coordinates by the pre-training window (window transfer).
    (B, nW * N, C) in window order -> (B, nW * N, C).
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int], pretrained_window: int):
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False))
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("relative_coords_table", self.coords_table(window, pretrained_window), persistent=False)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.register_buffer("frozen_scale", None, persistent=False)

    @staticmethod
    def coords_table(window: tuple[int, int], pretrained_window: int) -> torch.Tensor:
        """Log-spaced relative coordinates in [-1, 1]-ish: (2*wh-1, 2*ww-1, 2)."""
        norm = (pretrained_window, pretrained_window) if pretrained_window > 0 else window
        axes = [torch.arange(-(w - 1), w, dtype=torch.float32) / max(n - 1, 1) for w, n in zip(window, norm)]
        table = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1) * 8
        return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N): 16 * sigmoid(cpb_mlp(table))[index]."""
        N = self.window_area
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = table[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias)

    def scale(self) -> torch.Tensor:
        if self.frozen_scale is not None:
            return self.frozen_scale
        return torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()

    def qkv_heads(self, x: torch.Tensor, num_windows, per_window: bool) -> tuple[torch.Tensor, ...]:
        q, k, v = self.token_major(x, [self.q_bias, None, self.v_bias], num_windows)
        # normalised token-major, (B, L, heads, d): OpenVINO's reduction kernel pays per leading index, and
        # B * nW of them cost it 3x the time of B
        q, k, v = self.to_heads((_l2_normalize(q), _l2_normalize(k), v), num_windows, per_window)
        # the logit scale multiplies q (N x d values) instead of the logits (N x N): same math, less work; per head,
        # so repeated per window where windows share the heads axis
        scale = self.scale()
        if per_window:
            scale = scale.expand(num_windows, -1, -1, -1).reshape(-1, 1, 1)
        return q * scale, k, v


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """F.normalize(x, dim=-1), written so the export broadcasts instead of emitting Shape/Expand."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


class SwinBlock(nn.Module):
    """One (shifted-)window transformer block. V1: pre-norm residuals; V2: res-post-norm.

    Static geometry: input (B, L, C) in the previous layout; `reorder` (L,) moves it into this block's window
    order first (absent when the orders agree); output (B, L, C) in this block's window order.
    Spatial geometry: a Spatial, (B, H * W, C) in spatial order in and out, any H and W; the window indices,
    padding and shift mask are built from H and W (see layers.window_partition_index): traced sizes for a
    dynamic-size model, constants for a static one whose grids need padding.
    """

    def __init__(self, cfg: SwinConfig, dim: int, num_heads: int, window: tuple[int, int], shift: tuple[int, int],
                 pretrained_window: int, grid: tuple[int, int] | None = None, reorder: torch.Tensor | None = None,
                 keep_shift: bool = False):
        super().__init__()
        self.post_norm = cfg.version == 2
        self.window, self.shift = window, shift
        # transformers' SwinBackbone shifts even a single window; its Swinv2 keeps the shifts of its config's size
        self.always_partition = cfg.always_partition or keep_shift
        self.square_shift, self.pad_first = cfg.square_shift, cfg.pad_first
        self.num_windows = (grid[0] // window[0]) * (grid[1] // window[1]) if grid else None
        self.norm1 = nn.LayerNorm(dim)
        if cfg.version == 2:
            self.attn = WindowAttentionV2(dim, num_heads, window, pretrained_window)
        else:
            self.attn = WindowAttention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        self.register_buffer("reorder", reorder, persistent=False)
        mask = shifted_window_mask(grid, window, shift) if grid else None
        self.register_buffer("attn_mask", None if mask is None else mask.unsqueeze(1), persistent=False)
        self.register_buffer("frozen_position_bias", None, persistent=False)
        self.register_buffer("frozen_bias", None, persistent=False)

    def position_bias(self) -> torch.Tensor:
        """(1, heads, N, N): the attention module's relative position bias."""
        if self.frozen_position_bias is not None:
            return self.frozen_position_bias
        return self.attn.position_bias().unsqueeze(0)

    def attn_bias(self) -> torch.Tensor:
        """Static geometry: position bias plus shift mask, one additive tensor (nW or 1, heads, N, N)."""
        if self.frozen_bias is not None:
            return self.frozen_bias
        bias = self.position_bias()
        return bias if self.attn_mask is None else bias + self.attn_mask

    def freeze(self) -> None:
        """Precompute everything that depends on weights only (for export and fast inference)."""
        with torch.no_grad():
            self.frozen_position_bias = self.attn.position_bias().unsqueeze(0).contiguous()
            self.frozen_bias = self.attn_bias().contiguous()
            if isinstance(self.attn, WindowAttentionV2):
                self.attn.frozen_scale = self.attn.scale().clone()

    def residual(self, x: torch.Tensor, attend_fn) -> torch.Tensor:
        if self.post_norm:
            x = x + self.norm1(attend_fn(x))
            return x + self.norm2(self.mlp(x))
        x = x + attend_fn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor | Spatial) -> torch.Tensor | Spatial:
        if isinstance(x, Spatial):
            return Spatial(self._spatial(*x), x.H, x.W)
        if self.reorder is not None:
            x = x.index_select(1, self.reorder)
        per_window = self.attn_mask is not None
        return self.residual(x, lambda t: self.attn(t, self.attn_bias(), self.num_windows, per_window))

    def _spatial(self, x: torch.Tensor, H, W) -> torch.Tensor:
        (wh, ww), (sh, sw) = self.window, self.shift
        # timm's rule: an axis that fits in one window gets no shift (arithmetic, not control flow); transformers'
        # SwinBackbone keeps it (dynamic sizes give every stage at least one whole window)
        if self.always_partition or not (sh or sw):
            shift = (sh, sw)
        elif self.square_shift:  # transformers' Swin: an axis one window covers takes the shift off both
            shifted = (H > wh) & (W > ww)
            shift = (sh * shifted, sw * shifted)
        else:
            shift = (sh * (H > wh), sw * (W > ww))
        index, inverse = window_partition_index((H, W), self.window, shift, self.pad_first)
        num_windows = ((H + wh - 1) // wh) * ((W + ww - 1) // ww)
        bias = self.position_bias()
        if sh or sw:
            bias = bias + shift_region_mask((H, W), self.window, shift).unsqueeze(1)

        def windowed(t: torch.Tensor) -> torch.Tensor:
            # padding positions gather an appended zero token, as timm and transformers pad with zeros (a constant Pad:
            # no Shape op for the batch)
            padded = F.pad(t, (0, 0, 0, 1))
            out = self.attn(padded.index_select(1, index), bias, num_windows, bool(sh or sw))
            return out.index_select(1, inverse)

        return self.residual(x, windowed)


def stage_specs(cfg: SwinConfig, index: int, grid: tuple[int, int] | None) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(window, shift) per axis of each block of stage `index` at a static `grid` (None: dynamic geometry, which
    keeps the configured window: its sizes give every stage grid one whole window, or pad a smaller grid to it where
    the model does so too, SwinConfig.keeps_window)."""
    w = cfg.window_size
    if cfg.shifts_fixed_at(cfg.img_size if grid else None):
        # transformers' Swinv2 away from its config's size: its window, and the shifts decided there
        return [((w, w), shift) for shift in cfg.fixed_shifts(index)]
    shifts = [0 if j % 2 == 0 else w // 2 for j in range(cfg.depths[index])]
    if grid is None:
        return [((w, w), (s, s)) for s in shifts]
    return [window_shift_for(grid, w, s, cfg.always_partition, cfg.square_shift, cfg.keep_window) for s in shifts]


def pads(cfg: SwinConfig) -> bool:
    """Whether a static model at cfg.img_size needs padding to whole windows (some stage's windows do not tile its
    grid), and so runs its blocks on spatial order as dynamic geometry does."""
    return any(g % win for i, grid in enumerate(cfg.stage_grids(cfg.img_size))
               for window, _ in stage_specs(cfg, i, grid) for g, win in zip(grid, window))


class SwinStage(nn.Module):
    """Optional patch merging, then `depth` blocks alternating regular and shifted windows.

    Window order (`grid` given, `spatial` False): (B, L_in, C_in) in the previous layout -> (B, L, C) in the last
    block's window order; `orders` holds each block's window order (spatial index per position). Spatial (dynamic
    geometry, `grid` None, or a static grid that needs padding): a Spatial in and out, in spatial order.
    """

    def __init__(self, cfg: SwinConfig, index: int, dim: int, grid: tuple[int, int] | None,
                 prev_order: torch.Tensor | None, prev_grid: tuple[int, int] | None, first: bool, spatial: bool = False):
        super().__init__()
        self.grid, self.dim = grid, dim
        specs = stage_specs(cfg, index, grid)
        keep_shift = cfg.shifts_fixed_at(cfg.img_size if grid else None)
        ordered = grid is not None and not spatial
        self.orders = [window_order(grid, window, shift) for window, shift in specs] if ordered else []
        if first:
            self.downsample: nn.Module = nn.Identity()
        else:
            gather = PatchMerging.gather_index(prev_grid, prev_order, self.orders[0]) if ordered else None
            self.downsample = PatchMerging(dim // 2, gather, post_norm=cfg.version == 2)
        current = prev_order if first else (self.orders[0] if ordered else None)
        blocks = []
        for j, (window, shift) in enumerate(specs):
            reorder = None
            if ordered:
                order = self.orders[j]
                reorder = None if torch.equal(order, current) else inverse_order(current)[order]
                current = order
            blocks.append(SwinBlock(cfg, dim, cfg.num_heads[index], window, shift, cfg.pretrained_window_sizes[index],
                                    grid if ordered else None, reorder, keep_shift=keep_shift))
        self.blocks = nn.Sequential(*blocks)
        if ordered:  # static features: back from the last window order to spatial order
            self.register_buffer("to_spatial", inverse_order(self.orders[-1]), persistent=False)

    def forward(self, x: torch.Tensor | Spatial) -> torch.Tensor | Spatial:
        return self.blocks(self.downsample(x))


class SwinTransformer(nn.Module):
    """Swin Transformer (V1 or V2 by `cfg.version`).

    (B, C_in, H, W) float32 -> (B, num_classes) logits; headless (`num_classes` 0): (B, F) pooled, normalised
    features (timm's num_classes=0); a transformers backbone (`cfg.backbone`): its stage maps, each (B, C_i, H_i, W_i)
    (SwinBackbone: after a LayerNorm of its own). Static geometry (default): H, W = cfg.img_size, built into constants
    (window order where the windows tile every stage grid, else spatial order with padding: `spatial`).
    `dynamic=True`: any H, W that are multiples of `cfg.stride`, from SwinConfig.dynamic_min_size; geometry is computed
    from the input's shape.
    """

    def __init__(self, cfg: SwinConfig, dynamic: bool = False):
        super().__init__()
        if not dynamic:
            cfg.check_img_size(cfg.img_size)
        # a static size whose windows do not tile some stage grid runs the spatial path with constant geometry
        self.cfg, self.dynamic, self.spatial = cfg, dynamic, dynamic or pads(cfg)
        grid = None if dynamic else (cfg.img_size[0] // cfg.patch_size, cfg.img_size[1] // cfg.patch_size)
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim, self.spatial, grid)
        order = None if self.spatial else torch.arange(grid[0] * grid[1])  # patch embedding: row-major spatial order
        prev_grid = None
        stages = []
        for i in range(len(cfg.depths)):
            stage = SwinStage(cfg, i, cfg.embed_dim * 2**i, grid, order, prev_grid, first=i == 0, spatial=self.spatial)
            stages.append(stage)
            if grid:
                order, prev_grid = (None if self.spatial else stage.orders[-1]), grid
                grid = (grid[0] // 2, grid[1] // 2)
        self.layers = nn.Sequential(*stages)
        self.num_features = cfg.embed_dim * 2 ** (len(cfg.depths) - 1)
        if cfg.backbone is None:
            self.norm = nn.LayerNorm(self.num_features)
            self.head = nn.Module()
            self.head.fc = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes else nn.Identity()
        elif cfg.backbone_norms:
            self.stage_norms = nn.ModuleDict({name: nn.LayerNorm(cfg.embed_dim * 2 ** cfg.map_level(name))
                                              for name in cfg.backbone})
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, WindowAttention):
            nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02)

    def output_names(self) -> list[str]:
        """What forward returns, as an exported graph names it."""
        if self.cfg.backbone is not None:
            return list(self.cfg.backbone)
        return ["features"] if self.cfg.headless else ["logits"]

    def freeze(self) -> SwinTransformer:
        """Turn weight-only subgraphs (position bias + mask, V2 logit scale) into constants. Returns self."""
        for stage in self.layers:
            for block in stage.blocks:
                block.freeze()
        return self

    def frozen_bytes(self) -> tuple[int, int]:
        """(weights, frozen attention biases and masks) in bytes: the constants a fixed-size export writes."""
        weights = sum(p.numel() * p.element_size() for p in self.parameters())
        biases = sum(block.frozen_bias.numel() * block.frozen_bias.element_size() for stage in self.layers
                     for block in stage.blocks if block.frozen_bias is not None)
        return weights, biases

    def forward_stages(self, x: torch.Tensor, stem: bool = False) -> list[torch.Tensor]:
        """(B, C_in, H, W) -> each stage's output (B, C_i, H_i, W_i), NCHW, before the final norm (as timm's
        forward_intermediates with norm=False); `stem`: the patch embedding's map first."""
        x = self.patch_embed(x)
        H, W = (x.H, x.W) if self.spatial else self.cfg.stage_grids(self.cfg.img_size)[0]
        outs = [(x.x if self.spatial else x).reshape(-1, H, W, self.cfg.embed_dim).permute(0, 3, 1, 2)] if stem else []
        for stage in self.layers:
            x = stage(x)
            if self.spatial:
                spatial, H, W = x
            else:
                H, W = stage.grid
                spatial = x.index_select(1, stage.to_spatial)
            outs.append(spatial.reshape(-1, H, W, stage.dim).permute(0, 3, 1, 2))
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, L_last, C_last) after the final norm (window order where the windows tile)."""
        x = self.layers(self.patch_embed(x))
        return self.norm(x.x if self.spatial else x)

    def forward_backbone(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> transformers' backbone maps: the stages of cfg.backbone, NCHW (SwinBackbone: each
        through its LayerNorm over channels)."""
        maps = dict(zip(self.cfg.map_names, self.forward_stages(x, stem=True)))
        if not self.cfg.backbone_norms:
            return tuple(maps[n] for n in self.cfg.backbone)
        return tuple(self.stage_norms[n](maps[n].permute(0, 2, 3, 1)).permute(0, 3, 1, 2) for n in self.cfg.backbone)

    def forward(self, x: torch.Tensor):
        if self.cfg.backbone is not None:
            return self.forward_backbone(x)
        return self.head.fc(self.forward_features(x).mean(dim=1))


class FeatureMaps(nn.Module):
    """(B, 3, H, W) -> the stage feature maps (stage1..stageN, NCHW): the module a --features export traces."""

    def __init__(self, model: SwinTransformer):
        super().__init__()
        self.model = model

    @property
    def cfg(self):
        return self.model.cfg

    def output_names(self) -> list[str]:
        return [f"stage{i + 1}" for i in range(len(self.model.cfg.depths))]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.forward_stages(x))


class PixelInput(nn.Module):
    """Raw pixels in: (B, C, H, W) or, channels_last, (B, H, W, C) uint8 -> the wrapped model's outputs.

    The model's normalisation ((p / 255 - mean) / std, as timm's ToTensor + Normalize) is folded into a copy
    of its patch-embedding convolution, so the graph adds one Cast (and one Transpose for NHWC) and nothing else.
    """

    def __init__(self, module: SwinTransformer | FeatureMaps, mean, std, channels_last: bool = False):
        super().__init__()
        self.module = copy.deepcopy(module)
        model = self.module.model if isinstance(self.module, FeatureMaps) else self.module
        model.patch_embed.fold_normalization(mean, std)
        self.channels_last = channels_last

    @property
    def cfg(self):
        return self.module.cfg

    def output_names(self) -> list[str]:
        return self.module.output_names()

    def forward(self, x: torch.Tensor):
        # Cast before the Transpose: TensorRT takes a uint8 network input only straight into a Cast
        x = x.float()
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        # forward, not a call: the graph then names the wrapped model's nodes as its float export does
        # (/layers/layers.1/..., not /module/layers/layers.1/...), so one --exclude glob fits both
        return self.module.forward(x)


def output_module(model: SwinTransformer, feature_maps: bool) -> nn.Module:
    """What an export traces and verify's PyTorch reference runs: timm's stage maps (FeatureMaps) for a --features
    export; the model itself otherwise (a transformers backbone returns its own maps already)."""
    return FeatureMaps(model) if feature_maps and model.cfg.backbone is None else model
