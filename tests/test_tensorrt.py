"""TensorRT: without it, build-engine exits 2 with the install hint; with a GPU, the real path runs."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from swin_deploy.backends.tensorrt import builder_unavailable_reason
from swin_deploy.errors import UserError

REASON = builder_unavailable_reason()


def test_build_engine_without_tensorrt_gives_install_hint(cli, tiny_onnx):
    if REASON is None:
        pytest.skip("TensorRT is installed here")
    r = cli("build-engine", tiny_onnx["swin_test"])
    assert r.code == 2 and "pip install 'swin-deploy[tensorrt]'" in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("case", ["ir", "profile"])
def test_build_engine_reports_input_mistakes_before_the_tensorrt_check(cli, tiny_onnx, tmp_path, case):
    """A mistake in what the user passed is named first, TensorRT installed or not: installing TensorRT would not fix
    it."""
    if case == "ir":
        (tmp_path / "m.xml").write_text("<net/>")
        r, expected = cli("build-engine", tmp_path / "m.xml"), "is an OpenVINO IR"
    else:
        r, expected = cli("build-engine", tiny_onnx["swin_test"], "--opt-batch", "16", "--max-batch", "8"), "opt"
    assert r.code == 2 and expected in r.err and "tensorrt" not in r.err.lower(), r.err


def test_build_engine_help_works_without_tensorrt(cli):
    r = cli("build-engine", "--help")
    assert r.code == 0 and "--max-batch" in r.out


@pytest.mark.tensorrt
@pytest.mark.skipif(REASON is not None, reason=f"TensorRT Builder unavailable: {REASON}")
@pytest.mark.parametrize("precision", ["", "--fp16"])
def test_engine_build_verify_and_bench(cli, tiny_onnx, tmp_path, precision):
    engine = tmp_path / "m.engine"
    args = ["build-engine", tiny_onnx["swin_test"], "--max-batch", "8", "--opt-batch", "4", "-o", engine]
    r = cli(*args, *([precision] if precision else []))
    assert r.code == 0, r.err
    assert (tmp_path / "m.engine.json").is_file()
    assert cli("verify", engine, "--random-init", "--batch-sizes", "1,8").code == 0
    assert cli("bench", engine, "--batch-sizes", "1,8", "--iterations", "5").code == 0


def test_engine_profile_checked_against_the_onnx():
    """Profile rules hold without TensorRT: static batch, exported max batch, onnxruntime-target INT8."""
    from dataclasses import replace

    from swin_deploy.artifact import ArtifactInfo
    from swin_deploy.backends.tensorrt.loader import BuildOptions, check_profile
    from swin_deploy.enums import Int8Target, Precision
    from swin_deploy.errors import UserError
    from swin_deploy.models import get_config

    info = ArtifactInfo.for_config(get_config("swin_test"), "0" * 64, 17, max_batch=16, static_batch=False)
    check_profile(info, BuildOptions(1, 8, 16))
    with pytest.raises(UserError, match="exceeds the max batch the ONNX was exported with"):
        check_profile(info, BuildOptions(1, 8, 32))
    with pytest.raises(UserError, match="`min_batch` <= `opt_batch` <= `max_batch`, not 4, 2, 8"):
        check_profile(info, BuildOptions(4, 2, 8))
    with pytest.raises(UserError, match="not 4, 4, 2 \\(those not given are defaults\\)"):  # opt: the default in 4..2
        check_profile(info, BuildOptions(min_batch=4, max_batch=2))
    static = ArtifactInfo.for_config(get_config("swin_test"), "0" * 64, 17, max_batch=4, static_batch=True)
    with pytest.raises(UserError, match="static batch of 4"):
        check_profile(static, BuildOptions(1, 4, 4))
    check_profile(static, BuildOptions(4, 4, 4))
    # batches left unset are decided for the ONNX: a default never contradicts the batch it was exported for
    def profile(artifact, **given):
        options = check_profile(artifact, BuildOptions(**given))
        return options.min_batch, options.opt_batch, options.max_batch

    assert profile(static) == (4, 4, 4) and profile(info) == (1, 8, 16)
    assert profile(replace(info, max_batch=None)) == (1, 8, 32) and profile(replace(info, max_batch=4)) == (1, 4, 4)
    assert profile(replace(info, max_batch=None), opt_batch=64) == (1, 64, 64)
    assert profile(info, min_batch=2, max_batch=8) == (2, 8, 8) and profile(info, opt_batch=2) == (1, 2, 16)
    with pytest.raises(UserError, match="exceeds the max batch the ONNX was exported with"):
        check_profile(replace(info, max_batch=4), BuildOptions(opt_batch=8))
    # a size as one side, as the library takes sizes everywhere (it failed with "'int' object is not iterable")
    from swin_deploy.backends.tensorrt.loader import profile_sizes

    assert profile_sizes(info, BuildOptions(min_size=64, opt_size=64, max_size=[64, 64])) == {
        "min": (64, 64), "opt": (64, 64), "max": (64, 64)}
    info = replace(info, precision=Precision.INT8, int8_target=Int8Target.ONNXRUNTIME)
    with pytest.raises(UserError, match="targets onnxruntime"):
        check_profile(info, BuildOptions(1, 8, 16))


def test_engine_with_corrupt_sidecar_exits_2(cli, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00")
    (tmp_path / "m.engine.json").write_text("{not json")
    r = cli("verify", engine)
    assert r.code == 2 and "rebuild the engine" in r.err
    assert cli("verify", tmp_path / "other.engine").code == 2


# ---- control flow against the STAND-IN tensorrt module (tests/stand_in_tensorrt.py): not TensorRT ------------------
@pytest.fixture
def stand_in(monkeypatch):
    """`import tensorrt` answers with the stand-in, and builds record a made-up device (no GPU is asked)."""
    import stand_in_tensorrt

    from swin_deploy.backends.tensorrt import loader

    monkeypatch.setitem(sys.modules, "tensorrt", stand_in_tensorrt)
    monkeypatch.setattr(loader, "cuda_device", lambda: ("stand-in device", "0.0"))
    return stand_in_tensorrt


def build(onnx_path, out, options=None):
    from swin_deploy.artifact import read_info
    from swin_deploy.backends.tensorrt.loader import BuildOptions, build_engine

    return build_engine(onnx_path, read_info(onnx_path), "0" * 64, out, options or BuildOptions(1, 4, 8))


def test_loader_writes_a_strongly_typed_engine_and_its_sidecar(stand_in, demo, tmp_path):
    from swin_deploy.artifact import read_sidecar

    _, paths = demo
    engine = tmp_path / "m.engine"
    cache = tmp_path / "timing.cache"
    from swin_deploy.backends.tensorrt.loader import BuildOptions

    meta = build(paths["swin_digits"], engine, BuildOptions(1, 4, 8, timing_cache=cache))
    note = json.loads(engine.read_bytes())
    assert note["strongly_typed"] and note["tf32_cleared"] and note["workspace"] == 4 << 30
    assert note["profile"] == {"input": [[1, 3, 32, 32], [4, 3, 32, 32], [8, 3, 32, 32]]}
    sidecar = read_sidecar(engine)
    assert sidecar == meta and sidecar.profile["max"] == [8, 3, 32, 32] and sidecar.tensorrt == stand_in.__version__
    assert sidecar.artifact_info().max_batch == 8 and cache.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json", "timing.cache"]


def test_each_artifact_kind_on_a_backend_that_cannot_run_it_is_one_line(stand_in, cli, demo, tmp_path):
    """An engine runs on TensorRT alone, an IR on OpenVINO alone, and the tensorrt backend runs engines, not ONNX:
    said before anything loads, with what to run instead (not TensorRT's or OpenVINO's failure to parse the file).
    (bench's `backend` is each ONNX's, so an engine or IR among them runs on its own.)"""
    from swin_deploy.backends.tensorrt.loader import BuildOptions

    _, paths = demo
    engine, ir = tmp_path / "m.engine", tmp_path / "m.xml"
    build(paths["swin_digits"], engine, BuildOptions(1, 4, 8))
    assert cli("convert", paths["swin_digits"], "-o", ir).code == 0
    cases = [((engine, "openvino"), "m.engine is a TensorRT engine: run it with --backend tensorrt"),
             ((engine, "onnxruntime-cpu"), "m.engine is a TensorRT engine: run it with --backend tensorrt"),
             ((ir, "tensorrt"), "m.xml is an OpenVINO IR: run it with --backend openvino"),
             ((ir, "onnxruntime-cuda"), "m.xml is an OpenVINO IR: run it with --backend openvino"),
             ((paths["swin_digits"], "tensorrt"), "build one with swin-deploy build-engine, or run the ONNX on "
                                                  "TensorRT through onnxruntime (--backend onnxruntime-tensorrt)")]
    for (path, backend), said in cases:
        bench = [["bench", path, "--iterations", "2"]] if path.suffix == ".onnx" else []
        for command in (["verify", path, "--samples", "2"], ["predict", path, paths["swin_digits"]], *bench):
            r = cli(*command, "--backend", backend)
            assert r.code == 2 and said in r.err and r.err.count("\n") == 1, (command, backend, r.err)


def test_inspect_reads_an_engine_from_its_sidecar_without_tensorrt(stand_in, cli, demo, tmp_path, monkeypatch):
    """What an engine is comes from the sidecar build-engine wrote: inspect runs where TensorRT is not installed (a CI
    machine checking what it ships) and names the TensorRT and GPU the engine is for."""
    from swin_deploy.backends.tensorrt.loader import BuildOptions

    _, paths = demo
    engine = tmp_path / "m.engine"
    build(paths["swin_digits"], engine, BuildOptions(1, 4, 8))
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # importing it would fail: inspect must not need it
    r = cli("inspect", engine, "--json", "-")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["kind"] == "TensorRT engine" and doc["files"] == ["m.engine"], r.err
    assert doc["model"] == "swin_digits" and doc["batch"] == "1 to 8" and doc["input"].startswith("(B, 3, 32, 32)")
    assert doc["engine"]["tensorrt"] == stand_in.__version__ and doc["engine"]["profile"]["max"] == [8, 3, 32, 32]
    assert doc["engine"]["sidecar"] == "m.engine.json" and "opset" not in doc
    assert doc["runs_on"] == [f"tensorrt {stand_in.__version__} on {doc['engine']['gpu']} (sm "
                              f"{doc['engine']['compute_capability']})"]
    (tmp_path / "m.engine.json").unlink()
    r = cli("inspect", engine)
    assert r.code == 2 and "has no sidecar m.engine.json: rebuild it" in r.err


def test_runner_reads_io_from_the_engine_and_matches_onnxruntime(stand_in, demo, tmp_path):
    from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
    from swin_deploy.backends.tensorrt.runner import TensorRTRunner

    _, paths = demo
    engine = tmp_path / "m.engine"
    build(paths["swinv2_digits"], engine)
    x = np.random.default_rng(0).standard_normal((5, 3, 32, 32), dtype=np.float32)
    with TensorRTRunner(engine, device="cpu") as trt_runner, OnnxRuntimeRunner(paths["swinv2_digits"]) as ort_runner:
        assert trt_runner.input_name == "input" and trt_runner.output_names == ["logits"]
        for n in (1, 5):  # the input shape is set per call
            np.testing.assert_array_equal(trt_runner.infer(x[:n])["logits"], ort_runner.infer(x[:n])["logits"])
        assert trt_runner.context.calls == [(1, 3, 32, 32), (5, 3, 32, 32)]
        with pytest.raises(UserError, match="is torch.float32, not uint8"):
            trt_runner.infer(np.zeros((1, 3, 32, 32), np.uint8))
    # the same engine as bytes
    with TensorRTRunner(engine.read_bytes(), device="cpu") as r:
        assert r.infer(x[:2])["logits"].shape == (2, 10)


def test_runner_pads_a_static_batch_and_takes_uint8_pixels(stand_in, tmp_path):
    from swin_deploy.artifact import read_info
    from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
    from swin_deploy.backends.tensorrt.loader import BuildOptions
    from swin_deploy.backends.tensorrt.runner import TensorRTRunner
    from swin_deploy.export import ExportOptions, export_onnx
    from swin_deploy.models import Weights, build_model, get_config

    model, sha = build_model(get_config("swin_test"), Weights("random"))
    onnx_path = export_onnx(model, sha, tmp_path / "s.onnx", ExportOptions(static_batch=True, max_batch=4,
                                                                          input_format="uint8", channels_last=True)).path
    engine = tmp_path / "s.engine"
    build(onnx_path, engine, BuildOptions())  # the profile of a static batch is that batch: nothing to pass
    pixels = read_info(onnx_path).example_input(np.random.default_rng(0), 4)
    with TensorRTRunner(engine, device="cpu") as r, OnnxRuntimeRunner(onnx_path) as ort_runner:
        assert r.fixed_batch == 4
        out = r.infer(pixels[:3])["logits"]  # padded to 4, sliced back to 3
        assert out.shape == (3, 10) and r.context.calls == [(4, 64, 64, 3)]
        np.testing.assert_array_equal(out, ort_runner.infer(pixels)["logits"][:3])


def test_foreign_or_stale_engines_are_refused(stand_in, demo, tmp_path):
    from swin_deploy.artifact import read_sidecar
    from swin_deploy.backends.tensorrt.runner import TensorRTRunner

    foreign = tmp_path / "foreign.engine"
    foreign.write_bytes(b"\x00serialized by something else")
    with pytest.raises(UserError, match="cannot load"):
        TensorRTRunner(foreign, device="cpu").activate()
    engine = tmp_path / "m.engine"
    build(demo[1]["swin_digits"], engine)
    with pytest.raises(UserError, match="rebuild it"):  # another TensorRT or another GPU: engines are not portable
        read_sidecar(engine).check_runtime(engine, "10.16.1", "NVIDIA A100", "8.0")
    read_sidecar(engine).check_runtime(engine, stand_in.__version__, "any", "0.0")


def test_build_engine_command_lints_first(stand_in, cli, demo, tmp_path):
    """build-engine through the CLI with the stand-in: a clean ONNX builds; one with findings exits 1 and writes
    nothing unless --no-check."""
    import onnx

    _, paths = demo
    r = cli("build-engine", paths["swin_digits"], "--max-batch", "8", "-o", tmp_path / "ok.engine")
    assert r.code == 0, r.err
    assert (tmp_path / "ok.engine").is_file() and (tmp_path / "ok.engine.json").is_file()
    model = onnx.load(str(paths["swin_digits"]))
    erf = next(n for n in model.graph.node if n.op_type == "Erf")
    erf.op_type = "Acos"  # valid ONNX, not in TensorRT's table
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    r = cli("build-engine", bad, "--max-batch", "8", "-o", tmp_path / "bad.engine")
    assert r.code == 1 and "Acos" in r.err and "--no-check" in r.err and not (tmp_path / "bad.engine").exists()
    r = cli("build-engine", bad, "--max-batch", "8", "--no-check", "-o", tmp_path / "bad.engine")
    assert r.code == 0 and (tmp_path / "bad.engine").is_file()


def test_an_engine_keeps_its_onnx_tensor_names_for_triton(stand_in, cli, demo, tmp_path):
    """An ONNX from another exporter names its tensors as it likes ('x' and 'y' here), and TensorRT's parser keeps
    them: the sidecar records them, and Triton's config names what the engine has (it said 'input' and 'logits')."""
    import onnx

    from swin_deploy.artifact import EngineInfo, read_sidecar

    _, paths = demo
    model = onnx.load(str(paths["swin_digits"]))
    renames = {model.graph.input[0].name: "x", model.graph.output[0].name: "y"}
    model.graph.input[0].name, model.graph.output[0].name = "x", "y"
    for node in model.graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
        node.output[:] = [renames.get(o, o) for o in node.output]
    source = tmp_path / "foreign.onnx"
    onnx.save(model, str(source))
    engine = tmp_path / "foreign.engine"
    build(source, engine)
    sidecar = read_sidecar(engine)
    assert (sidecar.inputs, sidecar.outputs) == (["x"], ["y"])
    assert cli("triton", engine, "--repo", tmp_path / "repo", "--name", "foreign").code == 0
    config = (tmp_path / "repo" / "foreign" / "config.pbtxt").read_text()
    assert 'name: "x"' in config and 'name: "y"' in config and '"input"' not in config and '"logits"' not in config
    # a sidecar written before the names were recorded reads as swin-deploy's own names
    path = EngineInfo.path_for(engine)
    old = json.loads(path.read_text())
    del old["inputs"], old["outputs"]
    path.write_text(json.dumps(old))
    assert (read_sidecar(engine).inputs, read_sidecar(engine).outputs) == (["input"], [])
