"""verify at real scale: streamed inputs, each image through the reference once, a reference cache, label layouts,
and unreadable files among many. Real images: the demo models' held-out digits (359 files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from swin_deploy.errors import UserError


def report_of(cli, tmp_path, *args, name="r.json"):
    path = tmp_path / name
    r = cli("verify", *args, "--report", path)
    return r, (json.loads(path.read_text()) if path.is_file() else None)


def test_streamed_metrics_equal_the_all_in_memory_numbers(demo):
    """The same images at the same batch size give the numbers the old load-everything-then-compare path gave."""
    from swin_deploy.artifact import read_info
    from swin_deploy.backends import run_batched
    from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
    from swin_deploy.data import list_images, load_all, transform_for
    from swin_deploy.models import Weights
    from swin_deploy.verify.reference import torch_reference
    from swin_deploy.verify.run import VerifyOptions, verify_artifact

    folder, paths = demo
    path, val = paths["swinv2_digits"], folder / "data" / "val"
    info = read_info(path)
    x, y = load_all(list_images(val), transform_for(info))
    with OnnxRuntimeRunner(path) as cand_runner, torch_reference(info, Weights()) as ref_runner:
        ref, cand = run_batched(ref_runner, x, 32)["logits"], run_batched(cand_runner, x, 32)["logits"]
    delta = np.abs(cand - ref)
    cos = np.sum(ref * cand, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1))
    expected = {"max_abs_delta": delta.max(), "mean_abs_delta": delta.mean(), "max_rel_delta": delta.max() / np.abs(ref).max(),
                "min_cosine": cos.min(), "top1_agreement": (ref.argmax(1) == cand.argmax(1)).mean(),
                "ref_top1": (ref.argmax(1) == y).mean() * 100, "cand_top1": (cand.argmax(1) == y).mean() * 100}
    result = verify_artifact(path, VerifyOptions(data=val, batch_sizes=[32], workers=3))
    (main,) = result.batches
    assert main.images == len(x) == 359 and main.scope == "all"
    for k, v in expected.items():
        assert main.metrics[k] == pytest.approx(float(v), rel=1e-6, abs=1e-9), k


def test_each_image_through_the_reference_once_and_the_cache(cli, demo, tmp_path, monkeypatch):
    from swin_deploy.backends.torch_runner import TorchRunner

    folder, paths = demo
    calls = []
    real = TorchRunner._infer
    monkeypatch.setattr(TorchRunner, "_infer", lambda self, x: calls.append(len(x)) or real(self, x))
    cache = tmp_path / "ref.cache"
    args = [paths["swin_digits"], "--data", folder / "data" / "val", "--batch-sizes", "8,1,3",
            "--consistency-samples", "20", "--reference-cache", cache]
    r, first = report_of(cli, tmp_path, *args)
    assert r.code == 0, r.err
    assert sum(calls) == 359 + 1  # every image once (the last batch padded from 7 to 8), none again for 1 and 3
    assert [(b["batch_size"], b["images"], b["scope"]) for b in first["batches"]] == [
        (8, 359, "all"), (1, 20, "first 20"), (3, 20, "first 20")]
    assert "cand_top1" in first["batches"][0]["metrics"] and "cand_top1" not in first["batches"][1]["metrics"]
    assert first["reference_cache"] == {"path": str(cache), "hit": False} and cache.is_file()
    calls.clear()
    r, again = report_of(cli, tmp_path, *args, name="again.json")
    assert r.code == 0, r.err
    assert calls == [] and again["reference_cache"]["hit"] is True  # the reference never ran
    assert again["batches"][0]["metrics"] == first["batches"][0]["metrics"]
    # a cache is valid for its inputs and reference only: anything else is refused, never reused
    stale = ((["--limit", "100"], "another image list"), (["--reference", paths["swinv2_digits"]], "another reference"))
    for extra, what in stale:
        out = tmp_path / "stale.json"
        r = cli("verify", *args, *extra, "--report", out)
        assert r.code == 2 and what in r.err and "--reference-cache" in r.err, r.err
        assert not out.exists()
    v2_cache = tmp_path / "v2.cache"
    assert cli("verify", paths["swinv2_digits"], "--samples", "8", "--batch-sizes", "8", "--reference-cache",
               v2_cache).code == 0
    r = cli("verify", paths["swin_digits"], "--samples", "8", "--batch-sizes", "8", "--reference-cache", v2_cache)
    assert r.code == 2 and "was made for another reference" in r.err
    junk = tmp_path / "junk.cache"
    junk.write_bytes(b"not a cache")
    r = cli("verify", paths["swin_digits"], "--samples", "8", "--batch-sizes", "8", "--reference-cache", junk)
    assert r.code == 2 and "not a swin-deploy reference cache" in r.err
    # a folder (once an internal error when the cache was written) or the artifact itself is refused before any run
    for where, said in ((tmp_path, "is a folder: --reference-cache takes a file path"),
                        (paths["swin_digits"], "is this command's input")):
        r = cli("verify", paths["swin_digits"], "--samples", "8", "--batch-sizes", "8", "--reference-cache", where)
        assert r.code == 2 and said in r.err and r.err.count("\n") == 1, r.err


def test_imagenet_synset_folders_map_to_timms_class_indices(tmp_path, demo):
    from timm.data import ImageNetInfo

    from swin_deploy.data import list_images

    folder, _ = demo
    png = next((folder / "data" / "val" / "3").iterdir())
    synsets = ImageNetInfo("imagenet-1k").label_names()
    for s in ("n04589890", "n01440764", "n02123045"):
        (tmp_path / "val" / s).mkdir(parents=True)
        shutil.copy(png, tmp_path / "val" / s / "a.png")
    images = list_images(tmp_path / "val", num_classes=1000)
    assert images.labels == [synsets.index("n01440764"), synsets.index("n02123045"), synsets.index("n04589890")]
    assert images.labels == [0, 281, 904] and images.label_source == "imagenet synsets"
    with pytest.raises(UserError, match="1000"):
        list_images(tmp_path / "val", num_classes=10)
    (tmp_path / "val" / "n99999999").mkdir()
    with pytest.raises(UserError, match="'n99999999'"):
        list_images(tmp_path / "val", num_classes=1000)


def test_flat_folder_with_a_labels_file(cli, demo, tmp_path):
    folder, paths = demo
    flat, rows = tmp_path / "flat", ["filename,label"]
    flat.mkdir()
    for digit in range(10):
        for png in sorted((folder / "data" / "val" / str(digit)).iterdir())[:6]:
            shutil.copy(png, flat / f"{digit}_{png.name}")
            rows.append(f"{digit}_{png.name},{digit}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    r, rep = report_of(cli, tmp_path, paths["swin_digits"], "--data", flat, "--labels", tmp_path / "labels.csv",
                       "--batch-sizes", "16")
    assert r.code == 0, r.err
    assert rep["images"]["labels"] == "labels file" and rep["batches"][0]["metrics"]["cand_top1"] >= 95
    assert rep["notes"] == []
    # the file decides the set: images it does not name are left out, and the report says how many
    (tmp_path / "part.csv").write_text("\n".join(rows[:41]) + "\n")
    r, rep = report_of(cli, tmp_path, paths["swin_digits"], "--data", flat, "--labels", tmp_path / "part.csv",
                       "--batch-sizes", "16")
    assert r.code == 0 and rep["batches"][0]["images"] == 40, r.err
    assert "20 image(s) in" in rep["notes"][0] and "have no row in part.csv and were not gated" in rep["notes"][0]
    assert "add them to --labels" in r.err
    (tmp_path / "bad.csv").write_text("0_x.png,3\n")
    r = cli("verify", paths["swin_digits"], "--data", flat, "--labels", tmp_path / "bad.csv")
    assert r.code == 2 and "does not exist" in r.err
    (tmp_path / "range.csv").write_text(rows[1].rsplit(",", 1)[0] + ",10\n")
    r = cli("verify", paths["swin_digits"], "--data", flat, "--labels", tmp_path / "range.csv")
    assert r.code == 2 and "outside the model's 10 classes" in r.err


def test_kaggles_imagenet_solution_csv_reads_as_it_is(demo, tmp_path):
    """Kaggle's ImageNet LOC_val_solution.csv: ImageId without its .JPEG suffix, and a PredictionString of the synset
    followed by its boxes. Both were refused (no such file; not a class index)."""
    from swin_deploy.data import list_images

    folder, _ = demo
    pngs = sorted((folder / "data" / "val" / "1").iterdir())[:3]
    for i, png in enumerate(pngs, start=1):
        shutil.copy(png, tmp_path / f"ILSVRC2012_val_{i:08d}.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        "ILSVRC2012_val_00000002,n01443537 12 30 200 180 n01443537 5 6 70 80 \n"
        "ILSVRC2012_val_00000001,n01440764 1 2 3 4\n"
        "ILSVRC2012_val_00000003,n15075141 0 0 10 10\n")
    images = list_images(tmp_path, labels_file=tmp_path / "LOC_val_solution.csv", num_classes=1000)
    assert [f.name for f in images.files] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (2, 1, 3)]
    assert images.labels == [1, 0, 999]  # goldfish, tench, toilet tissue: timm's ImageNet-1k indices
    # other headers as datasets spell them (this one was read as a missing file named 'file_name')
    (tmp_path / "labels.csv").write_text("file_name,class\nILSVRC2012_val_00000001.JPEG,n01443537\n")
    assert list_images(tmp_path, labels_file=tmp_path / "labels.csv", num_classes=1000).labels == [1]
    # as a spreadsheet saves it: a byte-order mark, Windows line ends, tab or semicolon between the fields (tab- and
    # semicolon-separated files were refused as "expected filename,label")
    for i, separator in enumerate(("\t", ";", ",")):
        (tmp_path / "sheet.csv").write_bytes(f"\ufefffilename{separator}label\r\n"
                                             f"ILSVRC2012_val_0000000{i + 1}.JPEG{separator}n01443537\r\n".encode())
        assert list_images(tmp_path, labels_file=tmp_path / "sheet.csv", num_classes=1000).labels == [1]
    (tmp_path / "latin1.csv").write_bytes("ILSVRC2012_val_00000001.JPEG,n01443537 caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="latin1.csv is not UTF-8 text: save it as UTF-8"):  # was an internal error
        list_images(tmp_path, labels_file=tmp_path / "latin1.csv", num_classes=1000)
    (tmp_path / "one.csv").write_text("ILSVRC2012_val_00000001.JPEG n01443537\n")
    with pytest.raises(UserError, match="one.csv line 1: expected filename,label .*, not 'ILSVRC2012_val_00000001"):
        list_images(tmp_path, labels_file=tmp_path / "one.csv", num_classes=1000)
    # a header alone, or nothing: it said "no images found" of a folder full of them
    for text in ("filename,label\n", "", "# to fill in\n"):
        (tmp_path / "none.csv").write_text(text)
        with pytest.raises(UserError, match="labels file .*none.csv names no images: give one filename,label line"):
            list_images(tmp_path, labels_file=tmp_path / "none.csv", num_classes=1000)


def test_folders_and_labels_named_after_the_models_classes_map_by_name(cli, demo, tmp_path):
    """A fine-tune's id2label need not be in sorted order: folders named after its classes map by name (sorted order,
    ImageFolder's, would put 'eight' first and score about 10%), and so do CSV labels; a folder that is no class
    where others are is refused."""
    import dataclasses

    import onnx

    from swin_deploy.artifact import read_info, write_info

    folder, paths = demo
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    model = onnx.load(str(paths["swin_digits"]))
    write_info(model, dataclasses.replace(read_info(paths["swin_digits"]), labels=names))
    named = tmp_path / "named.onnx"
    onnx.save(model, str(named))
    val, flat, rows = tmp_path / "val", tmp_path / "flat", ["filename,label"]
    flat.mkdir()
    for digit, name in enumerate(names):
        pngs = sorted((folder / "data" / "val" / str(digit)).iterdir())[:8]
        (val / name).mkdir(parents=True)
        for png in pngs:
            shutil.copy(png, val / name / png.name)
            shutil.copy(png, flat / f"{digit}_{png.name}")
            rows.append(f"{digit}_{png.name},{name}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    for data in (("--data", val), ("--data", flat, "--labels", tmp_path / "labels.csv")):
        r, rep = report_of(cli, tmp_path, named, *data, "--batch-sizes", "16")
        assert r.code == 0, r.err
        assert rep["batches"][0]["metrics"]["cand_top1"] >= 90, (data, rep["batches"][0]["metrics"])
    assert rep["images"]["labels"] == "labels file"
    r, rep = report_of(cli, tmp_path, named, "--data", val, "--batch-sizes", "16")
    assert rep["images"]["labels"] == "class names"
    (val / "ten").mkdir()
    shutil.copy(png, val / "ten" / png.name)
    r = cli("verify", named, "--data", val)
    assert r.code == 2 and "class folder 'ten'" in r.err and "not one of the model's classes" in r.err, r.err
    # a name two classes share (as ImageNet's "crane" in the usual class lists): the first class was taken silently
    from swin_deploy.data import list_images

    shutil.rmtree(val / "ten")
    shutil.rmtree(val / "nine")
    twice = (*names[:9], "one")
    with pytest.raises(UserError, match=f"class folder {val / 'one'}: 'one' names classes 1 and 9: use a flat folder"):
        list_images(val, num_classes=10, class_names=twice)
    with pytest.raises(UserError, match="labels.csv line 10: 'one' names classes 1 and 9: label these images by class"):
        list_images(flat, labels_file=tmp_path / "labels.csv", num_classes=10, class_names=twice)


def test_class_folders_for_some_classes_are_indices_or_refused(cli, demo, tmp_path):
    """ImageFolder's sorted order numbers the classes only when every class has its folder: folders for some of a
    model's classes (a val set missing one, a spot check of two) are class indices, or exit 2; they were numbered
    0, 1, ... and scored against the wrong classes."""
    import dataclasses

    import onnx

    from swin_deploy.artifact import read_info, write_info

    folder, paths = demo
    model = onnx.load(str(paths["swin_digits"]))
    write_info(model, dataclasses.replace(read_info(paths["swin_digits"]), labels=None))  # no class names
    unnamed = tmp_path / "unnamed.onnx"
    onnx.save(model, str(unnamed))
    some = tmp_path / "some"
    for digit in ("3", "7"):
        shutil.copytree(folder / "data" / "val" / digit, some / digit)
    r, rep = report_of(cli, tmp_path, unnamed, "--data", some, "--batch-sizes", "16")
    assert r.code == 0, r.err
    assert rep["images"]["labels"] == "folder indices" and rep["batches"][0]["metrics"]["cand_top1"] >= 90
    (some / "3").rename(some / "three")
    r = cli("verify", unnamed, "--data", some)
    assert r.code == 2 and "2 class folders for the model's 10 classes" in r.err and len(r.err.strip().splitlines()) == 1
    every = tmp_path / "every"  # every class, named otherwise: ImageFolder's sorted order, as training numbered them
    for digit in range(10):
        shutil.copytree(folder / "data" / "val" / str(digit), every / f"class_{digit}")
    r, rep = report_of(cli, tmp_path, unnamed, "--data", every, "--batch-sizes", "16")
    assert r.code == 0 and rep["images"]["labels"] == "folders" and rep["batches"][0]["metrics"]["cand_top1"] >= 90


def test_hidden_files_are_not_images_of_the_set(demo, tmp_path):
    """macOS's `._name.png` resource forks and Jupyter's `.ipynb_checkpoints` copies sit beside real images in folders
    people copy around: they are not listed (they were read as unreadable images, or as duplicates)."""
    from swin_deploy.data import image_files, list_images

    folder, _ = demo
    val = tmp_path / "val"
    for digit in ("1", "2"):
        (val / digit).mkdir(parents=True)
        for png in sorted((folder / "data" / "val" / digit).iterdir())[:3]:
            shutil.copy(png, val / digit / png.name)
    (val / "1" / "._0001.png").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    (val / "2" / ".ipynb_checkpoints").mkdir()
    shutil.copy(png, val / "2" / ".ipynb_checkpoints" / "copy-checkpoint.png")
    images = list_images(val, num_classes=10)
    assert len(images) == 6 and images.labels == [1, 1, 1, 2, 2, 2]  # folders "1", "2" of 10 classes: their indices
    assert not any(part.startswith(".") for f in images.files for part in f.relative_to(val).parts)
    assert len(image_files([val])) == 6
    flat = val / "2"
    assert [f.name for f in list_images(flat).files] == sorted(p.name for p in flat.iterdir() if p.is_file())


def test_every_image_format_a_folder_may_hold_is_read(cli, demo, tmp_path):
    """A folder of photos as browsers, phones and tools save them (GIF, JFIF, AVIF, PGM beside PNG) is read whole;
    only files that are not images by their suffix are left out. GIF, JFIF and AVIF were left out unread."""
    from PIL import Image, features

    _, paths = demo
    photos = tmp_path / "photos"
    photos.mkdir()
    rgb = Image.effect_mandelbrot((48, 40), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    avif = features.check("avif")  # a Pillow that pyproject allows may be built without AVIF
    for name, im, fmt in (("a.png", rgb, "PNG"), ("b.gif", rgb, "GIF"), ("c.jfif", rgb, "JPEG"),
                          *([("d.avif", rgb, "AVIF")] if avif else []), ("e.pgm", rgb.convert("L"), "PPM"),
                          ("f.JPG", rgb, "JPEG")):
        im.save(photos / name, fmt)
    (photos / "notes.txt").write_text("where these came from")
    r = cli("predict", paths["swin_digits"], photos, "--json", tmp_path / "p.json")
    assert r.code == 0 and "skipped" not in r.err, r.err
    document = json.loads((tmp_path / "p.json").read_text())
    assert [Path(p["image"]).name for p in document["predictions"]] == ["a.png", "b.gif", "c.jfif",
                                                                        *["d.avif"] * avif, "e.pgm", "f.JPG"]
    assert document["skipped"] == []

def test_an_image_past_pils_decompression_bomb_limit_is_skipped_saying_so(cli, demo, tmp_path, monkeypatch):
    """PIL refuses an image above twice Image.MAX_IMAGE_PIXELS (a scan, an aerial photo) and warns of one above it:
    the first is skipped naming the limit and what to do, the second is read without the warning in the output.
    The limit is lowered here so that the test needs no 179-megapixel file."""
    from PIL import Image

    _, paths = demo
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (300, 300), (200, 200, 200)).save(photos / "scan.png")  # 90k pixels > 2 x 40k: refused
    Image.new("RGB", (250, 250), (200, 200, 200)).save(photos / "large.png")  # 62.5k: PIL warns, reads it
    r = cli("predict", paths["swin_digits"], photos, "--json", tmp_path / "p.json")
    assert r.code == 0, r.err
    assert "scan.png: more than 0.08 megapixels, PIL's decompression-bomb limit: downscale it" in r.err
    assert "DecompressionBombWarning" not in r.err and "large.png" not in r.err
    assert [Path(p["image"]).name for p in json.loads((tmp_path / "p.json").read_text())["predictions"]] == ["large.png"]
    r = cli("verify", paths["swin_digits"], "--data", photos, "--strict")
    assert r.code == 2 and "scan.png is more than 0.08 megapixels" in r.err and "downscale it, or drop --strict" in r.err


def test_unreadable_files_are_skipped_and_counted_or_refused_when_strict(cli, demo, tmp_path):
    folder, paths = demo
    val = tmp_path / "val"
    shutil.copytree(folder / "data" / "val", val)
    for i, digit in enumerate(("2", "7")):
        (val / digit / f"zz_broken{i}.png").write_bytes(b"\x89PNG truncated")
    r, rep = report_of(cli, tmp_path, paths["swin_digits"], "--data", val, "--batch-sizes", "32", "--workers", "2")
    assert r.code == 0, r.err
    assert rep["skipped_images"] == rep["images"]["skipped"] == 2 and rep["batches"][0]["images"] == 359
    assert any("zz_broken0.png" in p for p in rep["images"]["skipped_examples"])
    assert "skipped 2 unreadable image(s)" in r.err and "zz_broken1.png" in r.err
    r = cli("verify", paths["swin_digits"], "--data", val, "--strict")
    assert r.code == 2 and "zz_broken0.png is not a readable image" in r.err
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_bytes(b"nope")
    r = cli("verify", paths["swin_digits"], "--data", only_bad)
    assert r.code == 2 and f"the image {only_bad / 'x.png'} could not be read (not a readable image)" in r.err
    (only_bad / "y.png").write_bytes(b"nope")
    r = cli("verify", paths["swin_digits"], "--data", only_bad)
    assert r.code == 2 and f"none of the 2 images could be read ({only_bad / 'x.png'}: not a readable" in r.err
    (val / "3" / "zz_empty.png").write_bytes(b"")  # a copy that never finished says so
    r = cli("predict", paths["swin_digits"], val / "3")
    assert r.code == 0 and "zz_empty.png: empty (0 bytes): copy it again, or remove it" in " ".join(r.err.split()), r.err
    r = cli("verify", paths["swin_digits"], "--data", val / "3", "--strict")
    assert r.code == 2 and "zz_empty.png is empty (0 bytes): copy it again, or remove it, or drop --strict" in r.err
