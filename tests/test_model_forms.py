"""Swin as checkpoints hold it: other input channel counts, headless backbones (timm num_classes=0, transformers
SwinModel/Swinv2Model), and transformers' SwinBackbone/Swinv2Backbone, each against timm or transformers."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from swin_deploy.models import get_config

TINY_TIMM = dict(img_size=64, patch_size=4, embed_dim=16, depths=(2, 2, 2), num_heads=(2, 2, 4), window_size=4)
TINY_HF = dict(image_size=64, patch_size=4, embed_dim=16, depths=[2, 2, 2], num_heads=[2, 2, 4], window_size=4)


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Parameters moved off their init values (zero biases, unit norms would hide layout mistakes)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def timm_checkpoint(tmp_path, version: int, name: str, **kwargs):
    from timm.models.swin_transformer import SwinTransformer
    from timm.models.swin_transformer_v2 import SwinTransformerV2

    # the registry's swin_test / swinv2_test architectures, seeded whatever ran before
    torch.manual_seed(0)
    model = perturbed(SwinTransformer(**TINY_TIMM, **kwargs) if version == 1 else
                      SwinTransformerV2(**TINY_TIMM, pretrained_window_sizes=(3, 3, 2), **kwargs))
    path = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return model, path


def onnx_outputs(path, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": x})))


def rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def meta(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


@pytest.mark.parametrize("version", [1, 2])
def test_timms_features_only_backbone_exports_its_stage_maps(cli, tmp_path, version):
    """timm.create_model(..., features_only=True) (a FeatureListNet: stages named `layers_0`.., no final norm, no
    classifier), as detection and segmentation training saves a backbone: its stage maps, as timm returns them (NHWC
    there, NCHW here), with no --variant needed."""
    from timm.models import FeatureListNet

    model, ckpt = timm_checkpoint(tmp_path, version, "m")
    backbone = perturbed(FeatureListNet(model, out_indices=(0, 1, 2), flatten_sequential=True), seed=1)
    assert any(k.startswith("layers_0.") for k in backbone.state_dict()) and "norm.weight" not in backbone.state_dict()
    torch.save(backbone.state_dict(), ckpt)
    out = tmp_path / "m.onnx"
    r = cli("export", "--checkpoint", ckpt, "-o", out)
    assert r.code == 0, r.err
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = [m.permute(0, 3, 1, 2).numpy() for m in backbone(x)]
    got = onnx_outputs(out, x.numpy())
    assert list(got) == ["stage1", "stage2", "stage3"]
    assert all(rel(g, w) <= 1e-4 for g, w in zip(got.values(), want))
    assert cli("verify", out, "--checkpoint", ckpt, "--samples", "4", "--batch-sizes", "2").code == 0


@pytest.mark.parametrize("version", [1, 2])
def test_torchvision_checkpoints_match_torchvision_at_every_size(cli, tmp_path, version):
    """torchvision's Swin (`torchvision.models.swin_t`, `swin_v2_t`, ...; its state_dict: one `features` Sequential,
    `mlp.0`/`mlp.3`, one qkv bias in V2): converted to timm's layout, and where the windows do not tile a stage grid
    padded as torchvision pads (before the shift, the window kept on grids smaller than it), which timm does not."""
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

    torch.manual_seed(0)
    v2 = dict(block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2) if version == 2 else {}
    model = perturbed(SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2, 2], num_heads=[2, 2, 4],
                                      window_size=[4, 4], num_classes=10, **v2))
    ckpt = tmp_path / "tv.pth"
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / "m.onnx"  # no --variant: torchvision's V2 keeps its window in a coordinate table, timm's nowhere
    r = cli("export", "--checkpoint", ckpt, "--dynamic-size", "--min-size", "32,32", "-o", out)
    assert r.code == 0, r.err
    assert "padded as torchvision pads" in " ".join(r.out.split())
    for size in ((64, 64), (96, 96), (32, 64), (160, 96)):  # its own size; padded stages; grids below the window
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = model(x).numpy()
        assert rel(onnx_outputs(out, x.numpy())["logits"], want) <= 1e-4, size
    r = cli("verify", out, "--checkpoint", ckpt, "--samples", "4", "--batch-sizes", "2", "--img-sizes", "64,96")
    assert r.code == 0, r.err
    r = cli("verify", out, "--checkpoint", ckpt, "--timm", "--samples", "4")
    assert r.code == 2 and "pads otherwise than timm's model" in r.err, r.err
    if version == 2:  # swin_v2_t's tensors fit swinv2_t and swinv2_t_w16; its coordinate table says window 8
        import torchvision

        from swin_deploy.models import Weights
        from swin_deploy.models.checkpoint import variant_from_tensors

        torch.save(torchvision.models.swin_v2_t(num_classes=7).state_dict(), tmp_path / "swin_v2_t.pth")
        assert variant_from_tensors(Weights("checkpoint", tmp_path / "swin_v2_t.pth")) == "swinv2_t"


@pytest.mark.parametrize("version, in_chans, num_classes", [(1, 1, 10), (2, 4, 10), (1, 3, 0), (2, 1, 0), (1, 3, 7),
                                                            (2, 3, 37)],
                         ids=["v1-gray", "v2-4ch", "v1-headless", "v2-gray-headless", "v1-7-classes", "v2-37-classes"])
def test_timm_channels_and_headless_match_timm(cli, tmp_path, version, in_chans, num_classes):
    """A checkpoint's own input channels and class count (a fine-tune's: the variant's 10 classes are not needed), or
    none (headless), as timm's model with the same weights has them."""
    model, ckpt = timm_checkpoint(tmp_path, version, "m", in_chans=in_chans, num_classes=num_classes)
    variant = "swin_test" if version == 1 else "swinv2_test"
    cfg = get_config(variant)
    assert (cfg.img_size, cfg.embed_dim, cfg.depths) == ((64, 64), 16, (2, 2, 2))  # the same tiny architecture
    out = tmp_path / "m.onnx"
    extra = ("--dynamic-size",) if version == 1 and in_chans == 1 else ()
    r = cli("export", "--variant", variant, "--checkpoint", ckpt, "-o", out, "--max-batch", "4", *extra)
    assert r.code == 0, r.err
    x = torch.randn(3, in_chans, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x).numpy()
    got = onnx_outputs(out, x.numpy())
    name = "logits" if num_classes else "features"
    assert list(got) == [name] and got[name].shape == ref.shape and rel(got[name], ref) <= 1e-4
    m = meta(out)
    assert json.loads(m["swin_deploy.input_size"])[0] == in_chans and int(m["swin_deploy.num_classes"]) == num_classes
    assert len(json.loads(m["swin_deploy.mean"])) == in_chans
    # timm as the independent reference, and the native one
    assert cli("verify", out, "--checkpoint", ckpt, "--timm", "--samples", "4", "--batch-sizes", "2").code == 0
    r = cli("verify", out, "--checkpoint", ckpt, "--samples", "4", "--batch-sizes", "2,1", "--report", tmp_path / "r.json")
    assert r.code == 0, r.err
    report = json.loads((tmp_path / "r.json").read_text())
    assert bool(report["not_applicable"]) == (num_classes == 0)
    assert ("features.max_rel_delta" in report["batches"][0]["metrics"]) == (num_classes == 0)
    if not num_classes:  # --features works without a head
        assert cli("export", "--variant", variant, "--checkpoint", ckpt, "--features", "-o", tmp_path / "f.onnx").code == 0
        assert [o.name for o in onnx.load(str(tmp_path / "f.onnx")).graph.output] == ["stage1", "stage2", "stage3"]


def test_a_fine_tunes_class_names(cli, demo, tmp_path):
    """`--class-names FILE` names a fine-tune's classes (timm checkpoints carry none): predict and Triton show them.
    A file whose count is not the classifier's, or names for a headless model, exit 2 and write nothing."""
    folder, _ = demo
    _, ckpt = timm_checkpoint(tmp_path, 1, "seven", num_classes=7)
    names = ["cat", "dog", "bird", "fish", "frog", "horse", "ship"]
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n\n")
    out = tmp_path / "seven.onnx"
    assert cli("export", "--variant", "swin_test", "--checkpoint", ckpt, "--class-names", tmp_path / "names.txt",
               "-o", out).code == 0
    assert json.loads(meta(out)["swin_deploy.labels"]) == names
    r = cli("predict", out, folder / "data" / "val" / "3", "--top-k", "7", "--json", "-")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["labels"] == "metadata"
    assert {(k["index"], k["label"]) for k in doc["predictions"][0]["top_k"]} == set(enumerate(names))
    (tmp_path / "six.txt").write_text("\n".join(names[:6]))
    r = cli("export", "--variant", "swin_test", "--checkpoint", ckpt, "--class-names", tmp_path / "six.txt",
            "-o", tmp_path / "six.onnx")
    assert r.code == 2 and "gives 6 names for the model's 7 classes" in r.err and not (tmp_path / "six.onnx").exists()
    _, headless = timm_checkpoint(tmp_path, 1, "headless", num_classes=0)
    r = cli("export", "--variant", "swin_test", "--checkpoint", headless, "--class-names", tmp_path / "names.txt",
            "-o", tmp_path / "h.onnx")
    assert r.code == 2 and "has no classifier" in r.err, r.err


def test_grayscale_images_are_read_as_luminance_and_raw_pixels_fold(cli, demo, tmp_path):
    """A 1-channel model reads the demo PNGs as PIL's "L"; its uint8 export folds the 1-channel normalisation; INT8
    calibrates and verifies on the same images; bench and the TensorRT lint take it."""
    folder, _ = demo
    _, ckpt = timm_checkpoint(tmp_path, 2, "gray", in_chans=1, num_classes=10)
    fp32, pixels, int8 = tmp_path / "g.onnx", tmp_path / "g.u8.onnx", tmp_path / "g.int8.onnx"
    assert cli("export", "--variant", "swinv2_test", "--checkpoint", ckpt, "--max-batch", "8", "-o", fp32).code == 0
    r = cli("export", "--variant", "swinv2_test", "--checkpoint", ckpt, "--input-format", "uint8", "--channels-last",
            "-o", pixels)
    assert r.code == 0, r.err
    val = folder / "data" / "val"
    for artifact in (fp32, pixels):
        r = cli("verify", artifact, "--checkpoint", ckpt, "--data", val, "--limit", "16", "--batch-sizes", "8")
        assert r.code == 0, r.err
    from PIL import Image

    from swin_deploy.artifact import artifact_info
    from swin_deploy.data import list_images, load_all, transform_for

    red = tmp_path / "red"
    red.mkdir()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(red / "red.png")
    x, _ = load_all(list_images(red), transform_for(artifact_info(pixels)))
    assert x.shape == (1, 64, 64, 1) and x.dtype == np.uint8 and (x == 76).all()  # ITU-R 601 luma of pure red
    r = cli("quantize", fp32, "--precision", "int8", "--calib-data", folder / "data" / "calib", "--calib-images", "32",
            "-o", int8)
    assert r.code == 0, r.err
    # random weights: near-tied classes make top-1 agreement meaningless, the logit gates are what counts here
    r = cli("verify", int8, "--checkpoint", ckpt, "--data", val, "--limit", "32", "--batch-sizes", "8",
            "--min-top1-agreement", "0", "--min-top5-agreement", "0", "--max-top1-drop", "100")
    assert r.code == 0, r.err
    assert cli("check", int8).code == 0
    r = cli("bench", int8, "--torch", "swinv2_test", "--checkpoint", ckpt, "--batch-sizes", "1", "--iterations", "2",
            "--warmup", "0")
    assert r.code == 0, r.err
    r = cli("predict", pixels, val / "3", "--top-k", "2", "--json", "-")
    assert r.code == 0 and len(json.loads(r.out)["predictions"]) == len(list((val / "3").iterdir())), r.err
    if importlib.util.find_spec("tritonclient") is not None:
        r = cli("triton", pixels, "--repo", tmp_path / "repo", "--name", "gray")
        assert r.code == 0, r.err
        config = (tmp_path / "repo" / "gray" / "config.pbtxt").read_text()
        assert "TYPE_UINT8\n  dims: 64\n  dims: 64\n  dims: 1\n}" in config, config
        assert cli("triton", "--check", tmp_path / "repo" / "gray").code == 0


def test_16_bit_images_read_as_their_8_bit_values(demo, tmp_path):
    """A 16-bit grayscale PNG (PIL mode I;16) is scaled to 8 bits, not clipped to white by PIL's convert()."""
    from PIL import Image

    from swin_deploy.artifact import artifact_info
    from swin_deploy.data import list_images, load_all, transform_for

    folder, paths = demo
    eight = np.asarray(Image.open(next((folder / "data" / "val" / "3").iterdir())).convert("L"))
    (tmp_path / "8").mkdir(), (tmp_path / "16").mkdir()
    Image.fromarray(eight).save(tmp_path / "8" / "x.png")
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "16" / "x.png")
    assert Image.open(tmp_path / "16" / "x.png").mode == "I;16"
    transform = transform_for(artifact_info(paths["swin_digits"]))
    (x8, _), (x16, _) = (load_all(list_images(tmp_path / bits), transform) for bits in ("8", "16"))
    assert eight.min() < 128 < eight.max() and np.array_equal(x8, x16)


def test_photos_are_read_upright_by_their_exif_orientation(demo, tmp_path):
    """A phone stores the sensor's pixels and an EXIF orientation saying how to turn them: the model gets the picture
    as viewers show it (here a digit stored on its side with orientation 6, "turn 90 degrees clockwise")."""
    from PIL import Image

    from swin_deploy.artifact import artifact_info
    from swin_deploy.data import list_images, load_all, transform_for

    folder, paths = demo
    upright = Image.open(next((folder / "data" / "val" / "7").iterdir())).convert("L")
    for name in ("upright", "tagged", "untagged"):
        (tmp_path / name).mkdir()
    upright.save(tmp_path / "upright" / "x.png")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise, as the sensor held sideways saw it
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "tagged" / "x.png", exif=exif)
    stored.save(tmp_path / "untagged" / "x.png")
    assert Image.open(tmp_path / "tagged" / "x.png").getexif()[0x0112] == 6
    transform = transform_for(artifact_info(paths["swin_digits"]))
    x = {name: load_all(list_images(tmp_path / name), transform)[0] for name in ("upright", "tagged", "untagged")}
    assert np.array_equal(x["tagged"], x["upright"]) and not np.array_equal(x["untagged"], x["upright"])


def test_other_channel_counts_read_npy_arrays_and_refuse_image_folders(cli, demo, tmp_path):
    folder, _ = demo
    _, ckpt = timm_checkpoint(tmp_path, 1, "four", in_chans=4, num_classes=10)
    out = tmp_path / "four.onnx"
    assert cli("export", "--variant", "swin_test", "--checkpoint", ckpt, "-o", out).code == 0
    r = cli("verify", out, "--checkpoint", ckpt, "--data", folder / "data" / "val", "--limit", "4", "--report",
            tmp_path / "no.json")
    assert r.code == 2 and "4-channel model reads no image files" in r.err and ".npy" in r.err
    assert not (tmp_path / "no.json").exists()
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(arrays / f"{i}.npy", rng.standard_normal((4, 64, 64), dtype=np.float32))
    assert cli("verify", out, "--checkpoint", ckpt, "--data", arrays, "--batch-sizes", "2").code == 0
    np.save(arrays / "bad.npy", np.zeros((3, 64, 64), np.float32))
    r = cli("verify", out, "--checkpoint", ckpt, "--data", arrays, "--batch-sizes", "2")
    assert r.code == 2 and "bad.npy holds an array of shape (3, 64, 64); this artifact takes (4, 64, 64)" in r.err


def test_headless_int8_gates_and_predict_refuses(cli, demo, tmp_path):
    """The demo model without its classifier: FP32 and INT8 pass verify on the held-out digits (feature metrics, no
    accuracy), a perturbed artifact fails, predict refuses with one line, a head of the wrong size names the tensor."""
    from swin_deploy.models import Weights, build_model

    folder, _ = demo
    model, _ = build_model(get_config("swin_digits"), Weights())
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    ckpt = tmp_path / "backbone.pth"
    torch.save(state, ckpt)
    fp32, int8 = tmp_path / "h.onnx", tmp_path / "h.int8.onnx"
    assert cli("export", "--variant", "swin_digits", "--checkpoint", ckpt, "-o", fp32, "--max-batch", "32").code == 0
    assert cli("quantize", fp32, "--precision", "int8", "--calib-data", folder / "data" / "calib", "-o", int8).code == 0
    val = folder / "data" / "val"
    for artifact in (fp32, int8):
        r = cli("verify", artifact, "--checkpoint", ckpt, "--data", val, "--batch-sizes", "32,1")
        assert r.code == 0, r.err
        assert "not applicable" in r.out and "top1" not in r.out and "(output gates only)" in r.out
    proto = onnx.load(str(fp32))
    weight = max(proto.graph.initializer, key=lambda t: t.dims[0] if len(t.dims) == 2 else 0)
    values = onnx.numpy_helper.to_array(weight).copy()
    values *= 1.5
    weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))
    r = cli("verify", bad, "--checkpoint", ckpt, "--data", val, "--limit", "32", "--batch-sizes", "32")
    assert r.code == 1 and "features.max_rel_delta" in r.err
    r = cli("predict", fp32, val / "3")
    assert r.code == 2 and "pooled features (no classifier)" in r.err and len(r.err.strip().splitlines()) == 1
    if importlib.util.find_spec("tritonclient") is not None:  # served with its features output, no labels
        assert cli("triton", int8, "--repo", tmp_path / "repo", "--name", "h").code == 0
        config = (tmp_path / "repo" / "h" / "config.pbtxt").read_text()
        assert 'name: "features"' in config and "label_filename" not in config
        assert cli("triton", "--check", tmp_path / "repo" / "h").code == 0
    wrong = dict(state, **{"head.fc.weight": torch.zeros(7, 96), "head.fc.bias": torch.zeros(7)})
    torch.save(wrong, tmp_path / "wrong.pth")
    r = cli("export", "--variant", "swin_digits", "--checkpoint", tmp_path / "wrong.pth", "-o", tmp_path / "w.onnx")
    assert r.code == 2 and "'head.fc.weight' has shape (7, 96)" in r.err and not (tmp_path / "w.onnx").exists()


def save_hf(folder, cls_name: str, seed: int = 0, **config):
    transformers = pytest.importorskip("transformers", reason="transformers is in the dev extra")
    version = 2 if cls_name.startswith("Swinv2") else 1
    Config = transformers.Swinv2Config if version == 2 else transformers.SwinConfig
    model = perturbed(getattr(transformers, cls_name)(Config(**{**TINY_HF, **config})), seed)
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("cls_name, config, outputs", [
    ("SwinModel", {"num_channels": 1}, ["features"]),
    ("Swinv2Model", {}, ["features"]),
    ("SwinBackbone", {"out_features": ["stem", "stage1", "stage3"]}, ["stem", "stage1", "stage3"]),
    ("Swinv2Backbone", {"out_features": ["stage2", "stage3"], "num_channels": 1}, ["stage2", "stage3"]),
    ("SwinForImageClassification", {"num_channels": 1, "num_labels": 5}, ["logits"]),
])
def test_transformers_models_and_backbones_match_transformers(cli, tmp_path, cls_name, config, outputs):
    folder = tmp_path / "hf"
    model = save_hf(folder, cls_name, **config)
    out = tmp_path / "m.onnx"
    r = cli("export", "--checkpoint", folder, "-o", out, "--max-batch", "4")
    assert r.code == 0, r.err
    chans = config.get("num_channels", 3)
    x = torch.randn(3, chans, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(pixel_values=x)
    expected = (list(ref.feature_maps) if hasattr(ref, "feature_maps") else
                [ref.logits if hasattr(ref, "logits") else ref.pooler_output])
    got = onnx_outputs(out, x.numpy())
    assert list(got) == outputs
    for name, want in zip(outputs, expected):
        assert got[name].shape == tuple(want.shape) and rel(got[name], want.numpy()) <= 1e-4, name
    r = cli("verify", out, "--checkpoint", folder, "--transformers", "--samples", "4", "--batch-sizes", "2,1")
    assert r.code == 0 and "transformers-fp32" in r.out, r.err
    assert cli("check", out).code == 0
    # OpenVINO names its outputs as the artifact does (features, stem, stageN)
    r = cli("verify", out, "--checkpoint", folder, "--backend", "openvino", "--samples", "4", "--batch-sizes", "2")
    assert r.code == 0, r.err


def test_feature_maps_of_a_transformers_classifier_verify_against_the_native_model(cli, tmp_path):
    """transformers has no model giving a classifier checkpoint's raw stage maps (its backbone class adds LayerNorms
    the checkpoint has no weights for): --transformers says so, the native reference gates them."""
    folder = tmp_path / "hf"
    save_hf(folder, "Swinv2ForImageClassification")
    out = tmp_path / "f.onnx"
    assert cli("export", "--checkpoint", folder, "--features", "-o", out).code == 0
    r = cli("verify", out, "--checkpoint", folder, "--transformers", "--samples", "4", "--batch-sizes", "2")
    assert r.code == 2 and "Swinv2ForImageClassification's logits, and this artifact outputs feature maps" in r.err
    r = cli("verify", out, "--checkpoint", folder, "--samples", "4", "--batch-sizes", "2")
    assert r.code == 0 and "stage3.min_cosine" in r.out, r.err


def test_transformers_backbone_with_dynamic_size(cli, tmp_path):
    folder = tmp_path / "hf"
    model = save_hf(folder, "SwinBackbone", out_features=["stage1", "stage2", "stage3"])
    out = tmp_path / "d.onnx"
    r = cli("export", "--checkpoint", folder, "--dynamic-size", "--max-size", "128,128", "-o", out)
    assert r.code == 0, r.err
    x = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = model(pixel_values=x).feature_maps
    got = onnx_outputs(out, x.numpy())
    for name, w in zip(["stage1", "stage2", "stage3"], want):
        assert rel(got[name], w.numpy()) <= 1e-4, name


@pytest.mark.parametrize("cls_name, config", [
    ("Swinv2ForImageClassification", {"image_size": 128}),
    ("SwinBackbone", {"out_features": ["stage1", "stage3"]}),
])
def test_transformers_models_that_keep_their_window_go_dynamic_down_to_one_stride(cli, tmp_path, cls_name, config):
    """transformers' Swinv2 and SwinBackbone keep their window on stage grids smaller than it and pad the grid (timm
    and transformers' Swin shrink the window, which a dynamic graph cannot follow): their dynamic exports start at one
    stride (16 here) and match transformers there, where every stage grid is at most one window."""
    transformers = pytest.importorskip("transformers", reason="transformers is in the dev extra")
    folder = tmp_path / "hf"
    save_hf(folder, cls_name, **config)
    out = tmp_path / "d.onnx"
    r = cli("export", "--checkpoint", folder, "--dynamic-size", "--max-size", "128,128", "-o", out)
    assert r.code == 0 and "16x16 to 128x128 (dynamic)" in r.out, r.out + r.err
    for size in [(16, 16), (48, 80)]:
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            ref = getattr(transformers, cls_name).from_pretrained(str(folder)).eval()(pixel_values=x)
        want = list(ref.feature_maps) if hasattr(ref, "feature_maps") else [ref.logits]
        got = list(onnx_outputs(out, x.numpy()).values())
        assert len(got) == len(want) and all(rel(g, w.numpy()) <= 1e-4 for g, w in zip(got, want)), size
    save_hf(tmp_path / "v1", "SwinForImageClassification")  # shrinks its window: one full window per stage
    r = cli("export", "--checkpoint", tmp_path / "v1", "--dynamic-size", "--min-size", "16,16", "-o", tmp_path / "v1.onnx")
    assert r.code == 2 and "must be at least 64" in r.err, r.err


@pytest.mark.parametrize("cls_name", ["SwinForImageClassification", "Swinv2ForImageClassification"])
def test_transformers_classifiers_at_other_sizes_match_transformers(cli, tmp_path, cls_name):
    """Away from its config's 64x64, where stage 3's 4x4 grid is one window: transformers' Swinv2 keeps the shifts
    it decided at 64x64 (none at stage 3), and its Swin takes the shift off both axes of a grid one window covers
    along either axis; timm decides per size and axis. Exports of transformers checkpoints follow transformers, and
    verify --transformers runs a fresh transformers model per size (its Swin drops shifts in place for later inputs)."""
    transformers = pytest.importorskip("transformers", reason="transformers is in the dev extra")
    folder = tmp_path / "hf"
    save_hf(folder, cls_name)
    dynamic, static = tmp_path / "d.onnx", tmp_path / "s.onnx"
    assert cli("export", "--checkpoint", folder, "--dynamic-size", "--max-size", "128,128", "-o", dynamic).code == 0
    assert cli("export", "--checkpoint", folder, "--img-size", "128", "-o", static).code == 0
    for size in [(128, 128), (64, 128), (128, 64)]:
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():  # a fresh model per size: transformers' Swin changes its blocks as it runs
            want = getattr(transformers, cls_name).from_pretrained(str(folder)).eval()(pixel_values=x).logits.numpy()
        assert rel(onnx_outputs(dynamic, x.numpy())["logits"], want) <= 1e-4, size
        if size == (128, 128):
            assert rel(onnx_outputs(static, x.numpy())["logits"], want) <= 1e-4
    r = cli("verify", dynamic, "--checkpoint", folder, "--transformers", "--samples", "4",
            "--img-sizes", "64,64x128,128", "--batch-sizes", "2")
    assert r.code == 0, r.out + r.err


@pytest.mark.parametrize("cls_name, config", [
    ("SwinForImageClassification", {}),
    ("Swinv2ForImageClassification", {"image_size": 128}),  # at 64, stage 3 (one window) would keep no shift
])
def test_transformers_pads_stage_grids_before_the_shift(cli, tmp_path, cls_name, config):
    """Where windows do not tile a stage grid transformers pads it before the cyclic shift, timm after; the two
    differ where the padding is not the shift (here stage 3: a 5x5 or 5x7 grid padded by 3 under 4x4 windows shifted
    by 2; Swin at 80x80 0.09x max|logit| apart). Exports of transformers checkpoints pad as transformers does,
    static and dynamic, and verify --transformers gates them there."""
    transformers = pytest.importorskip("transformers", reason="transformers is in the dev extra")
    folder = tmp_path / "hf"
    save_hf(folder, cls_name, **config)
    dynamic, static = tmp_path / "d.onnx", tmp_path / "s.onnx"
    assert cli("export", "--checkpoint", folder, "--dynamic-size", "--max-size", "128,128", "-o", dynamic).code == 0
    assert cli("export", "--checkpoint", folder, "--img-size", "80x112", "-o", static).code == 0
    for size in [(80, 112), (80, 80)]:
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            want = getattr(transformers, cls_name).from_pretrained(str(folder)).eval()(pixel_values=x).logits.numpy()
        assert rel(onnx_outputs(dynamic, x.numpy())["logits"], want) <= 1e-4, size
        if size == (80, 112):
            assert rel(onnx_outputs(static, x.numpy())["logits"], want) <= 1e-4
    r = cli("verify", dynamic, "--checkpoint", folder, "--transformers", "--samples", "4", "--img-sizes", "80",
            "--batch-sizes", "2")
    assert r.code == 0, r.out + r.err
    r = cli("verify", static, "--checkpoint", folder, "--timm", "--samples", "4")  # timm pads after the shift
    assert r.code == 2 and "follows a transformers or torchvision checkpoint" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1
    # bench's PyTorch model by the artifact's own name (a transformers checkpoint's: no registry variant), at its size,
    # also in the fresh process that measures memory
    variant = meta(static)["swin_deploy.variant"]
    r = cli("bench", static, "--torch", variant, "--checkpoint", folder, "--batch-sizes", "1", "--iterations", "2",
            "--warmup", "0", "--memory", "--json", tmp_path / "b.json")
    assert r.code == 0, r.out + r.err
    assert json.loads((tmp_path / "b.json").read_text())["runners"][f"pytorch {variant}"]["input_size"] == "80x112"


def test_swin_backbone_smaller_than_its_window_pads_as_transformers(cli, tmp_path):
    """transformers' SwinBackbone keeps its window on a stage grid smaller than the window and pads the grid to it
    before the cyclic shift (image_size 48: stage 3's 3x3 grid padded by 1 under 4x4 windows shifted by 2); the
    export does the same."""
    folder = tmp_path / "hf"
    model = save_hf(folder, "SwinBackbone", **{"image_size": 48, "out_features": ["stage1", "stage3"]})
    out = tmp_path / "b.onnx"
    r = cli("export", "--checkpoint", folder, "-o", out)
    assert r.code == 0, r.err
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = model(pixel_values=x).feature_maps
    got = onnx_outputs(out, x.numpy())
    for name, w in zip(["stage1", "stage3"], want):
        assert rel(got[name], w.numpy()) <= 1e-4, name


def test_transformers_stage_grids_smaller_than_the_window(cli, tmp_path):
    """At 32 pixels the third stage grid is 2x2 under a 4x4 window: transformers' Swinv2 runs that (window shrunk to
    the grid, bias rebuilt) and so does the export, to parity; its Swin (V1) fails in its own forward, so the export
    refuses with one line instead of a shape mismatch."""
    v2 = save_hf(tmp_path / "v2", "Swinv2ForImageClassification", image_size=32)
    out = tmp_path / "v2.onnx"
    assert cli("export", "--checkpoint", tmp_path / "v2", "-o", out).code == 0
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = v2(pixel_values=x).logits.numpy()
    assert rel(onnx_outputs(out, x.numpy())["logits"], want) <= 1e-4
    v1 = save_hf(tmp_path / "v1", "SwinForImageClassification", image_size=32)
    with pytest.raises(RuntimeError):  # transformers itself
        v1(pixel_values=x)
    r = cli("export", "--checkpoint", tmp_path / "v1", "-o", tmp_path / "v1.onnx")
    assert r.code == 2 and "cannot run either" in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "v1.onnx").exists()
