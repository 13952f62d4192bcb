"""Beyond a fixed input size: dynamic-resolution export and stage feature maps (V1 and V2)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections import namedtuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from swin_deploy.artifact import read_info
from swin_deploy.export.onnx_export import graph_problems
from swin_deploy.models import SwinTransformer, Weights, build_model, get_config, load_strict
from swin_deploy.tolerances import TIMM_PARITY_REL
from swin_deploy.verify.timm_reference import timm_model

# swin_test / swinv2_test: stride 16, window 4, minimum side 64. Sizes include non-square ones and ones whose
# stage grids need window padding (80 -> grids 20, 10, 5: the last two are padded to 12 and 8).
SIZES = [(64, 64), (80, 96), (112, 64), (96, 160), (128, 128), (144, 80)]


def timm_at(name: str, size: tuple[int, int]):
    return timm_model(dataclasses.replace(get_config(name), img_size=size))


@pytest.mark.parametrize("name", ["swin_test", "swinv2_test"])
def test_dynamic_model_matches_timm_at_every_size(name):
    native = SwinTransformer(get_config(name), dynamic=True).eval()
    for size in SIZES:
        torch.manual_seed(sum(size))
        reference = timm_at(name, size)
        with torch.no_grad():
            for p in reference.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        load_strict(native, reference.state_dict(), "timm")
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            ref, out = reference(x), native(x)
            assert (out - ref).abs().max() <= TIMM_PARITY_REL * ref.abs().max(), size
            feats = native.forward_stages(x)
            ref_feats = reference.forward_intermediates(x, norm=False, intermediates_only=True, output_fmt="NCHW")
        for a, b in zip(feats, ref_feats):
            assert a.shape == b.shape and (a - b).abs().max() <= TIMM_PARITY_REL * b.abs().max()


@pytest.mark.parametrize("name", ["swin_test", "swinv2_test"])
def test_dynamic_size_export_runs_at_every_size(cli, tmp_path, name):
    path = tmp_path / "d.onnx"
    r = cli("export", "--variant", name, "--random-init", "--dynamic-size", "--max-size", "160,160", "-o", path)
    assert r.code == 0, r.err
    proto = onnx.load(str(path))
    assert graph_problems(proto) == []  # no If/Loop/Scan/Roll, default domain only
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    # the size is read once, after the patch embedding; heads, head and window sizes are the model's constants, so
    # no block reads a shape at run time (a simplifier cannot fold such reads where H and W are symbolic)
    shapes = [n.name for n in proto.graph.node if n.op_type == "Shape"]
    assert shapes and all(name.startswith("/patch_embed/") for name in shapes), shapes
    info = read_info(path)
    assert info.dynamic_size == (64, 64, 160, 160) and info.outputs == ("logits",)
    model, _ = build_model(get_config(name), Weights("random"), dynamic=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in SIZES:
        x = torch.randn(3, 3, *size)
        with torch.no_grad():
            ref = model(x).numpy()
        out = session.run(None, {"input": x.numpy()})[0]
        assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max(), size
    ok = cli("verify", path, "--random-init", "--img-sizes", "64,80x96,144x80", "--batch-sizes", "1,3", "--samples", "6")
    assert ok.code == 0, ok.err
    outside = cli("verify", path, "--random-init", "--img-sizes", "192")
    assert outside.code == 2 and "outside this artifact's range" in outside.err


@pytest.fixture
def fed_to_parity(monkeypatch) -> list[tuple[int, ...]]:
    """The input shapes export's parity check runs through onnxruntime, in order."""
    from swin_deploy.export import onnx_export

    fed = []

    class Recording(onnx_export.OnnxRuntimeRunner):
        def infer(self, x):
            fed.append(tuple(x.shape))
            return super().infer(x)

    monkeypatch.setattr(onnx_export, "OnnxRuntimeRunner", Recording)
    return fed


def test_export_parity_runs_every_batch_size_at_the_native_size_and_one_image_at_the_others(tmp_path, fed_to_parity):
    """A dynamic range can end where a batch of 3 takes most of a machine's memory (swinv2_b_192to384 at its
    1536x1536 end: 20 GiB), and the batch axis is handled alike at every size."""
    from swin_deploy.export import ExportOptions, export_onnx

    model, sha = build_model(get_config("swin_test"), Weights("random"))
    export_onnx(model, sha, tmp_path / "d.onnx", ExportOptions(dynamic_size=True, max_size=(128, 128)))
    assert fed_to_parity == [(1, 3, 64, 64), (3, 3, 64, 64), (1, 3, 96, 112), (1, 3, 128, 128)]


@pytest.mark.parametrize("options, batches", [
    ({"max_batch": 256}, [1, 3]),  # a server's max batch is not checked image by image (swin_b: 3.6 min, 9.3 GiB)
    ({"max_batch": 2}, [1, 2]),  # nor past it
    ({"max_batch": 1}, [1]),
    ({"max_batch": 4, "static_batch": True}, [4]),  # a static batch runs at its own
    ({"static_batch": True}, [1]),
])
def test_export_parity_runs_within_the_max_batch(tmp_path, fed_to_parity, options, batches):
    from swin_deploy.export import ExportOptions, export_onnx

    model, sha = build_model(get_config("swin_test"), Weights("random"))
    export_onnx(model, sha, tmp_path / "d.onnx", ExportOptions(**options))
    assert [shape[0] for shape in fed_to_parity] == batches


def test_dynamic_size_bad_ranges(cli, tmp_path):
    for args, message in [(["--min-size", "48"], "at least 64"), (["--max-size", "100,100"], "multiples of 16"),
                          (["--min-size", "128", "--max-size", "96"], "exceeds --max-size")]:
        r = cli("export", "--variant", "swin_test", "--random-init", "--dynamic-size", *args, "-o", tmp_path / "x.onnx")
        assert r.code == 2 and message in r.err, r.err
    r = cli("export", "--variant", "swin_test", "--random-init", "--min-size", "64", "-o", tmp_path / "x.onnx")
    assert r.code == 2 and "go with --dynamic-size" in r.err
    assert list(tmp_path.iterdir()) == []


def test_dynamic_default_range_when_the_native_size_is_below_its_minimum(cli, tmp_path):
    """Like swinv2_base_window12to16_192to256 (native 256, full 16x16 windows from 512): the range is not collapsed
    to one size, and the summary says the native size needs a static export."""
    from swin_deploy.artifact import read_info

    r = cli("export", "--variant", "swin_test", "--random-init", "--img-size", "32", "--dynamic-size", "--no-verify",
            "-o", tmp_path / "x.onnx")
    assert r.code == 0, r.err
    assert read_info(tmp_path / "x.onnx").dynamic_size == (64, 64, 128, 128)
    assert "32x32 is below the dynamic range" in r.out
    # a size that could be in a dynamic range, left out of the range chosen beside it, was moved to the range's start
    for args, said in ((("--img-size", "256", "--max-size", "128"), "--img-size 256x256 is outside the dynamic range "
                        "64x64 to 128x128: pass a size within it, or widen --min-size/--max-size"),
                       (("--img-size", "96", "--min-size", "112"), "--img-size 96x96 is outside the dynamic range 112x112")):
        r = cli("export", "--variant", "swin_test", "--random-init", "--dynamic-size", *args, "-o", tmp_path / "y.onnx")
        assert r.code == 2 and said in r.err and r.err.count("\n") == 1, (args, r.err)


@pytest.mark.parametrize("dynamic", [False, True])
def test_features_export_verify_bench(cli, tmp_path, dynamic):
    path = tmp_path / "f.onnx"
    args = ["--dynamic-size", "--max-size", "128,128"] if dynamic else []
    r = cli("export", "--variant", "swinv2_test", "--random-init", "--features", "--max-batch", "4", *args, "-o", path)
    assert r.code == 0, r.err
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["stage1", "stage2", "stage3"]
    # the channels are in the graph, not left symbolic by the exporter (Triton configs and runtimes read them)
    assert [o.type.tensor_type.shape.dim[1].dim_value for o in proto.graph.output] == [16, 32, 64]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    size = (96, 128) if dynamic else (64, 64)
    outs = session.run(None, {"input": np.zeros((2, 3, *size), np.float32)})
    assert [o.shape for o in outs] == [(2, 16 * 2**i, size[0] // 4 >> i, size[1] // 4 >> i) for i in range(3)]
    report = tmp_path / "r.json"
    v = cli("verify", path, "--random-init", "--batch-sizes", "1,4", "--samples", "4", "--report", report,
            *(["--img-sizes", "64,96x128"] if dynamic else []))
    assert v.code == 0, v.err
    checks = {c["metric"] for b in json.loads(report.read_text())["batches"] for c in b["checks"]}
    assert {"stage1.max_rel_delta", "stage2.min_cosine", "stage3.all_finite"} <= checks
    b = cli("bench", path, "--batch-sizes", "1,4", "--iterations", "2", "--warmup", "0")
    assert b.code == 0, b.err


def test_quantized_dynamic_model_verifies_at_several_sizes(cli, demo, tmp_path):
    data = demo[0] / "data"
    path = tmp_path / "d.onnx"
    assert cli("export", "--variant", "swinv2_digits", "--dynamic-size", "--max-size", "64,64", "-o", path).code == 0
    for precision in ("fp16", "int8"):
        q = tmp_path / f"d.{precision}.onnx"
        r = cli("quantize", path, "--precision", precision, "--calib-data", data / "calib",
                "--calib-images", "64", "-o", q)
        assert r.code == 0, r.err
        assert read_info(q).dynamic_size == (32, 32, 64, 64)
        v = cli("verify", q, "--data", data / "val", "--img-sizes", "32,48x64", "--batch-sizes", "16")
        assert v.code == 0, v.err
    # calibrating at another size in the range: recorded, and still within the INT8 gate at both sizes
    q = tmp_path / "d.int8-48.onnx"
    r = cli("quantize", path, "--precision", "int8", "--calib-data", data / "calib", "--calib-images", "64",
            "--calib-size", "48,48", "-o", q)
    assert r.code == 0, r.err
    meta = {p.key: p.value for p in onnx.load(str(q)).metadata_props}
    assert meta["swin_deploy.calib_size"] == "48x48"
    assert cli("verify", q, "--data", data / "val", "--img-sizes", "32,48", "--batch-sizes", "16").code == 0
    r = cli("quantize", path, "--precision", "int8", "--calib-data", data / "calib", "--calib-size", "96",
            "-o", tmp_path / "bad.onnx")
    assert r.code == 2 and "outside this artifact's range" in r.err


def test_engine_profile_sizes_follow_the_dynamic_range():
    from dataclasses import replace

    from swin_deploy.artifact import ArtifactInfo
    from swin_deploy.backends.tensorrt.loader import BuildOptions, check_profile, profile_sizes
    from swin_deploy.errors import UserError

    info = ArtifactInfo.for_config(get_config("swin_test"), "0" * 64, 17, max_batch=None, static_batch=False)
    with pytest.raises(UserError, match="need an ONNX exported with `dynamic_size`"):
        check_profile(info, BuildOptions(min_size=(64, 64)))
    info = replace(info, dynamic_size=(64, 64, 128, 160))
    check_profile(info, BuildOptions(min_size=(64, 64), opt_size=(96, 96), max_size=(128, 160)))
    with pytest.raises(UserError, match="outside this artifact's range"):
        check_profile(info, BuildOptions(max_size=(128, 192)))
    # sides that do not grow min -> opt -> max are refused before the build (TensorRT refused them after the parse);
    # the default opt size stays within the min and max given
    for given, shown in (({"min_size": (128, 128), "max_size": (64, 64)}, "128x128, 128x128, 64x64"),
                         ({"opt_size": (128, 64), "max_size": (64, 128)}, "64x64, 128x64, 64x128")):
        with pytest.raises(UserError, match=f"`min_size` <= `opt_size` <= `max_size` in each side, not {shown}"):
            check_profile(info, BuildOptions(**given))
    assert profile_sizes(info, check_profile(info, BuildOptions(min_size=(96, 112)))) == {
        "min": (96, 112), "opt": (96, 112), "max": (128, 160)}
    assert profile_sizes(info, check_profile(info, BuildOptions())) == {"min": (64, 64), "opt": (64, 64),
                                                                        "max": (128, 160)}


def test_junit_and_failure_lines_name_the_input_size(cli, artifacts, tmp_path):
    import xml.etree.ElementTree as ET

    junit = tmp_path / "r.xml"
    r = cli("verify", artifacts["dynamic"], "--random-init", "--samples", "2", "--img-sizes", "64,96",
            "--batch-sizes", "1,2", "--max-rel-delta", "0", "--junit", junit)
    assert r.code == 1
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert len(names) == len(set(names))  # no two cases collide
    assert any(n.startswith("batch1at64x64.") for n in names) and any(n.startswith("batch2at96x96.") for n in names)
    assert "batch 1 at 96x96: max_rel_delta" in r.err


def test_bench_times_every_runner_and_pytorch_at_one_input_size(cli, artifacts, tmp_path):
    """A dynamic-size artifact runs at --img-size; the PyTorch model runs at the size the artifacts run at, not at
    its variant's (a 128x128 export against swin_test's own 64x64 would compare 4x the work with 1x); a baseline
    measured at another size is refused."""
    dynamic = artifacts["dynamic"]  # swin_test, 64x64 to 128x128 (random weights, seed 0)
    fixed = tmp_path / "fixed128.onnx"
    assert cli("export", "--variant", "swin_test", "--random-init", "--img-size", "128", "-o", fixed).code == 0
    fast = ("--batch-sizes", "2", "--iterations", "10", "--warmup", "0", "--random-init", "--torch", "swin_test")

    def sizes(r):
        assert r.code == 0, r.err
        return {label: runner["input_size"] for label, runner in json.loads(r.out)["runners"].items()}

    assert sizes(cli("bench", dynamic, *fast, "--img-size", "96x128", "--json", "-")) == {
        dynamic.name: "96x128", "pytorch swin_test": "96x128"}
    assert sizes(cli("bench", fixed, *fast, "--json", "-")) == {fixed.name: "128x128", "pytorch swin_test": "128x128"}
    fastest = next(line for line in cli("bench", fixed, *fast).out.splitlines() if line.startswith("fastest at batch 2"))
    assert f"{fixed.name} (onnxruntime-cpu)" in fastest and "pytorch swin_test" in fastest and "(pytorch)" not in fastest
    base = tmp_path / "base.json"
    assert cli("bench", dynamic, fixed, *fast, "--img-size", "128", "--json", base).code == 0
    assert set(sizes(cli("bench", dynamic, *fast, "--json", "-")).values()) == {"64x64"}  # its own size by default
    for args, message in [((dynamic, fixed), "the swin_test artifacts run at 64x64 and 128x128: pass --img-size"),
                          ((dynamic, fixed, "--img-size", "96"), "fixed128.onnx: this artifact takes 128x128 inputs only"),
                          ((dynamic, "--img-size", "160"), "outside this artifact's range 64x64 to 128x128"),
                          ((dynamic, fixed, "--img-size", "128", "--baseline", base, "--max-slowdown", "10%"), None)]:
        r = cli("bench", *args, *fast)
        # a baseline at the same size is taken (its gate's verdict is speed, and speed is not this test's)
        assert (r.code in (0, 1)) if message is None else (r.code == 2 and message in r.err), (args, r.err)
    r = cli("bench", dynamic, *fast, "--img-size", "112", "--baseline", base, "--max-slowdown", "10%")
    assert r.code == 2 and "as input size 128x128, this run has 112x112" in r.err, r.err


def test_predict_preprocesses_to_the_size_asked_for(cli, artifacts, demo):
    """predict --img-size: a dynamic-size artifact's top-k at that size (what onnxruntime gives for the images
    preprocessed to it), a size outside its range or a fixed-size artifact's other size exit 2."""
    from swin_deploy.data import list_images, load_all, transform_for

    dynamic = artifacts["dynamic"]  # swin_test, 64x64 to 128x128
    folder = demo[0] / "data" / "val" / "3"
    r = cli("predict", dynamic, folder, "--img-size", "96x128", "--top-k", "1", "--json", "-")
    assert r.code == 0, r.err
    got = {p["image"]: p["top_k"][0] for p in json.loads(r.out)["predictions"]}
    images = list_images(folder)
    x, _ = load_all(images, transform_for(read_info(dynamic), (96, 128)))
    assert x.shape[2:] == (96, 128)
    logits = ort.InferenceSession(str(dynamic), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for f, row in zip(images.files, probs):
        assert got[str(f)]["index"] == int(row.argmax()) and abs(got[str(f)]["probability"] - row.max()) < 1e-5
    assert cli("predict", dynamic, folder, "--img-size", "160").code == 2
    r = cli("predict", artifacts["fp32"], folder, "--img-size", "64")
    assert r.code == 2 and "takes 32x32 inputs only" in r.err


@pytest.mark.parametrize("name", ["swin_test", "swinv2_test"])
def test_verify_against_timm_at_every_size_of_a_dynamic_export(cli, tmp_path, name):
    """--timm builds timm's model at each size checked: a timm Swin fixes its shifts and masks when built (its
    dynamic_img_size keeps those of the build size), and the dynamic export matches timm built at the size."""
    model, _ = build_model(get_config(name), Weights("random"))
    ckpt, path = tmp_path / "w.pth", tmp_path / "d.onnx"
    torch.save(model.state_dict(), ckpt)
    assert cli("export", "--variant", name, "--checkpoint", ckpt, "--dynamic-size", "--max-size", "128,128",
               "-o", path).code == 0
    report = tmp_path / "r.json"
    r = cli("verify", path, "--checkpoint", ckpt, "--timm", "--samples", "4", "--img-sizes", "64,80x96,112x64,128",
            "--batch-sizes", "1,3", "--max-rel-delta", "1e-4", "--report", report)
    assert r.code == 0, r.err
    batches = json.loads(report.read_text())["batches"]
    assert {tuple(b["img_size"]) for b in batches} == {(64, 64), (80, 96), (112, 64), (128, 128)}
    assert json.loads(report.read_text())["reference"]["backend"] == "timm-fp32"


def test_a_fixed_size_reference_artifact_is_refused_at_other_sizes(cli, artifacts, tiny_onnx):
    """verify --reference runs the reference at every --img-sizes size: one it cannot take is a user error, with one
    line, not onnxruntime's shape error (exit 3)."""
    dynamic, static = artifacts["dynamic"], tiny_onnx["swin_test"]  # the same random weights (seed 0)
    r = cli("verify", dynamic, "--reference", static, "--samples", "2", "--img-sizes", "64,96x128", "--batch-sizes", "1")
    assert r.code == 2 and "the reference swin_test.onnx: this artifact takes 64x64 inputs only" in r.err, r.err
    assert cli("verify", dynamic, "--reference", static, "--samples", "2", "--batch-sizes", "1").code == 0


def _size_dependent_copy(source, target, default_side: int) -> None:
    """A copy of a dynamic-size classifier that adds (H - default_side) / 16 to every logit: right at its default size,
    wrong at every other height, as a padding or mask bug would be."""
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    g = model.graph
    for node in g.node:
        node.output[:] = ["logits_raw" if o == "logits" else o for o in node.output]
    side = numpy_helper.from_array(np.array([default_side], np.int64), "side")
    sixteen = numpy_helper.from_array(np.array(16.0, np.float32), "sixteen")
    g.initializer.extend([side, sixteen])
    g.node.extend([
        helper.make_node("Shape", [g.input[0].name], ["hw"], start=2, end=3),
        helper.make_node("Sub", ["hw", "side"], ["off"]),
        helper.make_node("Cast", ["off"], ["off_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["off_f", "sixteen"], ["shift"]),
        helper.make_node("Add", ["logits_raw", "shift"], ["logits"]),
    ])
    onnx.save(model, str(target))


def test_verify_gates_a_dynamic_artifact_at_its_range_ends_unless_sizes_are_chosen(cli, artifacts, tiny_onnx, tmp_path):
    """A dynamic-size graph can be right at its default size and wrong elsewhere (its padding, shifts and masks follow
    H and W): without --img-sizes verify also gates the range's ends, on the first inputs. Against a fixed-size
    reference the ends cannot run, and the output says they were not gated."""
    dynamic = artifacts["dynamic"]  # swin_test, 64x64 to 128x128
    report = tmp_path / "r.json"
    ok = cli("verify", dynamic, "--random-init", "--samples", "4", "--batch-sizes", "1,2", "--report", report)
    assert ok.code == 0, ok.err
    assert [(b["img_size"], b["batch_size"], b["role"], b["images"]) for b in json.loads(report.read_text())["batches"]] \
        == [([64, 64], 1, "accuracy", 4), ([64, 64], 2, "consistency", 4), ([128, 128], 1, "range end", 4)]
    assert "the size range's end 128x128 over the first 4" in ok.out

    doctored = tmp_path / "doctored.onnx"
    _size_dependent_copy(dynamic, doctored, 64)
    bad = cli("verify", doctored, "--random-init", "--samples", "4")
    assert bad.code == 1 and "batch 1 at 128x128: max_rel_delta" in bad.err, bad.err
    assert "at 64x64" not in bad.err
    assert cli("verify", doctored, "--random-init", "--samples", "4", "--img-sizes", "64").code == 0

    r = cli("verify", dynamic, "--reference", tiny_onnx["swin_test"], "--samples", "2", "--batch-sizes", "1")
    assert r.code == 0 and "the size range's end 128x128 was not gated" in r.err, r.err


def test_a_dynamic_artifacts_range_ends_run_at_the_smallest_batch_size(cli, artifacts, tmp_path, monkeypatch):
    """The range's ends ran at the first batch size, and memory was checked for the largest at the largest end: with
    every input at batch 8 first, an end at 4x the pixels would take 8 images' activations, 32x the memory of one at
    the artifact's size. What an end can break breaks every input alike, so the ends run at the smallest size: a
    machine with room for batch 8 at the artifact's size and one image at its largest end verifies it."""
    import psutil

    from swin_deploy import defaults

    dynamic = artifacts["dynamic"]  # swin_test, 64x64 to 128x128
    per_image = read_info(dynamic).config().activation_bytes
    one_at_end = per_image((128, 128)) * defaults.PEAK_ACTIVATIONS
    assert 8 * per_image((64, 64)) * defaults.PEAK_ACTIVATIONS <= 2 * one_at_end
    memory = namedtuple("Memory", "available")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory(3 * one_at_end))  # batch 8 at the end needs 8x
    report = tmp_path / "r.json"
    r = cli("verify", dynamic, "--random-init", "--samples", "8", "--report", report)
    assert r.code == 0, r.err
    assert [(b["img_size"], b["batch_size"], b["role"]) for b in json.loads(report.read_text())["batches"]] == [
        ([64, 64], 8, "accuracy"), ([64, 64], 1, "consistency"), ([64, 64], 3, "consistency"),
        ([128, 128], 1, "range end")]
    # where the smallest batch asked for does not fit at the end, it says so, and what to do, before anything runs
    r = cli("verify", dynamic, "--random-init", "--samples", "8", "--batch-sizes", "4")
    assert r.code == 2 and r.err.startswith("error: batch 4 at 128x128 needs more than") and len(r.err.splitlines()) == 1
    assert "gate sizes that fit with --img-sizes, or add a smaller batch to --batch-sizes" in r.err, r.err


def test_the_library_takes_a_size_as_one_side_and_one_value_where_it_takes_several(artifacts, demo, tmp_path):
    """ExportOptions(img_size=96), as timm takes img_size=224, and the sizes of bench, verify, predict and quantize
    given as one side failed with "'int' object is not iterable" or "... is not subscriptable"; one batch size, backend
    or hint alone failed alike, or was taken apart into letters ("unknown backend 'o'")."""
    import numpy as np

    from calibration import QuantizeOptions, quantize
    from swin_deploy.bench import BenchOptions, bench_artifacts
    from swin_deploy.errors import UserError
    from swin_deploy.export import ExportOptions, export_variant
    from swin_deploy.predict import predict
    from swin_deploy.verify.run import VerifyOptions, verify_artifact

    options = ExportOptions(img_size=96, max_batch=1)
    assert read_info(export_variant("swin_test", Weights("random"), tmp_path / "a.onnx", options).path).img_size == (96, 96)
    ranged = ExportOptions(dynamic_size=True, min_size=np.int64(64), max_size=[128, 112])
    assert (ranged.min_size, ranged.max_size) == ((64, 64), (128, 112))
    dynamic, images = artifacts["dynamic"], demo[0] / "data" / "calib" / "3"  # swin_test, 64x64 to 128x128
    report = bench_artifacts([dynamic], BenchOptions(iterations=2, batch_sizes=2, img_size=96, backends="openvino",
                                                     hints="latency"))
    assert report.runners[dynamic.name]["input_size"] == "96x96"
    assert [(r.backend, r.batch_size) for r in report.results] == [("openvino f32", 2)]
    result = verify_artifact(dynamic, VerifyOptions(weights=Weights("random"), samples=2, batch_sizes=1,
                                                    img_sizes=[96, (64, 128)]))
    assert result.passed and sorted({b.img_size for b in result.batches}) == [(64, 128), (96, 96)], result.failures()
    assert predict(dynamic, images, img_size=96).predictions
    q = quantize(dynamic, tmp_path / "q.onnx", QuantizeOptions("int8", calib_data=images, calib_images=4, calib_size=96))
    assert q.details["calib_size"] == "96x96"
    with pytest.raises(UserError, match=r"`img_size` takes one side or \(H, W\) in whole pixels, not 2.5"):
        BenchOptions(img_size=2.5)
    with pytest.raises(UserError, match="`class_names` gives 1 name for the model's 10 classes"):  # not 4: c, a, t, s
        export_variant("swin_test", Weights("random"), tmp_path / "c.onnx", ExportOptions(class_names="cats"))
    if importlib.util.find_spec("tritonclient"):
        from swin_deploy.serve.triton import TritonOptions, write_model

        config = write_model(dynamic, tmp_path / "repo", TritonOptions(preferred_batch=4)).config_text
        assert "preferred_batch_size: 4" in config


@pytest.mark.parametrize("name", ["swin_test", "swinv2_test"])
def test_every_geometry_names_its_nodes_by_module_path(cli, tmp_path, name):
    """Dynamic-size exports, and fixed sizes whose stage grids pad, run the blocks on spatial order; their graphs name
    every node by its module path as the window-order export does, raw-pixel exports too, so `--exclude
    '/layers/layers.1/*'` and `--sensitivity`'s blocks mean the same in each."""
    from calibration.sensitivity import block_of

    def blocks(path) -> set[str]:
        """The block (or module) of every node with weights that INT8 quantizes."""
        proto = onnx.load(str(path))
        weights = {i.name for i in proto.graph.initializer}
        return {block_of(n.name) for n in proto.graph.node
                if n.op_type in ("MatMul", "Conv", "Gemm") and weights.intersection(n.input)}

    stages = [f"/layers.{i}" for i in range(3)]
    every = {"/patch_embed/proj/*", *(f"{s}/downsample/*" for s in stages[1:]),
             *(f"{s}/blocks/blocks.{j}/*" for s in stages for j in range(2))}
    classifier = {b.replace("/layers.", "/layers/layers.") for b in every} | {"/fc/*"}
    geometries = {"window order": [], "padded": ["--img-size", "80"],
                  "dynamic": ["--dynamic-size", "--max-size", "128,128"],
                  "raw pixels": ["--input-format", "uint8", "--dynamic-size", "--max-size", "128,128"]}
    for geometry, args in geometries.items():
        for features, expected in (([], classifier), (["--features"], every)):
            path = tmp_path / f"{len(features)}.onnx"
            # names are the exporter's: no parity check or simplification needed to read them
            r = cli("export", "--variant", name, "--random-init", "--no-verify", "--no-simplify", *args, *features,
                    "-o", path)
            assert r.code == 0, r.err
            assert blocks(path) == expected, (geometry, features, sorted(blocks(path)))
