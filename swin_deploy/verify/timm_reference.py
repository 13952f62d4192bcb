"""timm as the reference implementation: build timm's twin of a config and compare logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError, missing_package
from ..models.checkpoint import load_strict
from ..models.registry import SwinConfig
from ..models.swin import SwinTransformer


def timm_model(cfg: SwinConfig) -> torch.nn.Module:
    """timm's model for `cfg` (random weights): the registered entry point, or the class for test configs."""
    try:
        import timm
        from timm.models.swin_transformer import SwinTransformer as TimmV1
        from timm.models.swin_transformer_v2 import SwinTransformerV2 as TimmV2
    except ImportError as e:  # pragma: no cover
        raise missing_package("timm") from e
    if cfg.backbone is not None:
        raise UserError("timm has no transformers backbone (per-stage norms): gate it against the native model or "
                        "`transformers`")
    kwargs = dict(img_size=cfg.img_size, num_classes=cfg.num_classes, in_chans=cfg.in_chans)
    if cfg.timm_name and tuple(cfg.img_size) == tuple(timm.models.get_pretrained_cfg(cfg.timm_name).input_size[1:]):
        return timm.create_model(cfg.timm_name, pretrained=False, **kwargs).eval()
    arch = dict(patch_size=cfg.patch_size, embed_dim=cfg.embed_dim, depths=cfg.depths, num_heads=cfg.num_heads,
                window_size=cfg.window_size, mlp_ratio=cfg.mlp_ratio, **kwargs)
    if cfg.version == 2:
        return TimmV2(pretrained_window_sizes=cfg.pretrained_window_sizes, **arch).eval()
    return TimmV1(**arch).eval()


@dataclass
class ParityResult:
    variant: str
    max_abs: float
    max_rel: float  # max |native - timm| / max |timm|


def timm_parity(cfg: SwinConfig, batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> ParityResult:
    """Native model loaded with timm's (perturbed random) state_dict vs timm itself, float32 eval."""
    torch.manual_seed(seed)
    reference = timm_model(cfg)
    with torch.no_grad():  # move every parameter off its init value so biases and scales matter
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    native = SwinTransformer(cfg).eval()
    load_strict(native, reference.state_dict(), "timm state_dict")
    worst_abs, worst_rel = 0.0, 0.0
    gen = torch.Generator().manual_seed(seed)
    for b in batch_sizes:
        x = torch.randn(b, 3, *cfg.img_size, generator=gen)
        with torch.no_grad():
            ref, out = reference(x), native(x)
        delta = (out - ref).abs().max().item()
        worst_abs = max(worst_abs, delta)
        worst_rel = max(worst_rel, delta / ref.abs().max().item())
    return ParityResult(cfg.name, worst_abs, worst_rel)
