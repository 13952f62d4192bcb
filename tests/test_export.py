"""`swin-deploy export`: graph contract, opsets, dynamic batch, metadata, atomicity, bad input."""

from __future__ import annotations

import collections
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from swin_deploy.artifact import read_info
from swin_deploy.export import ExportOptions, export_onnx, max_opset
from swin_deploy.export.onnx_export import graph_problems
from swin_deploy.models import Weights, build_model, get_config
from swin_deploy.models.checkpoint import variant_from_tensors


def ort_vs_torch(path, model, batch_sizes):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in batch_sizes:
        x = torch.randn(b, 3, *read_info(path).img_size)
        with torch.no_grad():
            ref = model(x).numpy()
        out = session.run(None, {"input": x.numpy()})[0]
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("name", ["swin_test", "swinv2_test"])
def test_cli_export_graph_contract(cli, tmp_path, name):
    path = tmp_path / "m.onnx"
    r = cli("export", "--variant", name, "--random-init", "--max-batch", "8", "-o", path)
    assert r.code == 0, r.err
    assert "parity" in r.out and "nodes" in r.out
    proto = onnx.load(str(path))
    (inp,), (outp,) = proto.graph.input, proto.graph.output
    assert (inp.name, outp.name) == ("input", "logits")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 64, 64]
    assert [d.dim_param or d.dim_value for d in outp.type.tensor_type.shape.dim] == ["batch", 10]
    assert graph_problems(proto) == []
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    assert ops["Shape"] == 0 and ops["Roll"] == 0 and ops["LayerNormalization"] > 0
    info = read_info(path)
    assert (info.variant, info.precision, info.opset, info.num_classes, info.max_batch) == (name, "fp32", 17, 10, 8)
    assert info.img_size == (64, 64) and info.interpolation == "bicubic" and len(info.weights_sha256) == 64
    model, sha = build_model(get_config(name), Weights("random"))
    assert sha == info.weights_sha256
    ort_vs_torch(path, model, (1, 3, 8, 5))


@pytest.mark.parametrize("opset", list(range(13, max_opset() + 1)))
def test_every_accepted_opset(tmp_path, opset):
    for name in ("swin_test", "swinv2_test"):
        model, sha = build_model(get_config(name), Weights("random"))
        result = export_onnx(model, sha, tmp_path / f"{name}.onnx", ExportOptions(opset=opset))
        assert result.parity_delta <= 1e-4
        assert result.layernorm_fused == (opset >= 17)
        assert onnx.load(str(result.path)).opset_import[0].version == opset
        ort_vs_torch(result.path, model, (2,))


def test_dynamo_exporter_fallback_path(tmp_path, monkeypatch):
    export, examples = torch.onnx.export, []

    def recording(model, args, *rest, **kwargs):
        examples.append(tuple(args[0].shape))
        return export(model, args, *rest, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", recording)
    model, sha = build_model(get_config("swinv2_test"), Weights("random"))
    result = export_onnx(model, sha, tmp_path / "d.onnx", ExportOptions(exporter="dynamo", opset=18, max_batch=4))
    assert result.exporter == "dynamo" and result.parity_delta <= 1e-4
    # a batch-1 example is what torch 2.7's torch.export took for a constant batch (a static graph)
    assert examples and examples[0][0] >= 2, examples
    ort_vs_torch(result.path, model, (1, 4))


def test_a_torchscript_failure_below_opset_18_names_itself_and_the_opset_the_fallback_needs(cli, tmp_path,
                                                                                               monkeypatch):
    export = torch.onnx.export

    def torchscript_fails(*args, dynamo=True, **kwargs):
        if not dynamo:
            raise RuntimeError("unsupported thing\nmore detail")
        return export(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", torchscript_fails)
    r = cli("export", "--variant", "swin_test", "--random-init", "-o", tmp_path / "m.onnx")
    said = " ".join(r.err.split())
    assert r.code == 2 and "the TorchScript exporter failed (RuntimeError: unsupported thing), and the dynamo " \
        "exporter writes opset 18 or newer, not 17: pass --opset 18" in said, r.err
    r = cli("export", "--variant", "swin_test", "--random-init", "--opset", "18", "-o", tmp_path / "m.onnx")
    assert r.code == 0 and read_info(tmp_path / "m.onnx").opset == 18, r.err


def test_static_batch(cli, tmp_path):
    path = tmp_path / "s.onnx"
    assert cli("export", "--variant", "swin_test", "--random-init", "--static-batch", "--max-batch", "4",
               "-o", path).code == 0
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 3, 64, 64]


def test_other_image_size_and_non_square_model(tmp_path):
    cfg = get_config("swinv2_test").with_img_size((64, 128))
    model, sha = build_model(cfg, Weights("random"))
    result = export_onnx(model, sha, tmp_path / "ns.onnx", ExportOptions())
    assert read_info(result.path).img_size == (64, 128)
    ort_vs_torch(result.path, model, (1, 3))


def test_cli_exports_sizes_that_do_not_tile_into_windows(cli, tmp_path):
    """--img-size HxW at a size whose stage grids are no whole number of windows (swin_test: windows 4, stage 3 grid
    6x10): the export pads them as timm does, with constant geometry (no Shape ops), and matches timm."""
    from swin_deploy.verify.timm_reference import timm_model

    torch.manual_seed(1)
    reference = timm_model(get_config("swin_test").with_img_size((96, 160)))
    torch.save(reference.state_dict(), tmp_path / "t.pth")
    path = tmp_path / "p.onnx"
    r = cli("export", "--variant", "swin_test", "--checkpoint", tmp_path / "t.pth", "--img-size", "96x160", "-o", path)
    assert r.code == 0, r.err
    proto = onnx.load(str(path))
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == ["batch", 3, 96, 160]
    assert collections.Counter(n.op_type for n in proto.graph.node)["Shape"] == 0
    assert read_info(path).img_size == (96, 160)
    ort_vs_torch(path, reference, (1, 3))


def test_a_fine_tunes_preprocessing_is_recorded_and_used(cli, tmp_path):
    """--mean/--std/--interpolation/--crop-pct/--crop-mode replace the variant's preprocessing: the metadata says so,
    images are read that way (a 90x150 image squashed to 64x64 with a bilinear filter, then (p/255 - 0.5) / 0.25), and a
    raw-pixel export folds that normalisation into its graph."""
    from PIL import Image

    from swin_deploy.data import transform_for

    flags = ["--mean", "0.5", "--std", "0.25,0.25,0.25", "--interpolation", "bilinear", "--crop-pct", "1",
             "--crop-mode", "squash"]
    floats, pixels = tmp_path / "f.onnx", tmp_path / "u.onnx"
    assert cli("export", "--variant", "swin_test", "--random-init", *flags, "-o", floats).code == 0
    assert cli("export", "--variant", "swin_test", "--random-init", *flags, "--input-format", "uint8", "-o", pixels).code == 0
    info = read_info(floats)
    assert (info.mean, info.std, info.interpolation, info.crop_pct, info.crop_mode) == (
        (0.5,) * 3, (0.25,) * 3, "bilinear", 1.0, "squash")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 150, 3), dtype=np.uint8))
    raw = np.asarray(image.resize((64, 64), Image.BILINEAR), dtype=np.float32).transpose(2, 0, 1)
    got = transform_for(info).image(image)
    assert np.abs(got - (raw / 255 - 0.5) / 0.25).max() <= 1e-5
    pixel_info = read_info(pixels)
    as_pixels = transform_for(pixel_info).image(image)
    assert np.array_equal(as_pixels.astype(np.float32), raw)
    run = {p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (floats, pixels)}
    want = run[floats].run(None, {"input": got[None]})[0]
    out = run[pixels].run(None, {"input": as_pixels[None]})[0]
    assert np.abs(out - want).max() <= 1e-4 * np.abs(want).max()


def test_preprocessing_refuses_values_that_are_not_finite():
    """The library's own check (the CLI's parser refuses nan and inf first): a mean or std of nan or inf was recorded
    as the artifact's preprocessing, and every image read that way became nan."""
    import math

    from swin_deploy.errors import UserError
    from swin_deploy.models.registry import Preprocessing

    for field, values in (("mean", (0.5, math.nan, 0.5)), ("std", (math.inf,))):
        with pytest.raises(UserError, match=f"`{field}` must be finite numbers, not "):
            Preprocessing(**{field: values})
    assert Preprocessing(mean=(0.5,), std=(0.25,)).std == (0.25,)


def test_a_timm_training_checkpoint_says_model_size_and_preprocessing(cli, tmp_path):
    """timm's train.py saves its `args`: the model name, --input-size and the eval preprocessing (--mean, --std,
    --interpolation, --crop-pct, --crop-mode) become export's defaults; options given on the command line win."""
    import argparse

    model, _ = build_model(get_config("swin_test"), Weights("random"))
    args = argparse.Namespace(model="swin_test", img_size=None, input_size=[3, 96, 160], mean=[0.5] * 3, std=[0.25] * 3,
                              interpolation="bilinear", crop_pct=1.0, crop_mode="squash", lr=0.1)
    ckpt = tmp_path / "train.pth"
    torch.save({"epoch": 3, "arch": "swin_test", "state_dict": model.state_dict(), "args": args, "version": 2}, ckpt)
    out = tmp_path / "m.onnx"
    r = cli("export", "--checkpoint", ckpt, "-o", out)  # no --variant: swin_t would not fit these weights
    assert r.code == 0 and "training args" in r.out, r.out + r.err
    info = read_info(out)
    assert (info.variant, info.img_size, info.mean, info.std, info.interpolation, info.crop_pct, info.crop_mode) == (
        "swin_test", (96, 160), (0.5,) * 3, (0.25,) * 3, "bilinear", 1.0, "squash")
    r = cli("export", "--checkpoint", ckpt, "--img-size", "64", "--mean", "0.4", "-o", out)
    assert r.code == 0, r.err
    info = read_info(out)
    assert (info.img_size, info.mean, info.std) == ((64, 64), (0.4,) * 3, (0.25,) * 3)


def test_ema_weights_of_a_training_checkpoint(cli, tmp_path):
    """`--ema` exports a training checkpoint's EMA weights (raw ones are the default); verify and `--timm` need it
    again to rebuild the same model, and name it when it is missing; asked of weights without EMA, exit 2."""
    import argparse

    raw, _ = build_model(get_config("swin_test"), Weights("random", seed=1))
    ema, _ = build_model(get_config("swin_test"), Weights("random", seed=2))
    ckpt = tmp_path / "train.pth"
    torch.save({"epoch": 3, "state_dict": raw.state_dict(), "state_dict_ema": ema.state_dict(),
                "args": argparse.Namespace(model="swin_test")}, ckpt)
    out = tmp_path / "m.onnx"
    r = cli("export", "--checkpoint", ckpt, "-o", out)  # the raw weights, and a note that EMA ones are there
    assert r.code == 0 and "also holds EMA weights (--ema exports those)" in " ".join(r.out.split()), r.out
    r = cli("export", "--checkpoint", ckpt, "--ema", "-o", out)
    assert r.code == 0 and "EMA" not in r.out
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, other = ema(x).numpy(), raw(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max() < np.abs(got - other).max()
    assert cli("verify", out, "--checkpoint", ckpt, "--ema", "--samples", "4").code == 0
    assert cli("verify", out, "--checkpoint", ckpt, "--ema", "--timm", "--samples", "4").code == 0
    r = cli("verify", out, "--checkpoint", ckpt, "--samples", "4")
    assert r.code == 2 and "with --ema if it was exported with it" in r.err, r.err
    flat = tmp_path / "flat.pth"
    torch.save(raw.state_dict(), flat)
    r = cli("export", "--checkpoint", flat, "--variant", "swin_test", "--ema", "-o", tmp_path / "n.onnx")
    assert r.code == 2 and "holds no EMA weights" in r.err and not (tmp_path / "n.onnx").exists(), r.err
    r = cli("export", "--variant", "swin_test", "--random-init", "--ema", "-o", tmp_path / "n.onnx")
    assert r.code == 2 and "pass that --checkpoint with it" in r.err, r.err
    lightning = tmp_path / "lightning.ckpt"  # a Lightning module's: the EMA copy is a wrapped model beside the raw one
    torch.save({"state_dict": {**{f"model.{k}": v for k, v in raw.state_dict().items()},
                               **{f"model_ema.module.{k}": v for k, v in ema.state_dict().items()}}}, lightning)
    r = cli("export", "--checkpoint", lightning, "--variant", "swin_test", "-o", tmp_path / "l.onnx")
    assert r.code == 0 and "also holds EMA weights (--ema exports those)" in " ".join(r.out.split()), r.out


def test_weights_under_a_training_scripts_own_key_and_files_that_hold_none(cli, tmp_path):
    """A training script of its own keeps the model under a key of its choosing ('net', beside 'net_ema'): found by
    what it holds. Several models, a TorchScript archive and a checkpoint without weights: exit 2 saying what to do,
    without torch's warnings."""
    raw, _ = build_model(get_config("swin_test"), Weights("random", seed=1))
    ema, _ = build_model(get_config("swin_test"), Weights("random", seed=2))
    x = torch.randn(2, 3, 64, 64)
    ckpt = tmp_path / "train.pth"
    torch.save({"epoch": 3, "metrics": {"acc": torch.tensor(0.9)}, "net": raw.state_dict(),
                "net_ema": ema.state_dict(), "optimizer": {"state": {}, "param_groups": []}}, ckpt)
    for flags, model in (([], raw), (["--ema"], ema)):
        out = tmp_path / f"m{len(flags)}.onnx"
        r = cli("export", "--checkpoint", ckpt, "--variant", "swin_test", *flags, "-o", out)
        assert r.code == 0, r.err
        with torch.no_grad():
            want = model(x).numpy()
        got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), flags
    two = tmp_path / "two.pth"
    torch.save({"teacher": raw.state_dict(), "student": ema.state_dict()}, two)
    scripted = tmp_path / "scripted.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated: still what many saved models are
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(raw, x), scripted)
    empty = tmp_path / "optimizer.pth"
    torch.save({"epoch": 3, "optimizer": {"state": {}, "param_groups": []}}, empty)
    for path, says in ((two, "holds several models (teacher, student): save the one to deploy as its own state_dict"),
                       (scripted, "is a TorchScript archive (torch.jit.save): save its weights with torch.save("
                                  "torch.jit.load(path).state_dict(), 'weights.pth')"),
                       (empty, "holds no model's state_dict (epoch, optimizer: not tensors)")):
        r = cli("export", "--checkpoint", path, "--variant", "swin_test", "-o", tmp_path / "n.onnx")
        assert r.code == 2 and says in " ".join(r.err.split()) and "Warning" not in r.err, r.err
        assert not (tmp_path / "n.onnx").exists()


def test_graph_is_at_most_half_of_timms(tmp_path):
    """Node count after the same simplification, vs timm's own export of the same architecture."""
    import warnings

    from swin_deploy.export.onnx_export import simplify
    from swin_deploy.verify.timm_reference import timm_model

    for name in ("swin_test", "swinv2_test"):
        cfg = get_config(name)
        model, sha = build_model(cfg, Weights("random"))
        ours = export_onnx(model, sha, tmp_path / "ours.onnx", ExportOptions()).nodes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(timm_model(cfg), (torch.zeros(1, 3, 64, 64),), str(tmp_path / "timm.onnx"),
                              dynamo=False, opset_version=17, input_names=["input"],
                              dynamic_axes={"input": {0: "batch"}})
        theirs = len(simplify(onnx.load(str(tmp_path / "timm.onnx"))).graph.node)
        assert ours <= 0.5 * theirs, (name, ours, theirs)


@pytest.mark.parametrize("name, options, held", [
    ("swin_test", {}, True),
    ("swinv2_test", dict(dynamic_size=True, min_size=(64, 64), max_size=(128, 128)), True),
    ("swinv2_test", dict(features=True), True),
    ("swin_test", dict(input_format="uint8", channels_last=True), True),
    ("swinv2_test", dict(static_batch=True, max_batch=2), False),  # static shapes: onnxslim writes Gemms from weights
])
def test_onnxslim_runs_without_the_large_constants_and_returns_the_graph_it_returns_with_them(tmp_path, monkeypatch,
                                                                                              name, options, held):
    """The export holds the large constants (weights, attention biases and masks) out of onnxslim, which copies the
    whole model for each of its passes: what comes back must be what onnxslim makes of the whole model, node for node,
    with every constant in place."""
    import onnxslim

    from swin_deploy.export.onnx_export import simplify

    model, sha = build_model(get_config(name), Weights("random"))
    raw = export_onnx(model, sha, tmp_path / "raw.onnx", ExportOptions(simplifier="none", verify=False, **options)).path
    whole, seen = onnxslim.slim, []
    monkeypatch.setattr(onnxslim, "slim", lambda m: seen.append([i.name for i in m.graph.input[1:]]) or whole(m))
    ours, theirs = simplify(onnx.load(str(raw))), whole(onnx.load(str(raw)))
    constant_nodes = [n for n in seen[0] if "/Constant" in n]  # attention biases and masks; the rest are weights
    assert (len(seen[0]) > len(constant_nodes) > 0) == held, seen  # what it was not given were inputs to it
    assert ours.graph.node == theirs.graph.node and len(ours.graph.node) < len(onnx.load(str(raw)).graph.node)
    assert list(ours.graph.input) == list(theirs.graph.input) and ours.graph.output == theirs.graph.output
    assert ours.graph.value_info == theirs.graph.value_info
    weights = {init.name: init for init in ours.graph.initializer}
    assert len(weights) == len(ours.graph.initializer) == len(theirs.graph.initializer)
    assert all(weights[init.name] == init for init in theirs.graph.initializer)


def test_an_export_past_what_one_onnx_file_holds_is_refused_and_the_dynamic_size_it_names_fits(cli, tmp_path,
                                                                                                 monkeypatch):
    """Attention biases and masks grow with the windows: swinv2_t_w16 at 2560x2560 holds 2.8 GiB of them, and that
    export failed inside torch with a hint to change the opset, then ran out of memory and left a 3.1 GB temporary
    file. The limit here is swin_test's weights plus one byte, so its biases are what passes it."""
    from swin_deploy.export import onnx_export

    model, _ = build_model(get_config("swin_test"), Weights("random"))
    monkeypatch.setattr(onnx_export, "ONNX_FILE_LIMIT", sum(p.numel() * 4 for p in model.parameters()) + 1)
    r = cli("export", "--variant", "swin_test", "--random-init", "--img-size", "128", "-o", tmp_path / "m.onnx")
    said = " ".join(r.err.split())
    assert r.code == 2 and "past the 2 GiB an ONNX file can hold: export with --dynamic-size" in said, r.err
    assert "at 128x128 the ONNX would hold" in said and "Traceback" not in r.err
    assert list(tmp_path.iterdir()) == []
    r = cli("export", "--variant", "swin_test", "--random-init", "--dynamic-size", "--max-size", "128",
            "-o", tmp_path / "m.onnx")
    assert r.code == 0, r.err


def test_failed_parity_exits_1_and_leaves_nothing(cli, tmp_path, monkeypatch):
    from swin_deploy.export import onnx_export

    monkeypatch.setattr(onnx_export, "onnx_parity", lambda *a, **k: 0.5)
    path = tmp_path / "m.onnx"
    r = cli("export", "--variant", "swin_test", "--random-init", "-o", path)
    assert r.code == 1 and "5.00e-01" in r.err
    assert list(tmp_path.iterdir()) == []


def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    from swin_deploy.export import onnx_export

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "simplify", boom)
    model, sha = build_model(get_config("swin_test"), Weights("random"))
    with pytest.raises(KeyboardInterrupt):
        export_onnx(model, sha, tmp_path / "m.onnx", ExportOptions())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--variant", "swin_tinyy"], "did you mean"),
    (["--variant", "swin_t", "--img-size", "230"], "multiples of 32 (patch 4, then 3 patch mergings), not 230x230: "
                                                   "e.g. 224x224 or 256x256"),
    (["--variant", "swin_t", "--img-size", "224x230"], "multiples of 32"),
    (["--variant", "swin_t", "--img-size", "2x3x4"], "--img-size takes a side or HxW"),
    (["--variant", "swin_test", "--random-init", "--img-size", "64,x"], "not '64,x'"),  # exported 64x64 without a word
    (["--variant", "swin_test", "--random-init", "--dynamic-size", "--max-size", "128x"], "--max-size takes a side"),
    (["--variant", "swin_test", "--opset", "12"], "choose an opset from 13 to"),
    (["--variant", "swin_test", "--checkpoint", "missing.pth"], "does not exist"),
    (["--variant", "swin_test", "--random-init", "-o", "/nonexistent/dir/m.onnx"], "does not exist"),
    (["--variant", "swin_test", "--random-init", "--pretrained"], "choose one source of weights"),
    (["--variant", "swin_test", "--random-init", "--img-size", "0"], "image size must be positive"),
    (["--variant", "swin_test", "--random-init", "--std", "0,1,1"], "--std must be positive"),
    (["--variant", "swin_test", "--random-init", "--mean", "0.1,0.2"], "2 normalisation values for a 3-channel model"),
    (["--variant", "swin_test", "--random-init", "--crop-mode", "pad"], "unknown --crop-mode 'pad'"),
    # a mistyped size ran until the kernel killed the process, without a message
    (["--variant", "swin_test", "--random-init", "--img-size", "160000"], "choose a smaller --img-size"),
    (["--variant", "swin_test", "--random-init", "--dynamic-size", "--max-size", "160000,160000"], "or --max-size"),
    (["--variant", "swin_test", "--random-init", "--window-size", "0"], "--window-size must be at least 1, not 0"),
])
def test_bad_input_exits_2_with_one_line(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = cli("export", *args)
    assert r.code == 2
    assert message in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_plain_state_dict_exports_as_the_variant_its_tensors_fit(cli, tmp_path):
    """`torch.save(model.state_dict())` names no model: the registered variant its tensors fit is taken (and said),
    a wrong `--variant` is told which one fits, and where the tensors cannot tell (Swin V2's window is in no tensor),
    fit nothing registered, or are not a Swin, exit 2 says so."""
    import timm

    model, _ = build_model(get_config("swinv2_test"), Weights("random"))
    torch.save(model.state_dict(), tmp_path / "v2.pth")
    r = cli("export", "--checkpoint", tmp_path / "v2.pth", "-o", tmp_path / "m.onnx")
    assert r.code == 0, r.err
    assert "variant swinv2_test, from the checkpoint's tensors" in r.out
    assert read_info(tmp_path / "m.onnx").variant == "swinv2_test"
    from swin_deploy.models import checkpoint

    assert checkpoint._unwrapped.cache_info().currsize == 0  # the tensors read to find the variant are not kept
    r = cli("export", "--variant", "swin_test", "--checkpoint", tmp_path / "v2.pth", "-o", tmp_path / "w.onnx")
    assert r.code == 2 and "does not fit swin_test" in r.err and "its tensors are those of swinv2_test" in r.err
    assert not (tmp_path / "w.onnx").exists()
    v2t = timm.create_model("swinv2_tiny_window8_256")
    torch.save(v2t.state_dict(), tmp_path / "v2t.pth")
    # the official code and timm before 0.9 kept V2's coordinate table as a buffer: it says the window
    tables = {f"layers.{i}.blocks.{j}.attn.relative_coords_table": block.attn.relative_coords_table
              for i, stage in enumerate(v2t.layers) for j, block in enumerate(stage.blocks)}
    torch.save({**v2t.state_dict(), **tables}, tmp_path / "v2t_tables.pth")
    assert variant_from_tensors(Weights("checkpoint", tmp_path / "v2t_tables.pth")) == "swinv2_t"
    torch.save(timm.create_model("swin_tiny_patch4_window7_224", embed_dim=48, depths=(2, 2), num_heads=(2, 4),
                                 img_size=64, window_size=4).state_dict(), tmp_path / "custom.pth")
    torch.save(timm.create_model("resnet18").state_dict(), tmp_path / "resnet.pth")
    for name, message in (("v2t", "has the tensors of swinv2_t, swinv2_t_w16 (Swin V2 keeps its window out of its "
                                  "weights): pass --variant"),
                          ("custom", "holds a Swin V1 (embedding 48, depths [2, 2], heads [2, 4], window 4) that is no "
                                     "registered variant"),
                          ("resnet", "does not hold a Swin V1/V2 model in a layout swin-deploy reads (timm's, the "
                                     "official, transformers' or torchvision's; it has tensors such as 'conv1.weight')")):
        r = cli("export", "--checkpoint", tmp_path / f"{name}.pth", "-o", tmp_path / "n.onnx")
        assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, (name, r.err)
    assert not (tmp_path / "n.onnx").exists()


def test_offline_pretrained_names_alternatives(cli, tmp_path, monkeypatch):
    from swin_deploy.models import checkpoint

    monkeypatch.setattr(checkpoint, "_hub_reachable", lambda: False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    r = cli("export", "--variant", "swin_t", "--pretrained", "-o", tmp_path / "m.onnx")
    assert r.code == 2 and "--checkpoint" in r.err and "--random-init" in r.err


def test_outputs_get_ordinary_permissions(tmp_path):
    import os
    import stat

    model, sha = build_model(get_config("swin_test"), Weights("random"))
    path = export_onnx(model, sha, tmp_path / "m.onnx", ExportOptions(verify=False)).path
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def timm_hub_folder(hub: Path):
    """swin_test with seeded random weights as timm's push_to_hf_hub writes a model: (model, folder, class names)."""
    import json

    from safetensors.torch import save_file

    model, _ = build_model(get_config("swin_test"), Weights("random", seed=4))
    hub.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(hub / "model.safetensors"))
    names = [f"class {i}" for i in range(10)]
    (hub / "config.json").write_text(json.dumps({
        "architecture": "swin_test", "num_classes": 10, "num_features": 64, "global_pool": "avg", "label_names": names,
        "pretrained_cfg": {"input_size": [3, 64, 64], "interpolation": "bilinear", "mean": [0.5, 0.5, 0.5],
                           "std": [0.5, 0.5, 0.5], "crop_pct": 1.0, "crop_mode": "center", "num_classes": 10}}))
    return model, hub, names


def test_a_hub_model_id_is_read_from_the_hub_cache(cli, tmp_path, monkeypatch):
    """`--checkpoint owner/name`, as from_pretrained takes it: the snapshot in the Hugging Face hub cache (fetched
    there when missing and the hub is reachable; offline here). It was exit 2, no such path."""
    from huggingface_hub import constants

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--acme--swin-test"
    model, _, _ = timm_hub_folder(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "m.onnx"
    r = cli("export", "--checkpoint", "acme/swin-test", "-o", out)
    assert r.code == 0, r.err
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert cli("verify", out, "--checkpoint", "acme/swin-test", "--samples", "4").code == 0
    r = cli("export", "--checkpoint", "acme/not-cached", "-o", tmp_path / "n.onnx")
    assert r.code == 2 and "is not cached and the hub is out of reach" in r.err, r.err
    r = cli("export", "--checkpoint", "acme/missing.pth", "-o", tmp_path / "n.onnx")  # a mistyped path, no hub id
    assert r.code == 2 and "checkpoint acme/missing.pth does not exist" in r.err, r.err


def test_a_timm_hub_folder_exports_with_what_its_config_says(cli, demo, tmp_path):
    """A folder as timm's push_to_hf_hub writes it (config.json with the architecture, its pretrained_cfg and
    label_names; model.safetensors): its size, preprocessing and class names are the export's defaults, and verify,
    with --timm too, reads the same folder. It was exit 2: its config.json was read as a transformers one."""
    import json

    model, hub, names = timm_hub_folder(tmp_path / "hub")
    out = tmp_path / "m.onnx"
    r = cli("export", "--checkpoint", hub, "-o", out)
    assert r.code == 0 and "from the checkpoint's config.json: swin_test" in " ".join(r.out.split()), r.err
    info = read_info(out)
    assert (info.variant, info.mean, info.std, info.interpolation, info.crop_pct, info.labels) == \
        ("swin_test", (0.5,) * 3, (0.5,) * 3, "bilinear", 1.0, tuple(names))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    for extra in ((), ("--timm",)):
        r = cli("verify", out, "--checkpoint", hub, "--samples", "4", *extra)
        assert r.code == 0, (extra, r.err)
    r = cli("verify", out, "--checkpoint", hub, "--samples", "4", "--transformers")  # was exit 3, from transformers
    assert r.code == 2 and "a timm hub folder is gated with --timm" in r.err, r.err
    folder, _ = demo
    r = cli("predict", out, folder / "data" / "val" / "3", "--top-k", "1", "--json", "-")
    assert r.code == 0 and json.loads(r.out)["predictions"][0]["top_k"][0]["label"] in names
    config = json.loads((hub / "config.json").read_text())
    (hub / "config.json").write_text(json.dumps({**config, "architecture": "swinv2_cr_tiny_ns_224"}))
    r = cli("export", "--checkpoint", hub, "-o", tmp_path / "n.onnx")  # was: "does not fit swin_t", the default
    assert r.code == 2 and "is of model 'swinv2_cr_tiny_ns_224', which is not a Swin variant" in r.err, r.err


def test_a_fine_tunes_window_from_its_model_arguments(cli, tmp_path):
    """A fine-tune at another window (timm's window_size model argument, as Swin at 384 is fine-tuned with window 12)
    records it in the hub config's model_args, or train.py's --model-kwargs: its position tables are sized for it, so
    the registry's window failed ('does not fit'). verify, against timm too, rebuilds the same model."""
    import argparse
    import json
    from dataclasses import replace

    from safetensors.torch import save_file

    from swin_deploy.models import SwinTransformer

    cfg = replace(get_config("swin_test"), window_size=2)
    torch.manual_seed(5)
    model = SwinTransformer(cfg).eval()
    _, hub, _ = timm_hub_folder(tmp_path / "hub")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(hub / "model.safetensors"))
    config = json.loads((hub / "config.json").read_text())
    (hub / "config.json").write_text(json.dumps({**config, "model_args": {"window_size": 2}}))
    train = tmp_path / "train.pth"
    torch.save({"state_dict": model.state_dict(),
                "args": argparse.Namespace(model="swin_test", img_size=None, model_kwargs={"window_size": 2})}, train)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = model(x).numpy()
    for checkpoint in (hub, train):
        out = tmp_path / f"{checkpoint.stem}.onnx"
        r = cli("export", "--checkpoint", checkpoint, "-o", out)
        assert r.code == 0 and "window 2" in " ".join(r.out.split()), (checkpoint, r.err)
        got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
        for extra in ((), ("--timm",)):
            r = cli("verify", out, "--checkpoint", checkpoint, "--samples", "4", *extra)
            assert r.code == 0, (checkpoint, extra, r.err)


def test_a_plain_state_dicts_window_from_its_tables_or_the_option(cli, tmp_path):
    """A fine-tune at another window saved as a plain state_dict (no model arguments anywhere): a V1 one shows its
    window in its position tables and exports with it; a V2 one shows it nowhere, and `--window-size` says it. A
    `--window-size` that the tables contradict names the tables' window."""
    from dataclasses import replace

    from swin_deploy.models import SwinTransformer

    x = torch.randn(2, 3, 64, 64)
    for variant in ("swin_test", "swinv2_test"):
        torch.manual_seed(5)
        model = SwinTransformer(replace(get_config(variant), window_size=2)).eval()
        path = tmp_path / f"{variant}.pth"
        torch.save(model.state_dict(), path)
        with torch.no_grad():
            want = model(x).numpy()
        out = tmp_path / f"{variant}.onnx"
        args = () if variant == "swin_test" else ("--variant", variant, "--window-size", "2")
        r = cli("export", "--checkpoint", path, *args, "-o", out)
        assert r.code == 0, r.err
        if variant == "swin_test":
            assert "window 2, from its tensors" in " ".join(r.out.split())
        got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), variant
        for extra in ((), ("--timm",)):
            r = cli("verify", out, "--checkpoint", path, "--samples", "4", *extra)
            assert r.code == 0, (variant, extra, r.err)
    r = cli("export", "--checkpoint", tmp_path / "swin_test.pth", "--window-size", "4", "-o", tmp_path / "n.onnx")
    assert r.code == 2 and "its position tables are for window 2, pass that as --window-size" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1


def test_export_options_that_contradict_each_other_are_refused_before_any_work(cli, tmp_path):
    """Class names for a --features export (no classes to name) were recorded; --simplifier beside --no-simplify lost
    to it silently."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(map(str, range(10))))
    for extra, said in ((("--features", "--class-names", names), "--class-names names a classifier's classes, and "
                                                                  "--features outputs the stage feature maps instead"),
                        (("--simplifier", "onnxslim", "--no-simplify"), "--no-simplify is --simplifier none")):
        r = cli("export", "--variant", "swin_test", "--random-init", *extra, "-o", tmp_path / "m.onnx")
        assert r.code == 2 and said in r.err and r.err.count("\n") == 1, (extra, r.err)
    assert not (tmp_path / "m.onnx").exists()
