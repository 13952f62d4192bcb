"""Hugging Face transformers checkpoints (V1 and V2, saved with save_pretrained: no hub access) and `predict`."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from swin_deploy.artifact import read_info

transformers = pytest.importorskip("transformers", reason="transformers is in the dev extra")

TINY = dict(image_size=64, patch_size=4, embed_dim=16, depths=[2, 2, 2], num_heads=[2, 2, 4], window_size=4)
SMALL_V1 = dict(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7)


def save_hf(folder, version: int, arch: dict, labels: int, seed: int = 0, **extra):
    """A random transformers classifier (weights moved off their init values), saved with save_pretrained."""
    Config, Model = ((transformers.SwinConfig, transformers.SwinForImageClassification) if version == 1 else
                     (transformers.Swinv2Config, transformers.Swinv2ForImageClassification))
    torch.manual_seed(seed)
    config = Config(**arch, num_labels=labels, id2label={i: f"kind {i}" for i in range(labels)}, **extra)
    model = Model(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.save_pretrained(folder)
    return model


def parity(onnx_path, model, size, batch=3) -> float:
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(pixel_values=x).logits.numpy()
    out = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("version, arch, labels, extra", [
    (1, TINY, 10, {}),
    (2, TINY, 1000, {"pretrained_window_sizes": [3, 3, 2]}),
    (1, SMALL_V1, 1000, {}),
], ids=["v1-tiny-10", "v2-tiny-1000", "v1-small-1000"])
def test_export_from_a_save_pretrained_folder_matches_transformers(cli, tmp_path, version, arch, labels, extra):
    folder = tmp_path / "hf"
    model = save_hf(folder, version, arch, labels, **extra)
    out = tmp_path / "m.onnx"
    args = ["--variant", "swin_t"] if arch is SMALL_V1 else []  # a --variant that agrees is accepted
    r = cli("export", "--checkpoint", folder, *args, "-o", out)
    assert r.code == 0, r.err
    assert parity(out, model, (arch["image_size"],) * 2) <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
    assert json.loads(meta["swin_deploy.labels"])[:2] == ["kind 0", "kind 1"]
    assert int(meta["swin_deploy.num_classes"]) == labels
    r = cli("verify", out, "--checkpoint", folder, "--transformers", "--samples", "4", "--batch-sizes", "2,1")
    assert r.code == 0 and "transformers-fp32" in r.out, r.err
    assert cli("verify", out, "--checkpoint", folder, "--samples", "4", "--batch-sizes", "2").code == 0


def test_a_sharded_save_pretrained_folder_exports_and_names_a_missing_shard(cli, tmp_path):
    """save_pretrained past `max_shard_size` writes shards and an index (`model.safetensors.index.json`): export reads
    every shard, the weights' identity covers them all, and a missing shard is named."""
    folder = tmp_path / "hf"
    model = save_hf(folder, 2, TINY, 5)
    model.save_pretrained(folder, max_shard_size="100KB")  # the same weights, in shards now
    (folder / "model.safetensors").unlink(missing_ok=True)
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1 and (folder / "model.safetensors.index.json").is_file()
    out = tmp_path / "m.onnx"
    r = cli("export", "--checkpoint", folder, "-o", out)
    assert r.code == 0, r.err
    assert parity(out, model, (64, 64)) <= 1e-4
    assert cli("verify", out, "--checkpoint", folder, "--samples", "4", "--batch-sizes", "2").code == 0
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(shards[-1]))  # other weights in the last shard, the index unchanged: another identity
    save_file({k: v + 0.01 for k, v in tensors.items()}, str(shards[-1]), metadata={"format": "pt"})
    assert cli("export", "--checkpoint", folder, "-o", tmp_path / "other.onnx").code == 0
    assert read_info(tmp_path / "other.onnx").weights_sha256 != read_info(out).weights_sha256
    shards[-1].unlink()
    r = cli("export", "--checkpoint", folder, "-o", tmp_path / "n.onnx")
    assert r.code == 2 and f"names the shard {shards[-1].name}, which is not in" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1


def test_a_sharded_hub_repository_is_fetched_with_its_shards(tmp_path, monkeypatch):
    """A hub id whose repository holds shards, not model.safetensors: the second fetch asks for the shards the index
    names (the first fetched the JSON files, the index among them)."""
    import huggingface_hub

    from swin_deploy.models import checkpoint

    asked = []

    def fetch(repo_id, allow_patterns):
        asked.append(allow_patterns)
        (tmp_path / "model.safetensors.index.json").write_text("{}")
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fetch)
    monkeypatch.setattr(checkpoint, "_hub_reachable", lambda: True)
    assert checkpoint.hub_snapshot("acme/sharded") == tmp_path
    assert asked == [["*.json", "model.safetensors"], ["*.json", "model-*-of-*.safetensors"]]


def test_transformers_4_names_and_preprocessing(cli, tmp_path):
    """Hub checkpoints saved by transformers 4.x spell the V1 attention as attention.self.query/... and the MLP as
    intermediate/output.dense; preprocessor_config.json sets mean, std and resampling."""
    from safetensors.torch import save_file

    folder = tmp_path / "new"
    model = save_hf(folder, 1, TINY, 10)
    old = tmp_path / "old"
    old.mkdir()
    renames = [("attention.q_proj", "attention.self.query"), ("attention.k_proj", "attention.self.key"),
               ("attention.v_proj", "attention.self.value"), ("attention.o_proj", "attention.output.dense"),
               ("attention.relative_position_bias.relative_position_bias_table",
                "attention.self.relative_position_bias_table"), ("mlp.fc1", "intermediate.dense"),
               ("mlp.fc2", "output.dense")]
    state = {}
    for k, v in model.state_dict().items():
        for a, b in renames:
            k = k.replace(a, b)
        state[k] = v.contiguous()
    assert any("attention.self.query" in k for k in state)
    save_file(state, str(old / "model.safetensors"))
    (old / "config.json").write_text((folder / "config.json").read_text())
    (old / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "resample": 2, "size": {"height": 64, "width": 64}}))
    out = tmp_path / "old.onnx"
    r = cli("export", "--checkpoint", old / "model.safetensors", "-o", out)  # the weights file, config.json beside it
    assert r.code == 0, r.err
    assert parity(out, model, (64, 64)) <= 1e-4
    from swin_deploy.artifact import read_info

    info = read_info(out)
    assert (info.mean, info.std, info.interpolation, info.crop_pct) == ((0.5,) * 3, (0.25,) * 3, "bilinear", 1.0)


@pytest.mark.parametrize("processor, mode", [
    ("ViTImageProcessor", "squash"),  # what transformers' Swin checkpoints name: both sides to the size, no crop
    ("ConvNextImageProcessor", "center"),  # the short side to size / crop_pct, then a center crop
])
def test_images_are_preprocessed_as_the_checkpoints_image_processor_does(cli, tmp_path, processor, mode):
    """On a 90x150 photo-like image (not square, so a crop and a squash differ), the artifact's preprocessing gives
    what the checkpoint's own image processor gives, to within one grey level of rounding."""
    from PIL import Image

    from swin_deploy.artifact import read_info
    from swin_deploy.data import transform_for

    folder = tmp_path / "hf"
    save_hf(folder, 1, TINY, 3)
    size = {"height": 64, "width": 64} if processor == "ViTImageProcessor" else {"shortest_edge": 64}
    extra = {"crop_pct": 0.875} if processor == "ConvNextImageProcessor" else {}
    proc = getattr(transformers, processor)(size=size, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3, **extra)
    proc.save_pretrained(folder)
    out = tmp_path / "m.onnx"
    assert cli("export", "--checkpoint", folder, "-o", out).code == 0
    info = read_info(out)
    assert info.crop_mode == mode
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 150, 3), dtype=np.uint8))
    want = proc(images=image, return_tensors="np")["pixel_values"][0]
    got = transform_for(info).image(image)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1.5 / 255 / 0.5


def test_bad_transformers_checkpoints_exit_2_with_one_line(cli, tmp_path):
    folder = tmp_path / "hf"
    save_hf(folder, 2, TINY, 10, pretrained_window_sizes=[0, 0, 0])
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 16}))
    mismatch = tmp_path / "mismatch"
    mismatch.mkdir()
    config = json.loads((folder / "config.json").read_text())
    (mismatch / "config.json").write_text(json.dumps({**config, "embed_dim": 32}))
    (mismatch / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    extra = tmp_path / "extra"
    extra.mkdir()
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    save_file({**state, "swinv2.embeddings.position_embeddings": torch.zeros(1, 256, 16)}, str(extra / "model.safetensors"))
    (extra / "config.json").write_text((folder / "config.json").read_text())
    cases = [
        (["--checkpoint", other], "describes a 'bert' model"),
        (["--checkpoint", mismatch], "does not fit"),
        (["--checkpoint", folder, "--variant", "swin_test"], "--variant swin_test disagrees with the checkpoint's "
                                                             "config.json on version"),
        (["--checkpoint", folder, "--variant", "swinv2_t"], "on img_size"),
        (["--checkpoint", extra], "'swinv2.embeddings.position_embeddings' has no place"),
    ]
    for args, message in cases:
        out = tmp_path / "x.onnx"
        r = cli("export", *args, "-o", out)
        assert r.code == 2 and message in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) == 1 and not out.exists()


def test_predict_names_digits_and_agrees_with_pytorch(cli, demo, tmp_path):
    from swin_deploy.artifact import read_info
    from swin_deploy.backends import run_batched
    from swin_deploy.data import list_images, load_all, transform_for
    from swin_deploy.models import Weights
    from swin_deploy.verify.reference import torch_reference

    folder, paths = demo
    int8 = tmp_path / "d.int8.onnx"
    assert cli("quantize", paths["swinv2_digits"], "--precision", "int8", "--calib-data", folder / "data" / "calib",
               "--calib-images", "128", "-o", int8).code == 0
    val = folder / "data" / "val"
    r = cli("predict", int8, val, "--json", "-", "--top-k", "3", "--batch-size", "32")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["labels"] == "metadata" and len(doc["predictions"]) == 359 and doc["skipped"] == []
    assert all(len(p["top_k"]) == 3 and p["top_k"][0]["probability"] >= p["top_k"][1]["probability"]
               for p in doc["predictions"])
    info = read_info(paths["swinv2_digits"])
    images = list_images(val)
    x, _ = load_all(images, transform_for(info))
    with torch_reference(info, Weights()) as ref:
        torch_top1 = run_batched(ref, x, 32)["logits"].argmax(1)
    by_image = {p["image"]: p["top_k"][0] for p in doc["predictions"]}
    predicted = [by_image[str(f)] for f in images.files]
    assert all(p["label"] == str(p["index"]) for p in predicted)  # the digits' names
    assert np.mean([p["index"] == t for p, t in zip(predicted, torch_top1)]) >= 0.98
    # tables, and an unreadable image is listed and skipped; nothing readable at all is exit 2
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"no png")
    one = next((val / "7").iterdir())
    r = cli("predict", int8, one, bad)
    assert r.code == 0 and f"skipped {bad}" in r.err and str(one) in r.out and "probability" in r.out
    several = sorted((val / "7").iterdir())[:4]  # several images: one row each, not a table each
    r = cli("predict", int8, *several, "--top-k", "2")
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in r.out.splitlines() if "│" in line]
    assert r.code == 0 and [row[0] for row in rows] == list(map(str, several)), r.out
    assert [row[1] for row in rows] == [by_image[str(f)]["label"] for f in several] and all(
        re.fullmatch(r"\d \(0\.\d{4}\)", row[3]) for row in rows), r.out
    r = cli("predict", int8, bad)
    assert r.code == 2 and f"the image {bad} could not be read (not a readable image)" in r.err
    assert cli("predict", int8, tmp_path / "missing.png").code == 2
