"""Building blocks shared by Swin V1 and V2: window geometry, patch embedding, patch merging, MLP.

Deployment layout. timm keeps activations as (B, H, W, C) and, in every block, rolls, partitions
into windows, runs attention, reverses the partition and rolls back: four copies of the
activations per block, and in ONNX a chain of Slice/Concat/Reshape/Transpose nodes. Every op of a
Swin block except attention is token-wise (LayerNorm, MLP, residual add), so the order of tokens
between attentions is free. swin-deploy therefore keeps the residual stream in the *window order of
the current block* (tokens of window 0, then window 1, ...) and moves from one block's order to the
next with a single constant Gather. Patch merging gathers its 2x2 neighbours straight from the last
block's order into the next stage's first window order. The math is identical to timm's; only the
token order between ops differs, and mean pooling does not depend on it.

All geometry here is a pure function of (H, W, window, shift) written as tensor arithmetic: the static
model evaluates it once into constants, the dynamic-size model traces it into the graph.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

# timm and the official code add -100 to cross-region logits. exp(-100 + logit) is a subnormal float,
# which x86 GEMM kernels process many times slower: the attn @ v matmul of every shifted block took
# 3-4x the time of its unshifted twin in onnxruntime. -1e4 underflows to an exact 0 (also in float16,
# whose range it fits) and changes the logits by less than 1e-30 relative.
MASK_VALUE = -1e4


def window_shift_for(grid: tuple[int, int], window: int, shift: int, always_partition: bool = False,
                     square_shift: bool = False, keep_window: bool = False) -> tuple[tuple[int, int], tuple[int, int]]:
    """Per-axis window and shift for a feature grid, as timm's `_calc_window_shift`.

    An axis no longer than the window gets one window covering it and no shift. `always_partition` (transformers'
    backbones): the configured window and shift stay, also on a grid of one window or less (padded to the window).
    `square_shift` (transformers' Swin): an axis one window covers takes the shift off both axes. `keep_window`
    (torchvision): the window stays (a smaller grid is padded to it), the shift goes as timm's does.
    """
    if always_partition:
        return (window, window), (shift, shift)
    win = tuple(g if g <= window and not keep_window else window for g in grid)
    sh = tuple(0 if g <= w else shift for g, w in zip(grid, win))
    if square_shift and min(grid) <= window:
        sh = (0, 0)
    return win, sh  # type: ignore[return-value]


def _rolled_coords(n_win: int | torch.Tensor, win: int) -> torch.Tensor:
    """Coordinate (in shifted, padded space) of each (window, offset) along one axis: (n_win, win)."""
    return torch.arange(n_win).unsqueeze(1) * win + torch.arange(win).unsqueeze(0)


def window_partition_index(grid, window: tuple[int, int], shift, pad_first: bool = False
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each token goes when a (H, W) grid is cyclically shifted, padded to whole windows and partitioned.

    Same order as timm: roll by -shift, pad bottom/right, windows row-major, tokens row-major inside.
    `pad_first` (transformers): pad to whole windows first, then roll the padded grid. Where the padding is not the
    shift the two put different tokens in a window (timm's roll wraps the grid's first rows into its last window).
    Returns
      index (nW * N,): spatial index h * W + w of the token at each window-order position, or H * W for
                       a padding position (callers append one zero token to gather from);
      inverse (H * W,): window-order position of each spatial token.
    H, W and shift may be ints (constants at build time) or 0-d tensors (sizes traced for a dynamic-size
    export): everything is arithmetic, so the ONNX graph builds it from runtime shapes without control flow.
    """
    (H, W), (wh, ww), (sh, sw) = grid, window, shift
    nwh, nww = (H + wh - 1) // wh, (W + ww - 1) // ww
    rh = _rolled_coords(nwh, wh)[:, None, :, None]
    rw = _rolled_coords(nww, ww)[None, :, None, :]
    # the roll's period: the padded grid (a position holds a token if it lands inside the image), or the image
    # (then the positions past it are the padding)
    mh, mw = (nwh * wh, nww * ww) if pad_first else (H, W)
    th, tw = (rh + sh) % mh, (rw + sw) % mw
    valid = (th < H) & (tw < W) if pad_first else (rh < H) & (rw < W)
    index = torch.where(valid, th * W + tw, H * W).reshape(-1)
    h = (torch.arange(H).unsqueeze(1) - sh) % mh
    w = (torch.arange(W).unsqueeze(0) - sw) % mw
    inverse = (((h // wh) * nww + w // ww) * wh + h % wh) * ww + w % ww
    return index, inverse.reshape(-1)


def window_order(grid: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor:
    """Spatial index of the token at each window-order position, for a grid the windows tile: (H * W,)."""
    return window_partition_index(grid, window, shift)[0]


def inverse_order(order: torch.Tensor) -> torch.Tensor:
    """inv[order[p]] = p: where each spatial token sits in a given order."""
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel())
    return inv


def shift_region_mask(grid, window: tuple[int, int], shift) -> torch.Tensor:
    """Additive mask (nW, N, N) of a shifted-window block: 0 within a region, MASK_VALUE across regions.

    After the cyclic shift a window can hold up to four image regions that are not neighbours; tokens
    attend within their region only. Regions are timm's slices (0, -w), (-w, -s), (-s, None) of the padded,
    shifted grid along each axis. Like `window_partition_index`, sizes may be ints or traced tensors.
    """
    (H, W), (wh, ww), (sh, sw) = grid, window, shift
    nwh, nww = (H + wh - 1) // wh, (W + ww - 1) // ww
    Hp, Wp = nwh * wh, nww * ww
    rh, rw = _rolled_coords(nwh, wh), _rolled_coords(nww, ww)
    region_h = (rh >= Hp - wh).long() + (rh >= Hp - sh).long()  # (nwh, wh)
    region_w = (rw >= Wp - ww).long() + (rw >= Wp - sw).long()  # (nww, ww)
    region = (region_h[:, None, :, None] * 3 + region_w[None, :, None, :]).reshape(-1, wh * ww)
    same = region.unsqueeze(1) == region.unsqueeze(2)
    return torch.where(same, torch.tensor(0.0), torch.tensor(MASK_VALUE))


def shifted_window_mask(grid: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]) -> torch.Tensor | None:
    """The shift mask for a static geometry, or None for a block without shift."""
    return shift_region_mask(grid, window, shift) if any(shift) else None


def relative_position_index(window: tuple[int, int]) -> torch.Tensor:
    """Index into a ((2*wh-1) * (2*ww-1)) table for each token pair of a window: (N, N) long."""
    wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel[:, :, 0] += wh - 1
    rel[:, :, 1] += ww - 1
    rel[:, :, 0] *= 2 * ww - 1
    return rel.sum(-1)


class Spatial(NamedTuple):
    """Tokens (B, H * W, C) in spatial order with their grid's H and W: what the spatial path (dynamic geometry, or a
    static grid that pads) passes from module to module, through nn.Sequential too. Every module then runs by its
    call, so an exported graph names its nodes by module path (/layers/layers.1/blocks/blocks.0/...) as on the
    window-order path, and `--exclude` globs and `--sensitivity`'s blocks mean the same in both. H, W: traced sizes
    for dynamic geometry, constants for a static grid."""

    x: torch.Tensor
    H: int | torch.Tensor
    W: int | torch.Tensor


class PatchEmbed(nn.Module):
    """Image to patch tokens: Conv2d(kernel = stride = patch) then LayerNorm.

    (B, 3, H, W) -> (B, H/p * W/p, C), tokens in row-major spatial order; `spatial`: as Spatial, with the token
    grid `grid` (static geometry) or, without one, the convolution's traced output size (dynamic geometry).
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, spatial: bool = False,
                 grid: tuple[int, int] | None = None):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)
        self.spatial, self.grid = spatial, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor | Spatial:
        x = self.proj(x)
        tokens = self.norm(x.flatten(2).transpose(1, 2))
        if not self.spatial:
            return tokens
        H, W = self.grid or (x.shape[2], x.shape[3])
        return Spatial(tokens, H, W)

    @torch.no_grad()
    def fold_normalization(self, mean, std, scale: float = 255.0) -> None:
        """Make proj take raw pixels p in [0, scale] instead of (p / scale - mean) / std, exactly:
        conv(W, (p / s - m) / d) + b = conv(W / (s d), p) + (b - sum W m / d), per input channel. The patch conv
        has no padding (kernel = stride, sizes are multiples of the patch), so no border term appears."""
        w = self.proj.weight.double()  # (C_out, 3, p, p)
        m = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
        d = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
        bias = self.proj.bias.double() if self.proj.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        self.proj.weight.copy_((w / (scale * d)).float())
        new_bias = bias - (w * m / d).sum(dim=(1, 2, 3))
        if self.proj.bias is None:
            self.proj.bias = nn.Parameter(new_bias.float())
        else:
            self.proj.bias.copy_(new_bias.float())


class PatchMerging(nn.Module):
    """Downsample 2x: concatenate each 2x2 neighbourhood (4C) and project to 2C.

    V1 normalises before the projection, V2 after (`post_norm`). Channel order of the 4C vector is
    timm's and the paper's: (0,0), (1,0), (0,1), (1,1) as (row, col) offsets.
    `gather` picks, for each output token in the next stage's window order, its four inputs from the
    previous block's order: (L_out * 4,) long. (B, L_in, C) -> (B, L_out, 2C).
    """

    def __init__(self, dim: int, gather: torch.Tensor | None, post_norm: bool):
        super().__init__()
        self.post_norm = post_norm
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim if post_norm else 4 * dim)
        self.register_buffer("gather", gather, persistent=False)

    @staticmethod
    def gather_index(grid: tuple[int, int], order_in: torch.Tensor, order_out: torch.Tensor) -> torch.Tensor:
        """Indices into `order_in` layout for each (output token in `order_out`, 2x2 offset)."""
        H, W = grid
        pos_in = inverse_order(order_in)
        oi, oj = order_out // (W // 2), order_out % (W // 2)
        offsets = ((0, 0), (1, 0), (0, 1), (1, 1))
        idx = torch.stack([pos_in[(2 * oi + dh) * W + (2 * oj + dw)] for dh, dw in offsets], dim=1)
        return idx.reshape(-1)

    def forward(self, x: torch.Tensor | Spatial) -> torch.Tensor | Spatial:
        if isinstance(x, Spatial):  # (B, H * W, C) in spatial order, H and W even -> (B, H/2 * W/2, 2C) spatial
            t, H, W = x
            C = self.reduction.in_features // 4
            t = t.reshape(-1, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(-1, (H // 2) * (W // 2), 4 * C)
            return Spatial(self.project(t), H // 2, W // 2)
        # -1 for the batch and constants for the rest keep the exported Reshape free of Shape ops
        return self.project(x.index_select(1, self.gather).reshape(-1, self.gather.numel() // 4, self.reduction.in_features))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_norm:
            return self.norm(self.reduction(x))
        return self.reduction(self.norm(x))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2, token-wise. (B, L, C) -> (B, L, C)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def project_heads(x: torch.Tensor, weight: torch.Tensor, bias: list[torch.Tensor | None], num_heads: int,
                  tokens) -> tuple[torch.Tensor, ...]:
    """qkv projection, token-major: x (B, L, C) -> q, k, v each (B, L, heads, d); `tokens` is L (given, so a static
    export reshapes by constants).

    weight (3C, C) as timm's fused qkv; bias per q, k, v (None: no bias). Three matmuls on constant slices of
    the fused weight replace one matmul plus a Split of its output (the Split was 5% of the INT8 model's CPU time).
    """
    C = weight.shape[1]
    return tuple(F.linear(x, weight[i * C:(i + 1) * C], bias[i]).reshape(-1, tokens, num_heads, C // num_heads)
                 for i in range(3))


def heads_major(t: torch.Tensor, num_windows, window_area: int, num_heads: int, head_dim: int,
                per_window: bool) -> torch.Tensor:
    """Token-major (B, nW * N, heads, d) in window order -> attention layout, always 4D: (B * nW, heads, N, d),
    or (B, nW * heads, N, d) when `per_window`. N, heads and d are given, not read from `t`: each traced shape
    is a Shape/Gather/Unsqueeze/Concat chain in the exported ONNX that the simplifier then has to fold.

    Why 4D, and why two forms: the fused attention kernels take [batch, heads, N, d] with an additive mask
    broadcast over batch (TensorRT's attention fusion, docs.nvidia.com/deeplearning/tensorrt, "Fused
    Attention"; OpenVINO's MHA snippets accept rank 3-4 only). Windows sit in the batch axis where one
    position bias serves every window (its Transpose is the one those kernels read in place), and in the
    heads axis where the shift mask differs per window, so that (nW * heads, N, N) still broadcasts over batch.
    Measured against the 5D layout in benchmarks/RESULTS.md ("4D attention").
    """
    h, d = num_heads, head_dim
    if not per_window:
        return t.reshape(-1, window_area, h, d).permute(0, 2, 1, 3)
    return t.reshape(-1, num_windows, window_area, h, d).permute(0, 1, 3, 2, 4).reshape(-1, num_windows * h,
                                                                                        window_area, d)


def merge_heads(x: torch.Tensor, num_windows, num_heads: int, window_area: int, head_dim: int,
                per_window: bool) -> torch.Tensor:
    """heads_major's layout -> (B, nW * N, heads * d); N and d given, as heads_major's."""
    N, d = window_area, head_dim
    x = x.reshape(-1, num_windows, num_heads, N, d).permute(0, 1, 3, 2, 4) if per_window else x.permute(0, 2, 1, 3)
    return x.reshape(-1, num_windows * N, num_heads * d)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, window_area: int) -> torch.Tensor:
    """softmax(q k^T + bias) v with q pre-scaled; q, k, v (B', G, N, d) as heads_major lays them out
    (G = heads, or windows * heads).

    bias: (1 or nW, heads, N, N), one slice per window when G holds the windows; broadcast over B'. N: window_area.
    """
    # k^T is a Transpose feeding the MatMul in the ONNX: the onnxruntime INT8 target folds it into the
    # matmul (precision.graph.fold_transpose_into_matmul); TensorRT's builder does such folding itself
    N = window_area  # not a shape read from a tensor: the bias then reshapes by a constant in the ONNX
    attn = torch.matmul(q, k.transpose(-2, -1)) + bias.reshape(1, -1, N, N)
    return torch.matmul(F.softmax(attn, dim=-1), v)
