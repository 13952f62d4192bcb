"""Swin Transformer V1 and V2, written for deployment and weight-compatible with timm.

Parameter names follow timm (`patch_embed`, `layers.{i}.downsample`, `layers.{i}.blocks.{j}.attn`,
`norm`, `head.fc`) so a timm state_dict loads unchanged. Differences from timm are in how the
computation is laid out, not in what it computes (see `layers.py`):
  * the residual stream stays in window order, one constant Gather between blocks;
  * attention runs on (B, nW, heads, N, d) with batch symbolic, never on B * nW;
  * relative position bias (V1 table, V2 CPB MLP) and the shifted-window mask are one additive
    tensor per block; `freeze()` turns it (and V2's clamped logit scale) into constants before export.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .layers import (
    Mlp,
    PatchEmbed,
    PatchMerging,
    attend,
    inverse_order,
    merge_heads,
    project_heads,
    relative_position_index,
    shifted_window_mask,
    window_order,
    window_shift_for,
)
from .registry import SwinConfig


class WindowAttention(nn.Module):
    """V1 window attention: scaled dot product plus a learned relative position bias table.

    (B, nW * N, C) in window order -> (B, nW * N, C).
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int], num_windows: int):
        super().__init__()
        self.num_heads, self.window, self.num_windows = num_heads, window, num_windows
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window[0] - 1) * (2 * window[1] - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) from the table."""
        N = self.window[0] * self.window[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(N, N, -1).permute(2, 0, 1)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = self.qkv.bias.chunk(3)
        q, k, v = project_heads(x, self.qkv.weight, list(b), self.num_windows, self.window[0] * self.window[1],
                                self.num_heads)
        return q * self.scale, k, v

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.proj(merge_heads(attend(*self.qkv_heads(x), bias)))


class WindowAttentionV2(nn.Module):
    """V2 window attention: scaled cosine attention and a continuous, log-spaced position bias.

    logits = cos(q, k) * exp(min(logit_scale, log 100)) + 16 * sigmoid(cpb_mlp(log-spaced coords)).
    `pretrained_window` > 0 normalises the coordinates by the pre-training window (window transfer).
    (B, nW * N, C) in window order -> (B, nW * N, C).
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int], num_windows: int, pretrained_window: int):
        super().__init__()
        self.num_heads, self.window, self.num_windows = num_heads, window, num_windows
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
        N = self.window[0] * self.window[1]
        table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = table[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias)

    def scale(self) -> torch.Tensor:
        if self.frozen_scale is not None:
            return self.frozen_scale
        return torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v = project_heads(x, self.qkv.weight, [self.q_bias, None, self.v_bias], self.num_windows,
                                self.window[0] * self.window[1], self.num_heads)
        # the logit scale multiplies q (N x d values) instead of the logits (N x N): same math, less work
        # k arrives transposed (B, nW, heads, d, N): normalise over d, now dim -2
        return _l2_normalize(q) * self.scale(), _l2_normalize(k, dim=-2), v

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.proj(merge_heads(attend(*self.qkv_heads(x), bias)))


def _l2_normalize(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """F.normalize(x, dim=dim), written so the export broadcasts instead of emitting Shape/Expand."""
    return x / torch.linalg.vector_norm(x, dim=dim, keepdim=True).clamp_min(1e-12)


class SwinBlock(nn.Module):
    """One (shifted-)window transformer block. V1: pre-norm residuals; V2: res-post-norm.

    Input (B, L, C) in the previous layout; `reorder` (L,) moves it into this block's window order
    first (absent when the orders agree). Output (B, L, C) in this block's window order.
    """

    def __init__(self, cfg: SwinConfig, dim: int, num_heads: int, grid: tuple[int, int], window: tuple[int, int],
                 shift: tuple[int, int], reorder: torch.Tensor | None, pretrained_window: int):
        super().__init__()
        self.post_norm = cfg.version == 2
        num_windows = (grid[0] // window[0]) * (grid[1] // window[1])
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        if cfg.version == 2:
            self.attn = WindowAttentionV2(dim, num_heads, window, num_windows, pretrained_window)
        else:
            self.attn = WindowAttention(dim, num_heads, window, num_windows)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        self.register_buffer("reorder", reorder, persistent=False)
        mask = shifted_window_mask(grid, window, shift)
        self.register_buffer("attn_mask", None if mask is None else mask.unsqueeze(1), persistent=False)
        self.register_buffer("frozen_bias", None, persistent=False)

    def attn_bias(self) -> torch.Tensor:
        """Position bias plus shift mask, one additive tensor: (nW or 1, heads, N, N)."""
        if self.frozen_bias is not None:
            return self.frozen_bias
        bias = self.attn.position_bias().unsqueeze(0)
        return bias if self.attn_mask is None else bias + self.attn_mask

    def freeze(self) -> None:
        """Precompute everything that depends on weights only (for export and fast inference)."""
        with torch.no_grad():
            self.frozen_bias = self.attn_bias().contiguous()
            if isinstance(self.attn, WindowAttentionV2):
                self.attn.frozen_scale = self.attn.scale().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reorder is not None:
            x = x.index_select(1, self.reorder)
        bias = self.attn_bias()
        if self.post_norm:
            x = x + self.norm1(self.attn(x, bias))
            return x + self.norm2(self.mlp(x))
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class SwinStage(nn.Module):
    """Optional patch merging, then `depth` blocks alternating regular and shifted windows.

    (B, L_in, C_in) in the previous layout -> (B, L, C) in the last block's window order.
    `orders` exposes each block's window order (spatial index per position) to the model.
    """

    def __init__(self, cfg: SwinConfig, index: int, grid: tuple[int, int], dim: int, prev_order: torch.Tensor,
                 prev_grid: tuple[int, int] | None):
        super().__init__()
        self.grid, self.dim = grid, dim
        self.orders: list[torch.Tensor] = []
        specs = [window_shift_for(grid, cfg.window_size, 0 if j % 2 == 0 else cfg.window_size // 2)
                 for j in range(cfg.depths[index])]
        for window, shift in specs:
            self.orders.append(window_order(grid, window, shift))
        if prev_grid is not None:
            gather = PatchMerging.gather_index(prev_grid, prev_order, self.orders[0])
            self.downsample: nn.Module = PatchMerging(dim // 2, gather, post_norm=cfg.version == 2)
            current = self.orders[0]
        else:
            self.downsample = nn.Identity()
            current = prev_order
        blocks = []
        for (window, shift), order in zip(specs, self.orders):
            reorder = None if torch.equal(order, current) else inverse_order(current)[order]
            blocks.append(SwinBlock(cfg, dim, cfg.num_heads[index], grid, window, shift, reorder,
                                    cfg.pretrained_window_sizes[index]))
            current = order
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SwinTransformer(nn.Module):
    """Swin Transformer classifier (V1 or V2 by `cfg.version`).

    (B, 3, H, W) float32 -> (B, num_classes) logits. H, W = cfg.img_size.
    """

    def __init__(self, cfg: SwinConfig):
        super().__init__()
        cfg.check_img_size(cfg.img_size)
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, 3, cfg.embed_dim)
        grid = (cfg.img_size[0] // cfg.patch_size, cfg.img_size[1] // cfg.patch_size)
        order = torch.arange(grid[0] * grid[1])  # patch embedding emits row-major spatial order
        prev_grid = None
        stages = []
        for i in range(len(cfg.depths)):
            dim = cfg.embed_dim * 2**i
            stage = SwinStage(cfg, i, grid, dim, order, prev_grid)
            stages.append(stage)
            order, prev_grid = stage.orders[-1], grid
            grid = (grid[0] // 2, grid[1] // 2)
        self.layers = nn.Sequential(*stages)
        self.num_features = cfg.embed_dim * 2 ** (len(cfg.depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)
        self.head = nn.Module()
        self.head.fc = nn.Linear(self.num_features, cfg.num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, WindowAttention):
            nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02)

    def freeze(self) -> SwinTransformer:
        """Turn weight-only subgraphs (position bias + mask, V2 logit scale) into constants. Returns self."""
        for stage in self.layers:
            for block in stage.blocks:
                block.freeze()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, L_last, C_last) after the final norm, in window order."""
        return self.norm(self.layers(self.patch_embed(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head.fc(self.forward_features(x).mean(dim=1))
