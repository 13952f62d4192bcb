"""Native Swin V1/V2 against timm, checkpoint formats and loading errors, the registry."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch

from swin_deploy.errors import UserError
from swin_deploy.models import (
    VARIANTS,
    SwinTransformer,
    Weights,
    build_model,
    convert_official_state_dict,
    get_config,
    read_checkpoint,
)
from swin_deploy.models.layers import inverse_order, shifted_window_mask, window_order
from swin_deploy.tolerances import TIMM_PARITY_REL
from swin_deploy.verify.timm_reference import timm_model, timm_parity


# One V1, one V2, one V2 window-transfer variant at full size; the tiny configs cover non-square
# inputs and pretrained-window normalisation. scripts/check_timm_parity.py covers all 18.
@pytest.mark.parametrize("name", ["swin_t", "swinv2_t", "swinv2_b_192to256", "swin_test", "swinv2_test"])
def test_parity_with_timm(name):
    result = timm_parity(get_config(name), batch_sizes=(1, 3))
    assert result.max_rel <= TIMM_PARITY_REL, result


@pytest.mark.parametrize("name", ["swin_test", "swinv2_test"])
def test_parity_with_timm_non_square(name):
    cfg = get_config(name).with_img_size((64, 128))
    assert timm_parity(cfg, batch_sizes=(2,)).max_rel <= TIMM_PARITY_REL


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, c in VARIANTS.items() if c.timm_name])
def test_parity_all_timm_variants(name):
    result = timm_parity(get_config(name))
    print(f"{name}: max rel delta {result.max_rel:.2e}")
    assert result.max_rel <= TIMM_PARITY_REL


def test_freeze_keeps_logits():
    model, _ = build_model(get_config("swinv2_test"), Weights("random"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        after = model.freeze()(x)
    torch.testing.assert_close(before, after)


def test_window_order_is_roll_then_partition():
    grid, window, shift = (8, 12), (4, 4), (2, 2)
    spatial = torch.arange(96).view(8, 12)
    rolled = torch.roll(spatial, shifts=(-2, -2), dims=(0, 1))
    expected = rolled.view(2, 4, 3, 4).permute(0, 2, 1, 3).reshape(-1)
    order = window_order(grid, window, shift)
    assert torch.equal(order, expected)
    assert torch.equal(order[inverse_order(order)], torch.arange(96))


def test_shift_mask_blocks_only_wrapped_regions():
    mask = shifted_window_mask((8, 8), (4, 4), (2, 2)).squeeze()
    assert mask.shape == (4, 16, 16)
    assert (mask[0] == 0).all()  # the top-left window holds one region only
    assert (mask[3] < 0).sum() > 0  # the bottom-right window mixes four regions
    assert shifted_window_mask((8, 8), (4, 4), (0, 0)) is None


def test_official_checkpoint_layout_converts(tmp_path):
    """A microsoft/Swin-Transformer checkpoint (downsample at stage end, `head`, buffers) loads."""
    cfg = get_config("swin_test")
    reference = timm_model(cfg)
    timm_sd = reference.state_dict()
    official = {}
    for k, v in timm_sd.items():
        if ".downsample." in k:
            i = int(k.split(".")[1])
            k = k.replace(f"layers.{i}.downsample", f"layers.{i - 1}.downsample")
        official[k.replace("head.fc.", "head.")] = v
    official["layers.0.blocks.1.attn_mask"] = torch.zeros(1)
    path = tmp_path / "official.pth"
    torch.save({"model": official}, path)
    converted = read_checkpoint(path)
    assert set(converted) == set(timm_sd)
    model, sha = build_model(cfg, Weights("checkpoint", path))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-4)
    assert len(sha) == 64
    assert convert_official_state_dict(timm_sd).keys() == timm_sd.keys()  # timm layout passes through
    # a classifier named `head` beside timm's downsampling (as timm's own filter takes it, whenever `head.fc` is absent)
    old_head = {k.replace("head.fc.", "head."): v for k, v in timm_sd.items()}
    assert convert_official_state_dict(old_head).keys() == timm_sd.keys()


def test_training_checkpoints_unwrap(tmp_path):
    """What training scripts save: timm's (args Namespace, optimizer, EMA), DDP-prefixed keys, EMA-only, and a
    Lightning module's (the model under its attribute's name, beside a loss's tensors and an EMA copy)."""
    import argparse

    model, _ = build_model(get_config("swin_test"), Weights("random", seed=1))
    ema, _ = build_model(get_config("swin_test"), Weights("random", seed=2))
    sd, ema_sd = model.state_dict(), ema.state_dict()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cases = {
        "timm_train.pth": ({"epoch": 3, "arch": "swin_test", "state_dict": sd, "state_dict_ema": ema_sd,
                            "optimizer": opt.state_dict(), "args": argparse.Namespace(lr=0.1), "version": 2}, sd),
        "ddp.pth": ({"state_dict": {"module." + k: v for k, v in sd.items()}}, sd),
        "ema_only.pth": ({"model_ema": ema_sd, "epoch": 1}, ema_sd),
        "lightning.ckpt": ({"state_dict": {**prefixed("model.", sd), "criterion.weight": torch.ones(7)},
                            "epoch": 3, "pytorch-lightning_version": "2.4.0"}, sd),
        "lightning_ema.ckpt": ({"state_dict": {**prefixed("net.", sd), **prefixed("net_ema.module.", ema_sd)}}, sd),
    }
    x = torch.randn(2, 3, 64, 64)
    for name, (checkpoint, expected) in [*cases.items(), ("lightning_ema.ckpt", (None, ema_sd))]:
        ema_asked = checkpoint is None
        if not ema_asked:
            torch.save(checkpoint, tmp_path / name)
        loaded, _ = build_model(get_config("swin_test"), Weights("checkpoint", tmp_path / name, ema=ema_asked))
        reference, _ = build_model(get_config("swin_test"), Weights("random"))
        reference.load_state_dict(expected)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), reference(x), msg=name)
    torch.save({"state_dict": {**prefixed("student.", sd), **prefixed("teacher.", ema_sd)}}, tmp_path / "two.ckpt")
    with pytest.raises(UserError, match=r"several Swin models \(student, teacher\)"):
        read_checkpoint(tmp_path / "two.ckpt")


def prefixed(prefix: str, state_dict: dict) -> dict:
    return {prefix + k: v for k, v in state_dict.items()}


@pytest.mark.parametrize("name", ["w.safetensors", "W.SAFETENSORS"])  # the upper-case one was unpickled and refused
def test_safetensors_checkpoint(tmp_path, name):
    from safetensors.torch import save_file

    model, _ = build_model(get_config("swinv2_test"), Weights("random", seed=3))
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded, _ = build_model(get_config("swinv2_test"), Weights("checkpoint", path))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_wrong_variant_checkpoint_names_tensor_and_shapes(tmp_path):
    model, _ = build_model(get_config("swinv2_test"), Weights("random"))
    path = tmp_path / "v2.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(UserError) as info:
        build_model(get_config("swin_test"), Weights("checkpoint", path))
    assert "does not fit swin_test" in str(info.value) and "'" in str(info.value)
    sd = model.state_dict()
    sd["head.fc.weight"] = torch.zeros(10, 48)  # another class count is a fine-tune's; other features are not
    torch.save(sd, path)
    with pytest.raises(UserError, match=r"head.fc.weight' has shape \(10, 48\), swinv2_test needs \(10, 64\)"):
        build_model(get_config("swinv2_test"), Weights("checkpoint", path))


def test_weights_take_a_path_as_str_and_a_checkpoint_needs_one(tmp_path):
    """A library caller's verify_artifact(..., VerifyOptions(weights=Weights("checkpoint", "w.pth"))) failed inside
    with "'str' object has no attribute 'name'"."""
    from swin_deploy.export import ExportOptions, export_variant
    from swin_deploy.verify.run import VerifyOptions, verify_artifact

    model, _ = build_model(get_config("swin_test"), Weights("random"))
    torch.save(model.state_dict(), tmp_path / "w.pth")
    weights = Weights("checkpoint", str(tmp_path / "w.pth"))
    onnx_path = export_variant("swin_test", weights, tmp_path / "w.onnx", ExportOptions(max_batch=1)).path
    result = verify_artifact(onnx_path, VerifyOptions(weights=weights, samples=4, batch_sizes=(1,)))
    assert result.passed, result.failures()
    with pytest.raises(UserError, match="weights from a `checkpoint` need its path"):
        Weights("checkpoint")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "bad.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        read_checkpoint(path)
    for name in ("empty.pth", "empty.safetensors"):  # a download that never finished: not a question of format
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(UserError, match=re.escape(f"checkpoint {tmp_path / name} is empty (0 bytes): download or copy")):
            read_checkpoint(tmp_path / name)
    model, _ = build_model(get_config("swin_test"), Weights("random"))
    torch.save(model, tmp_path / "whole.pth")  # the module pickled, which weights_only loading refuses
    with pytest.raises(UserError, match=r"a whole model saved with torch.save\(model\)\?\): save its state_dict"):
        read_checkpoint(tmp_path / "whole.pth")
    # protocol 4 or 5 (for files over 4 GiB): torch's safe unpickler cannot read them; protocol 3 it can
    for protocol in (3, 4, 5):
        torch.save(model.state_dict(), tmp_path / f"p{protocol}.pth", pickle_protocol=protocol)
    assert read_checkpoint(tmp_path / "p3.pth").keys() == model.state_dict().keys()
    for protocol in (4, 5):
        with pytest.raises(UserError, match=f"saved with pickle protocol {protocol}, which PyTorch's safe loader cannot "
                                            "read: save it again with torch.save's default protocol, or as safetensors"):
            read_checkpoint(tmp_path / f"p{protocol}.pth")


def test_registry_matches_timm_pretrained_cfg():
    import timm

    for cfg in VARIANTS.values():
        if not cfg.timm_name:
            continue
        pc = timm.models.get_pretrained_cfg(cfg.timm_name)
        assert tuple(pc.input_size[1:]) == cfg.img_size, cfg.name
        assert (pc.mean, pc.std, pc.interpolation) == (cfg.mean, cfg.std, cfg.interpolation), cfg.name
        assert (pc.crop_pct, pc.num_classes) == (cfg.crop_pct, cfg.num_classes), cfg.name
        assert get_config(cfg.timm_name) is cfg and get_config(f"{cfg.timm_name}.{pc.tag}") is cfg


def test_registry_param_count_matches_model():
    for name in ("swin_t", "swinv2_t_w16", "swin_test", "swinv2_test"):
        cfg = get_config(name)
        assert cfg.params == sum(p.numel() for p in SwinTransformer(cfg).parameters()), name


def test_registry_gmacs_match_torch_flop_counter():
    """The variants table's GMACs against torch's own counter of the model's forward (FLOPs = 2 x MACs), at the
    variant's size and at one that pads. V2's forward also runs its position-bias MLP, which the export folds into a
    constant, so there the count is that MLP's less."""
    from torch.utils.flop_counter import FlopCounterMode

    def counted(cfg, size):
        model = SwinTransformer(cfg.at_size(size)).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, cfg.in_chans, *(size or cfg.img_size)))
        return counter.get_total_flops() / 2e9

    for name, size in (("swin_t", None), ("swin_test", (80, 96)), ("swinv2_test", None), ("swinv2_test", (96, 64))):
        cfg = get_config(name)
        macs = cfg.gmacs(size)
        if cfg.version == 2:
            grids = cfg.stage_grids(size or cfg.img_size)
            tables = sum(depth * (2 * min(g[0], cfg.window_size) - 1) * (2 * min(g[1], cfg.window_size) - 1)
                         * (2 * 512 + 512 * heads) for depth, g, heads in zip(cfg.depths, grids, cfg.num_heads))
            macs += tables / 1e9
        assert counted(cfg, size) == pytest.approx(macs, rel=1e-9), (name, size)
    assert round(get_config("swin_t").gmacs(), 1) == 4.5  # timm's model card, the Swin paper's "4.5G FLOPs"


@pytest.mark.parametrize("name, window, size", [
    ("swin_test", None, (64, 64)),  # the MLP's hidden layer is the largest
    ("swinv2_test", 8, (128, 128)),  # the attention scores are
    ("swin_t", 12, (224, 160)),  # the scores of a grid padded to whole windows
    ("swinv2_t_w16", None, (224, 224)),
])
def test_activation_bytes_is_the_largest_tensor_a_forward_pass_makes(name, window, size):
    """The memory checks of every command rest on it: it counted only the MLP, a fifth of the attention scores of
    16x16 windows, so that runs of swinv2_*_w16 and the 384 variants passed checks they could not survive."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Largest(TorchDispatchMode):
        most = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            sizes = [t.numel() * t.element_size() for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            self.most = max([self.most, *sizes])
            return out

    cfg = get_config(name)
    cfg = (replace(cfg, window_size=window) if window else cfg).at_size(size)
    batch = 4  # the activations of 4 images outgrow every weight (and its transposed copy) of these models
    with torch.no_grad(), Largest() as largest:
        SwinTransformer(cfg).eval()(torch.zeros(batch, cfg.in_chans, *size))
    assert largest.most == batch * cfg.activation_bytes(size)


def test_unknown_variant_suggests():
    with pytest.raises(UserError, match="did you mean swinv2_t"):
        get_config("swinv2_tt")
    # case is no part of a model's name (SWIN_T was "unknown variant")
    assert get_config("SWIN_T") is get_config("swin_t")
    assert get_config("Swin_Tiny_Patch4_Window7_224.MS_IN1K") is get_config("swin_t")


@pytest.mark.parametrize("name, size", [
    ("swin_t", (256, 256)),  # every stage pads: grids 64, 32, 16, 8 under 7x7 windows
    ("swin_t", (160, 160)),  # stages 1-3 pad, stage 4's 5x5 grid shrinks the window
    ("swin_test", (96, 160)),  # stage 3 pads by the shift (2): where timm's and transformers' padding agree
    ("swinv2_test", (160, 96)),  # stage 3 pads, stage 4's 5x3 grid: a 4x3 window, padded along H
])
def test_sizes_that_do_not_tile_pad_as_timm(name, size):
    """timm pads a stage grid the windows do not tile (after the cyclic shift); so does the static model, on the
    spatial path with constant geometry. Padding as transformers does instead (before the shift) is 0.07x
    max|logit| off timm for swin_t at 256, so this parity tells the two apart."""
    cfg = get_config(name).with_img_size(size)
    assert SwinTransformer(cfg).spatial
    assert timm_parity(cfg, batch_sizes=(2,)).max_rel <= TIMM_PARITY_REL


def test_sizes_must_be_multiples_of_the_stride():
    # one side alone, as timm's img_size=224 (it failed with "'int' object is not iterable")
    model = SwinTransformer(get_config("swin_test").with_img_size(96)).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 96, 96)).shape == (1, 10)
    assert get_config("swin_test").at_size(96, dynamic=True).img_size == (96, 96)
    with pytest.raises(UserError, match="multiples of 32 .* not 230x230: e.g. 224x224 or 256x256"):
        get_config("swin_t").with_img_size((230, 230))
    with pytest.raises(UserError, match="multiples of 16 .* not 8x8: e.g. 16x16$"):  # once, not "16x16 or 16x16"
        get_config("swin_test").with_img_size((8, 8))
    with pytest.raises(UserError, match="not 64x70: e.g. 64x64 or 64x80$"):  # a side that fits stays as it is
        get_config("swin_test").with_img_size((64, 70))


@pytest.mark.parametrize("pad_first", [False, True], ids=["timm", "transformers"])
def test_window_partition_index_is_roll_pad_partition(pad_first):
    """Against the ops themselves: timm rolls then pads, transformers pads then rolls (its padded rows and columns
    take part in the roll). A 6x10 grid, 4x4 windows, shift 2 down and 3 across."""
    from swin_deploy.models.layers import window_partition_index

    (H, W), (wh, ww), (sh, sw) = (6, 10), (4, 4), (2, 3)
    spatial = torch.arange(H * W).view(H, W)
    pad = lambda t: torch.nn.functional.pad(t, (0, (-W) % ww, 0, (-H) % wh), value=H * W)  # noqa: E731
    roll = lambda t: torch.roll(t, shifts=(-sh, -sw), dims=(0, 1))  # noqa: E731
    grid = roll(pad(spatial)) if pad_first else pad(roll(spatial))
    expected = grid.view(2, wh, 3, ww).permute(0, 2, 1, 3).reshape(-1)
    index, inverse = window_partition_index((H, W), (wh, ww), (sh, sw), pad_first)
    assert torch.equal(index, expected)
    assert torch.equal(index[inverse], torch.arange(H * W))
    other = window_partition_index((H, W), (wh, ww), (sh, sw), not pad_first)[0]
    assert not torch.equal(index, other)  # at this padding (2, 2) and shift (2, 3) the two differ


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch deprecation notes from timm's checkpoint_filter_fn
def test_timm_checkpoint_at_a_size_that_shrinks_windows_resizes_its_tables(cli, tmp_path):
    """At 32x32 swin_test's stage 3 grid is 2x2 under 4x4 windows: the window shrinks, and a checkpoint's position
    tables (sized for 4x4) are resized as timm's checkpoint_filter_fn resizes them when it loads weights there; verify
    --timm loads timm's model through that filter too."""
    from timm.models.swin_transformer import checkpoint_filter_fn

    torch.manual_seed(0)
    trained = timm_model(get_config("swin_test"))
    torch.save(trained.state_dict(), tmp_path / "t.pth")
    cfg = get_config("swin_test").with_img_size((32, 32))
    reference = timm_model(cfg)
    reference.load_state_dict(checkpoint_filter_fn(trained.state_dict(), reference))
    native, _ = build_model(cfg, Weights("checkpoint", tmp_path / "t.pth"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want, got = reference.eval()(x), native(x)
    assert (got - want).abs().max() <= TIMM_PARITY_REL * want.abs().max()
    out = tmp_path / "s32.onnx"
    assert cli("export", "--variant", "swin_test", "--checkpoint", tmp_path / "t.pth", "--img-size", "32", "-o", out).code == 0
    r = cli("verify", out, "--checkpoint", tmp_path / "t.pth", "--timm", "--samples", "4", "--batch-sizes", "2")
    assert r.code == 0 and "timm-fp32" in r.out, r.out + r.err
    other = replace(get_config("swin_test"), window_size=2)  # tables of another window: another variant's, kept
    with pytest.raises(UserError, match="relative_position_bias_table' has shape \\(49, 2\\), swin_test needs \\(9, 2\\)"):
        build_model(other, Weights("checkpoint", tmp_path / "t.pth"))


def test_variants_command(cli):
    import json

    r = cli("variants", "--json", "-")
    assert r.code == 0
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert rows["swin_t"]["timm_name"] == "swin_tiny_patch4_window7_224"
    assert rows["swin_t"]["params_m"] == 28.29 and rows["swin_t"]["gmacs"] == 4.49  # timm: 4.5 GMACs
    assert len([r for r in rows.values() if r["timm_name"]]) == 18
    r = cli("variants")
    assert r.code == 0 and "swinv2_b_192to384" in r.out and "GMACs" in r.out
