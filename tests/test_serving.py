"""Serving: raw-pixel (uint8) exports with the normalisation folded in, and Triton model repositories."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

# only the Triton tests need tritonclient (the raw-pixel ones do not)
needs_triton = pytest.mark.skipif(importlib.util.find_spec("tritonclient") is None,
                                  reason="tritonclient[grpc] (the `triton` extra) is not installed")

from conftest import export_small as export  # noqa: E402


@pytest.mark.parametrize("name", ["swin_test", "swinv2_test"])
def test_uint8_input_matches_float_export_fed_normalised_pixels(tmp_path, name):
    from swin_deploy.artifact import read_info
    from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
    from swin_deploy.compare import max_rel_delta

    float_path = export(tmp_path, name)
    float_nodes = [n.op_type for n in onnx.load(str(float_path)).graph.node]
    for channels_last in (False, True):
        path = export(tmp_path, name, input_format="uint8", channels_last=channels_last)
        info = read_info(path)
        assert info.pixels and info.channels_last == channels_last
        graph = onnx.load(str(path)).graph
        assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
        # the hot path gains one Cast (and the NHWC Transpose): the normalisation is inside the conv's weights
        extra = ["Cast", "Transpose"] if channels_last else ["Cast"]
        assert [n.op_type for n in graph.node] == extra + float_nodes
        rng = np.random.default_rng(1)
        pixels = rng.integers(0, 256, (3, *info.img_size, 3), dtype=np.uint8)  # NHWC, as images decode
        fed = pixels if channels_last else pixels.transpose(0, 3, 1, 2)
        mean, std = np.array(info.mean, np.float32), np.array(info.std, np.float32)
        normalised = ((pixels / np.float32(255) - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)
        with OnnxRuntimeRunner(float_path) as f, OnnxRuntimeRunner(path) as u:
            assert max_rel_delta(f.infer(normalised)["logits"], u.infer(fed)["logits"]) <= 1e-5


def test_uint8_demo_export_verifies_quantizes_predicts_and_benches(cli, demo, tmp_path):
    folder, _ = demo
    data = folder / "data"
    path = tmp_path / "digits-u8.onnx"
    r = cli("export", "--variant", "swinv2_digits", "--input-format", "uint8", "--channels-last", "-o", path)
    assert r.code == 0, r.err
    report = tmp_path / "v.json"
    r = cli("verify", path, "--data", data / "val", "--report", report)
    assert r.code == 0, r.out + r.err
    metrics = json.loads(report.read_text())["batches"][0]["metrics"]
    assert metrics["cand_top1"] == metrics["ref_top1"] >= 95.0
    # another artifact as the reference: a float one gets the pixels normalised; a pixel reference for a float
    # candidate cannot be fed, and says so
    fp32 = demo[1]["swinv2_digits"]
    assert cli("verify", path, "--reference", fp32, "--data", data / "val", "--limit", "64").code == 0
    r = cli("verify", fp32, "--reference", path, "--samples", "4")
    assert r.code == 2 and "takes raw pixels" in r.err
    int8 = tmp_path / "digits-u8.int8.onnx"
    assert cli("quantize", path, "--precision", "int8", "--calib-data", data / "calib", "-o", int8).code == 0
    assert onnx.load(str(int8)).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    r = cli("verify", int8, "--data", data / "val", "--batch-sizes", "32")
    assert r.code == 0, r.out + r.err
    r = cli("predict", int8, data / "val" / "7", "--json", "-")
    top1 = [p["top_k"][0]["label"] for p in json.loads(r.out)["predictions"]]
    assert r.code == 0 and top1.count("7") >= 0.95 * len(top1)
    r = cli("bench", path, int8, "--batch-sizes", "1,4", "--iterations", "2", "--json", tmp_path / "b.json")
    assert r.code == 0 and len(json.loads((tmp_path / "b.json").read_text())["results"]) == 4


def test_channels_last_needs_uint8(cli, tmp_path):
    r = cli("export", "--variant", "swin_test", "--random-init", "--channels-last", "-o", tmp_path / "x.onnx")
    assert r.code == 2 and "--input-format" in r.err and not (tmp_path / "x.onnx").exists()


# ---- Triton ---------------------------------------------------------------------------------------------------
def parse_config(folder: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


@needs_triton
def test_triton_folders_for_every_artifact_kind_parse_and_check(cli, artifacts, tmp_path):
    from tritonclient.grpc import model_config_pb2 as pb

    for kind, path in artifacts.items():
        static = kind == "static_batch"  # a fixed batch: whole shapes, no server-side batching
        batching = [] if static else ["--preferred-batch", "4,8"]
        r = cli("triton", path, "--repo", tmp_path, "--name", kind, "--kind", "cpu", *batching)
        assert r.code == 0, f"{kind}: {r.err}"
        folder = tmp_path / kind
        config = parse_config(folder)
        assert config.name == kind and config.platform == "onnxruntime_onnx" and (folder / "1" / "model.onnx").is_file()
        assert (folder / "1" / "model.onnx").read_bytes() == path.read_bytes()
        inp = config.input[0]
        if static:
            assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
            assert list(inp.dims) == [4, 3, 64, 64] and list(config.output[0].dims) == [4, 10]
        else:
            assert config.max_batch_size > 0 and list(config.dynamic_batching.preferred_batch_size) == [4, 8]
        if static:
            pass
        elif kind == "uint8":
            assert inp.data_type == pb.TYPE_UINT8
            assert list(inp.dims) == [64, 64, 3]
        elif kind == "dynamic":
            assert list(inp.dims) == [3, -1, -1]
        else:
            assert list(inp.dims)[0] == 3 and len(inp.dims) == 3
        if kind == "features":
            graph_outputs = onnx.load(str(path)).graph.output
            assert [o.name for o in config.output] == [o.name for o in graph_outputs] == ["stage1", "stage2", "stage3"]
            assert list(config.output[0].dims) == [d.dim_value for d in graph_outputs[0].type.tensor_type.shape.dim][1:]
            assert not (folder / "labels.txt").exists()
        else:
            assert config.output[0].label_filename == "labels.txt"
            labels = (folder / "labels.txt").read_text().splitlines()
            assert len(labels) == list(config.output[0].dims)[-1]
        assert cli("triton", "--check", folder).code == 0


@needs_triton
def test_triton_openvino_dims_are_what_openvino_infers(cli, artifacts, tmp_path):
    """Triton's OpenVINO backend compares output dims exactly with OpenVINO's inferred shapes: an ONNX whose own
    output shapes leave the channels symbolic (another exporter's, or an older swin-deploy dynamic export) gets the
    channels OpenVINO infers, where onnxruntime's backend keeps the graph's -1."""
    model = onnx.load(str(artifacts["features"]))
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = f"{output.name}_channels"
    symbolic = tmp_path / "symbolic.onnx"
    onnx.save(model, str(symbolic))
    for runtime, channels in (("openvino", [16, 32, 64]), ("onnxruntime", [-1, -1, -1])):
        r = cli("triton", symbolic, "--repo", tmp_path / "repo", "--name", runtime, "--runtime", runtime, "--kind", "cpu")
        assert r.code == 0, r.err
        config = parse_config(tmp_path / "repo" / runtime)
        assert [list(o.dims)[0] for o in config.output] == channels, runtime
        assert cli("triton", "--check", tmp_path / "repo" / runtime).code == 0


@needs_triton
def test_triton_uint8_dtype_and_digit_labels(artifacts, tmp_path):
    from tritonclient.grpc import model_config_pb2 as pb

    from swin_deploy.serve.triton import TritonOptions, write_model

    result = write_model(artifacts["uint8"], tmp_path, TritonOptions(kind="cpu"))
    assert parse_config(result.folder).input[0].data_type == pb.TYPE_UINT8
    result = write_model(artifacts["fp32"], tmp_path, TritonOptions(ort_tensorrt="fp16"))
    config = parse_config(result.folder)
    accel = config.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP16"
    assert result.labels.read_text().splitlines() == [str(d) for d in range(10)]
    assert config.max_batch_size == 32  # the export's --max-batch


@needs_triton
@pytest.mark.parametrize("defect, expected", [
    ('dims: 3\n  dims: 32', "dims exclude the batch"),  # input dims with the batch dimension prepended
    ("TYPE_FP32\n  dims: 3", "data_type TYPE_FP16"),  # input declared as fp16
    ("preferred_batch_size: 8", "exceeds max_batch_size"),  # preferred 64 > max 32
    ('name: "fp32"', "differs from the folder"),
])
def test_triton_check_catches_planted_defects(cli, artifacts, tmp_path, defect, expected):
    from swin_deploy.serve.triton import TritonOptions, write_model

    folder = write_model(artifacts["fp32"], tmp_path, TritonOptions(name="fp32", preferred_batch=[8])).folder
    config = folder / "config.pbtxt"
    text = config.read_text()
    planted = {
        'dims: 3\n  dims: 32': text.replace("dims: 3\n  dims: 32", "dims: -1\n  dims: 3\n  dims: 32", 1),
        "TYPE_FP32\n  dims: 3": text.replace("TYPE_FP32\n  dims: 3", "TYPE_FP16\n  dims: 3", 1),
        "preferred_batch_size: 8": text.replace("preferred_batch_size: 8", "preferred_batch_size: 64"),
        'name: "fp32"': text.replace('name: "fp32"', 'name: "other"', 1),
    }[defect]
    assert planted != text
    config.write_text(planted)
    r = cli("triton", "--check", folder)
    assert r.code == 1 and expected in r.out, r.out
    if defect == "preferred_batch_size: 8":  # the repository (Triton's --model-repository): every model checked
        write_model(artifacts["fp32"], tmp_path, TritonOptions(name="good"))
        (tmp_path / "notes").mkdir()  # a folder without a config is no model
        r = cli("triton", "--check", tmp_path)
        assert r.code == 1 and expected in r.out and f"PASS triton check {tmp_path / 'good'}" in r.out, r.out
        assert f"FAIL triton check {folder}: 1 finding(s)" in " ".join(r.out.split()) + " ".join(r.err.split()), r
        shutil.rmtree(folder)
        assert cli("triton", "--check", tmp_path).code == 0
        r = cli("triton", "--check", tmp_path / "notes")
        assert r.code == 2 and "has no config.pbtxt and no model folders with one" in r.err, r.err


@needs_triton
def test_onnx_with_external_data_is_served_whole_and_a_missing_weights_file_named(cli, artifacts, tmp_path):
    """An ONNX that keeps its weights in a file beside it (ONNX external data, as exporters write past 2 GB or when
    asked): the Triton folder gets that file too, and where it is missing every command says which file to copy."""
    model = onnx.load(str(artifacts["fp32"]))
    split = tmp_path / "src" / "split.onnx"
    (split.parent / "weights").mkdir(parents=True)
    onnx.save(model, str(split), save_as_external_data=True, location="weights/split.data", size_threshold=1024)
    assert split.stat().st_size < artifacts["fp32"].stat().st_size / 4
    assert cli("triton", split, "--repo", tmp_path / "repo", "--kind", "cpu").code == 0
    served = tmp_path / "repo" / "split" / "1"
    assert (served / "weights" / "split.data").read_bytes() == (split.parent / "weights" / "split.data").read_bytes()
    assert cli("triton", "--check", served.parent).code == 0
    r = cli("verify", served / "model.onnx", "--samples", "4")
    assert r.code == 0, r.err
    (served / "weights" / "split.data").unlink()
    r = cli("triton", "--check", served.parent)
    assert r.code == 1 and "weights/split.data, which is not beside it" in r.out, r.out
    for command in (("verify",), ("check",), ("quantize", "--precision", "fp16", "-o", tmp_path / "f16.onnx")):
        r = cli(command[0], served / "model.onnx", *command[1:])
        assert r.code == 2 and "copy weights/split.data into" in r.err and len(r.err.strip().splitlines()) == 1, r.err


@needs_triton
def test_triton_check_of_a_repository_serving_other_models_too(cli, artifacts, tmp_path):
    """A repository holds other models beside swin-deploy's: a Python-backend model and an ONNX without swin-deploy
    metadata are skipped with the reason (the latter checked with --variant), the Swin model is checked; a folder that
    cannot be checked, given alone, is one line and exit 2, as is a repository with nothing to check."""
    from swin_deploy.serve.triton import TritonOptions, write_model

    repo = tmp_path / "repo"
    write_model(artifacts["fp32"], repo, TritonOptions(name="swin"))
    (repo / "py" / "1").mkdir(parents=True)
    (repo / "py" / "config.pbtxt").write_text('name: "py"\nbackend: "python"\nmax_batch_size: 0\n')
    (repo / "py" / "1" / "model.py").write_text("")
    foreign = onnx.load(str(artifacts["fp32"]))
    del foreign.metadata_props[:]
    (repo / "other" / "1").mkdir(parents=True)
    onnx.save(foreign, str(repo / "other" / "1" / "model.onnx"))
    config = (repo / "swin" / "config.pbtxt").read_text().replace('name: "swin"', 'name: "other"')
    (repo / "other" / "config.pbtxt").write_text(config.replace("label_filename", "# label_filename"))
    r = cli("triton", "--check", repo)
    out = " ".join(r.out.split())
    assert r.code == 0 and f"PASS triton check {repo / 'swin'}" in out, r.out + r.err
    assert f'skipped {repo / "py"}: py has backend "python"' in out and f"skipped {repo / 'other'}:" in out
    assert "no swin-deploy metadata: pass --variant NAME" in out  # spelled for the command line
    r = cli("triton", "--check", repo, "--variant", "swin_nope")
    assert r.code == 2 and "unknown variant 'swin_nope'" in r.err and r.err.count("\n") == 1, r.err
    r = cli("triton", "--check", repo, "--variant", "swin_digits")  # applies to the models without metadata only
    out = " ".join(r.out.split())
    assert r.code == 0 and f"PASS triton check {repo / 'other'}" in out and f"PASS triton check {repo / 'swin'}" in out
    for alone, said in ((repo / "py", 'py has backend "python": swin-deploy checks the onnxruntime'),
                        (repo / "other", "carries no swin-deploy metadata: pass --variant NAME")):
        r = cli("triton", "--check", alone)
        assert r.code == 2 and said in r.err and r.err.count("\n") == 1, r.err
    shutil.rmtree(repo / "swin")
    shutil.rmtree(repo / "other")
    r = cli("triton", "--check", repo)
    assert r.code == 2 and "no model in" in r.err and "is one swin-deploy checks" in r.err, r.err


@needs_triton
def test_triton_check_reads_the_runtime_from_platform_or_backend_and_the_file_name(cli, artifacts, tmp_path):
    """Triton takes `backend: "onnxruntime"` as well as `platform: "onnxruntime_onnx"`, and `default_model_filename`:
    neither is a finding (both were); a file the runtime cannot load, or two names for different runtimes, are."""
    from swin_deploy.serve.triton import TritonOptions, write_model

    folder = write_model(artifacts["fp32"], tmp_path, TritonOptions(name="m")).folder
    config = folder / "config.pbtxt"
    text = config.read_text()
    assert 'platform: "onnxruntime_onnx"' in text
    config.write_text(text.replace('platform: "onnxruntime_onnx"', 'backend: "onnxruntime"'))
    assert cli("triton", "--check", folder).code == 0
    (folder / "1" / "model.onnx").rename(folder / "1" / "swin.onnx")
    r = cli("triton", "--check", folder)
    assert r.code == 1 and "version 1 has no model.onnx for onnxruntime: add it" in r.out, r.out
    config.write_text(config.read_text() + 'default_model_filename: "swin.onnx"\n')
    assert cli("triton", "--check", folder).code == 0
    (folder / "1" / "swin.onnx").rename(folder / "1" / "model.onnx")
    config.write_text(text.replace('platform: "onnxruntime_onnx"', 'platform: "tensorrt_plan"'))
    r = cli("triton", "--check", folder)
    assert r.code == 1 and 'has no model.plan for tensorrt_plan (it holds model.onnx: serve that with platform ' \
                           '"onnxruntime_onnx")' in " ".join(r.out.split()), r.out
    config.write_text(text + 'backend: "tensorrt"\n')
    r = cli("triton", "--check", folder)
    assert r.code == 1 and 'platform "onnxruntime_onnx" and backend "tensorrt" name different runtimes' in r.out, r.out
    # versions by number, as Triton serves the highest: 10 (whole) after 9 (its model file missing)
    config.write_text(text)
    (folder / "1").rename(folder / "10")
    (folder / "9").mkdir()
    r = cli("triton", "--check", folder)
    assert r.code == 0, r.out


@needs_triton
def test_triton_refuses_to_overwrite_and_bad_options(cli, artifacts, tmp_path):
    from tritonclient.grpc import model_config_pb2 as pb

    assert cli("triton", artifacts["fp32"], "--repo", tmp_path, "--name", "m").code == 0
    before = (tmp_path / "m" / "config.pbtxt").read_text()
    # an ONNX on onnxruntime runs where the server can (KIND_AUTO: its GPUs, else its CPU; KIND_GPU does not load on a
    # CPU-only server), unless told; onnxruntime's TensorRT accelerator is GPU-only
    assert [g.kind for g in parse_config(tmp_path / "m").instance_group] == [pb.ModelInstanceGroup.KIND_AUTO]
    assert "kind" not in before.split("instance_group")[1].split("}")[0]  # Triton's default, so not written
    for args, kind in ((("--ort-tensorrt", "fp16"), "KIND_GPU"), (("--kind", "gpu"), "KIND_GPU"),
                       (("--kind", "cpu"), "KIND_CPU")):
        assert cli("triton", artifacts["fp32"], "--repo", tmp_path / kind / args[0], *args).code == 0
        config = parse_config(tmp_path / kind / args[0] / artifacts["fp32"].stem.replace(".", "_"))
        assert [pb.ModelInstanceGroup.Kind.Name(g.kind) for g in config.instance_group] == [kind], args
    r = cli("triton", artifacts["fp32"], "--repo", tmp_path, "--name", "n", "--kind", "auto", "--ort-tensorrt", "fp16")
    assert r.code == 2 and "--kind gpu" in r.err, r.err
    r = cli("triton", artifacts["fp32"], "--repo", tmp_path, "--name", "m", "--max-batch", "8")
    assert r.code == 2 and "--overwrite" in r.err
    assert (tmp_path / "m" / "config.pbtxt").read_text() == before
    assert cli("triton", artifacts["fp32"], "--repo", tmp_path, "--name", "m", "--max-batch", "8", "--overwrite").code == 0
    assert parse_config(tmp_path / "m").max_batch_size == 8
    for args, words in [(("--max-batch", "64"), "--max-batch"), (("--preferred-batch", "64"), "--preferred-batch"),
                        (("--ort-tensorrt", "int8"), "INT8"), (("--kind", "tpu"), "gpu, cpu")]:
        r = cli("triton", artifacts["fp32"], "--repo", tmp_path, "--name", "n", *args)
        assert r.code == 2 and words in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
    r = cli("triton", artifacts["int8_ort"], "--repo", tmp_path, "--name", "n", "--ort-tensorrt", "fp16")
    assert r.code == 2 and "onnxruntime" in r.err
    for name in ("", "a/b", ".n", " n"):  # an empty name is a mistake too, not a request for the default
        r = cli("triton", artifacts["fp32"], "--repo", tmp_path, "--name", name)
        assert r.code == 2 and f"model name '{name}'" in r.err and "--name" in r.err, (name, r.err)
    assert not (tmp_path / "n").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def fake_engine(tmp_path: Path, onnx_path: Path, min_batch: int, max_batch: int) -> Path:
    """An engine file (opaque bytes) with the sidecar build-engine writes: Triton configs come from the sidecar,
    so the plan path needs no GPU. Nothing here claims TensorRT ran."""
    from dataclasses import asdict

    from swin_deploy.artifact import EngineInfo, read_info

    info = read_info(onnx_path)
    shape = {k: list(info.input_shape(b)) for k, b in (("min", min_batch), ("opt", max_batch), ("max", max_batch))}
    engine = tmp_path / f"{onnx_path.stem}-b{min_batch}-{max_batch}.engine"
    engine.write_bytes(b"not a real engine: stands in for TensorRT's serialized plan")
    meta = EngineInfo(tensorrt="10.16.0", gpu="(none: unit test)", compute_capability="8.0", precision=info.precision,
                      profile=shape, source_onnx_sha256="0" * 64, swin_deploy="test", build_seconds=0.0,
                      artifact=info.to_props())
    EngineInfo.path_for(engine).write_text(json.dumps(asdict(meta)))
    return engine


@needs_triton
def test_triton_plan_from_engine_sidecar(cli, artifacts, tmp_path):
    from tritonclient.grpc import model_config_pb2 as pb

    engine = fake_engine(tmp_path, artifacts["int8"], 1, 16)
    repo = tmp_path / "repo"
    repo.mkdir()
    r = cli("triton", engine, "--repo", repo, "--name", "plan", "--preferred-batch", "8")
    assert r.code == 0, r.err
    config = parse_config(repo / "plan")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
    assert (repo / "plan" / "1" / "model.plan").is_file() and (repo / "plan" / "1" / "model.plan.json").is_file()
    assert list(config.input[0].dims) == [3, 32, 32]
    assert cli("triton", "--check", repo / "plan").code == 0
    # a profile that does not start at batch 1 cannot take the dynamic batcher's batches
    late = fake_engine(tmp_path, artifacts["int8"], 4, 16)
    r = cli("triton", late, "--repo", repo, "--name", "late")
    assert r.code == 2 and "--min-batch 1" in r.err
    assert cli("triton", late, "--repo", repo, "--name", "late", "--no-dynamic-batching").code == 0
    assert [g.kind for g in config.instance_group] == [pb.ModelInstanceGroup.KIND_GPU]
    for kind in ("cpu", "auto"):  # a plan needs a GPU: KIND_AUTO would try the CPU on a server without one
        r = cli("triton", engine, "--repo", repo, "--name", kind, "--kind", kind)
        assert r.code == 2 and f"drop --kind {kind}" in r.err, r.err
    # a max_batch_size beyond the profile, planted
    config_path = repo / "plan" / "config.pbtxt"
    config_path.write_text(config_path.read_text().replace("max_batch_size: 16", "max_batch_size: 32"))
    r = cli("triton", "--check", repo / "plan")
    assert r.code == 1 and "engine profile covers (16)" in r.out
