"""OpenVINO as a CPU runtime: every artifact kind verifies on the held-out digits with the gate of what actually runs,
the IR carries the metadata, Triton's OpenVINO backend gets a valid folder, and bad inputs exit 2 with one line."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import no_vnni

pytest.importorskip("openvino", reason="openvino (the `openvino` extra, installed by `dev`) is not installed")


@pytest.mark.parametrize("kind", ["fp32", "fp16", "int8", "int8_ort", "fp32_v2", "int8_v2"])
def test_every_precision_verifies_on_openvino_with_the_gate_of_what_runs(cli, demo, artifacts, tmp_path, kind):
    """Both demo models (V1 and, as *_v2, V2), on their 359 held-out digits; INT8 as docs/cpu.md ships it to this
    CPU (7-bit weights without VNNI)."""
    from swin_deploy.tolerances import thresholds_for

    folder, paths = demo
    path = paths["swinv2_digits"] if kind == "fp32_v2" else artifacts.get(kind)
    if kind == "int8_v2":
        path = tmp_path / "v2.int8.onnx"
        assert cli("quantize", paths["swinv2_digits"], "--precision", "int8", "--calib-data", folder / "data" / "calib",
                   *(["--reduce-range"] if no_vnni() else []), "-o", path).code == 0
    report = tmp_path / "r.json"
    r = cli("verify", path, "--backend", "openvino", "--data", folder / "data" / "val", "--report", report)
    assert r.code == 0, r.out + r.err
    doc = json.loads(report.read_text())
    ran = doc["candidate"]["execution_precision"]
    assert doc["candidate"]["backend"] == "openvino" and ran in ("f32", "bf16", "f16")
    if kind in ("fp32", "fp16", "fp32_v2"):
        assert ran == "f32"  # float artifacts run in float32 unless asked: OpenVINO's bf16 default would be ungated
    assert doc["thresholds"] == thresholds_for(doc["precision"], ran).as_dict()
    metrics = doc["batches"][0]["metrics"]
    assert metrics["cand_top1"] >= metrics["ref_top1"] - 1.0


@pytest.mark.parametrize("kind", ["dynamic", "features", "static_batch", "uint8", "opset13", "opset_newest"])
def test_every_model_form_verifies_on_openvino_as_an_onnx_and_as_an_ir(cli, artifacts, tmp_path, kind):
    """Dynamic sizes (at two sizes), feature maps, a static batch, raw uint8 NHWC pixels, the oldest and newest
    opsets: each against its fp32 gate in f32, from the ONNX and from its IR."""
    xml = tmp_path / "m.xml"
    assert cli("convert", artifacts[kind], "-o", xml).code == 0
    sizes = ["--img-sizes", "64,96x128"] if kind == "dynamic" else []
    for path in (artifacts[kind], xml):
        report = tmp_path / "r.json"
        r = cli("verify", path, "--backend", "openvino", "--random-init", "--samples", "4", *sizes, "--report", report)
        assert r.code == 0, (path, r.out + r.err)
        doc = json.loads(report.read_text())
        assert doc["candidate"]["execution_precision"] == "f32"
        assert len(doc["batches"]) == (6 if kind == "dynamic" else 1 if kind == "static_batch" else 3)


def test_bf16_execution_gets_the_bf16_gate_never_the_fp32_one(cli, demo, artifacts, tmp_path):
    from swin_deploy.backends.openvino_runner import cpu_capabilities
    from swin_deploy.tolerances import DEFAULT_THRESHOLDS, EXECUTION_THRESHOLDS

    if "BF16" not in cpu_capabilities():
        pytest.skip("this CPU has no BF16")
    folder, _ = demo
    report = tmp_path / "r.json"
    r = cli("verify", artifacts["fp32"], "--backend", "openvino", "--inference-precision", "bf16",
            "--data", folder / "data" / "val", "--report", report)
    doc = json.loads(report.read_text())
    assert doc["candidate"]["execution_precision"] == "bf16"
    assert doc["thresholds"]["max_rel_delta"] == EXECUTION_THRESHOLDS["bf16"].max_rel_delta
    delta = doc["batches"][0]["metrics"]["max_rel_delta"]
    # bf16 really moves the logits past the fp32 gate: gating it with fp32 tolerances would fail every run
    assert delta > DEFAULT_THRESHOLDS["fp32"].max_rel_delta
    assert r.code == 0, r.out + r.err


def test_ir_export_and_convert_carry_the_metadata(cli, demo, artifacts, tmp_path):
    from swin_deploy.artifact import artifact_info, read_info

    folder, _ = demo
    xml = tmp_path / "digits.xml"
    r = cli("export", "--variant", "swinv2_digits", "--format", "openvino", "--max-batch", "32", "-o", xml)
    assert r.code == 0, r.err
    assert xml.is_file() and xml.with_suffix(".bin").is_file() and not list(tmp_path.glob("*.onnx"))
    info = artifact_info(xml)
    assert info.variant == "swinv2_digits" and info.max_batch == 32 and info.labels[3] == "3"
    assert cli("verify", xml, "--data", folder / "data" / "val", "--batch-sizes", "8").code == 0
    int8 = tmp_path / "int8.xml"
    r = cli("convert", artifacts["int8"], "-o", int8)
    assert r.code == 0 and "float16" in r.out, r.out + r.err
    assert artifact_info(int8) == read_info(artifacts["int8"])
    r = cli("predict", int8, folder / "data" / "val" / "7", "--json", "-")
    top1 = [p["top_k"][0]["label"] for p in json.loads(r.out)["predictions"]]
    assert r.code == 0 and top1.count("7") >= 0.9 * len(top1)


def test_an_openvino_reference_names_what_it_computed_in(cli, demo, artifacts, tmp_path):
    """An IR as the reference runs on OpenVINO like any IR (fp32: in f32, whatever the candidate is asked to compute
    in); the report and the header say what it computed in, known once it ran, and from a reference cache as it ran
    when the cache was written."""
    from swin_deploy.backends.openvino_runner import cpu_capabilities

    folder, _ = demo
    xml = tmp_path / "fp32.xml"
    assert cli("convert", artifacts["fp32"], "-o", xml).code == 0
    report, cache = tmp_path / "r.json", tmp_path / "ref.cache"
    for hit in (False, True):
        r = cli("verify", artifacts["int8"], "--reference", xml, "--backend", "openvino", "--inference-precision",
                "bf16" if "BF16" in cpu_capabilities() else "f32", "--data", folder / "data" / "val", "--limit", "16",
                "--reference-cache", cache, "--report", report)
        assert r.code == 0, r.out + r.err
        doc = json.loads(report.read_text())
        assert doc["reference_cache"]["hit"] is hit
        assert doc["reference"]["backend"] == "openvino" and doc["reference"]["execution_precision"] == "f32"
        assert "vs openvino (computing in f32)" in " ".join(r.out.split()), r.out


def test_junit_cases_of_two_artifacts_or_two_runtimes_do_not_collide(cli, artifacts, tmp_path):
    """CI merges JUnit files and keys each result on class and name: the INT8 for TensorRT and the one for
    onnxruntime of one model, and one artifact on two runtimes, are separate tests (they shared `variant.int8`)."""
    import xml.etree.ElementTree as ET

    seen = {}
    for path, backend in ((artifacts["int8"], "onnxruntime-cpu"), (artifacts["int8"], "openvino"),
                          (artifacts["int8_ort"], "onnxruntime-cpu")):
        junit = tmp_path / f"{len(seen)}.xml"
        assert cli("verify", path, "--backend", backend, "--samples", "2", "--batch-sizes", "2",
                   "--junit", junit).code == 0
        cases = [(c.get("classname"), c.get("name")) for c in ET.parse(junit).getroot().iter("testcase")]
        assert cases and all(path.name in c and backend in c for c, _ in cases), cases
        seen[(path, backend)] = set(cases)
    first, second, third = seen.values()
    assert not first & second and not first & third and not second & third


def test_an_ir_is_identified_by_its_weights_too(cli, artifacts, tmp_path):
    """Two IRs with one graph and other weights (the same architecture converted from two fine-tunes without our
    metadata) have the same .xml: the identity that keys verify's reference cache and bench's baseline comparison
    covers the .bin."""
    import shutil

    from swin_deploy.artifact import artifact_sha256
    from swin_deploy.fileio import sha256_file

    first = tmp_path / "a" / "m.xml"
    first.parent.mkdir()
    assert cli("convert", artifacts["fp32"], "-o", first).code == 0
    second = tmp_path / "b" / "m.xml"
    shutil.copytree(first.parent, second.parent)
    weights = bytearray(second.with_suffix(".bin").read_bytes())
    weights[-64:] = bytes(64)
    second.with_suffix(".bin").write_bytes(weights)
    assert sha256_file(first) == sha256_file(second) and artifact_sha256(first) != artifact_sha256(second)
    r = cli("verify", second, "--samples", "4", "--report", "-")
    assert json.loads(r.out)["sha256"] == artifact_sha256(second), r.err


@pytest.mark.parametrize("form", ["fp16_weights", "fp32_weights", "int8"])
def test_a_foreign_ir_takes_variant_and_the_gates_its_layers_ask_for(cli, demo, artifacts, tmp_path, form):
    """An IR OpenVINO's own converter wrote from someone else's ONNX (no swin-deploy rt_info): with `--variant` it
    verifies with the gate of its stored precision (the converter's default float16 weights are FP16's, not fp32's,
    which they fail), and an input the variant does not take is one line."""
    import onnx
    import openvino as ov

    folder, _ = demo
    source = tmp_path / "foreign.onnx"
    model = onnx.load(str(artifacts["int8" if form == "int8" else "fp32"]))
    del model.metadata_props[:]
    onnx.save(model, str(source))
    xml = tmp_path / "foreign.xml"
    ov.save_model(ov.convert_model(str(source)), str(xml), compress_to_fp16=form != "fp32_weights")
    report = tmp_path / "r.json"
    r = cli("verify", xml, "--variant", "swin_digits", "--data", folder / "data" / "val", "--limit", "64",
            "--report", report)
    assert r.code == 0, r.out + r.err
    doc = json.loads(report.read_text())
    assert doc["precision"] == {"fp16_weights": "fp16", "fp32_weights": "fp32", "int8": "int8"}[form]
    assert doc["batches"][0]["metrics"]["cand_top1"] > 90
    r = cli("verify", xml, "--variant", "swin_t", "--samples", "2")
    assert r.code == 2 and "takes ?x3x32x32 inputs where swin_t" in r.err and len(r.err.strip().splitlines()) == 1
    # served by Triton: the folder's copy carries the variant's metadata, so it checks and verifies without `variant`
    assert cli("triton", xml, "--repo", tmp_path / "repo", "--variant", "swin_digits").code == 0
    assert cli("triton", "--check", tmp_path / "repo" / "foreign").code == 0
    served = tmp_path / "repo" / "foreign" / "1" / "model.xml"
    r = cli("verify", served, "--samples", "2", "--report", report)
    assert r.code == 0 and json.loads(report.read_text())["precision"] == doc["precision"], r.err
    # the ONNX it came from converts to an IR of ours with `variant`, which then needs no `variant` either
    ours = tmp_path / "ours.xml"
    assert cli("convert", source, "--variant", "swin_digits", "-o", ours).code == 0
    assert cli("verify", ours, "--samples", "2").code == 0


@pytest.mark.parametrize("kind", ["uint8", "static_batch"])
def test_an_int8_ir_computes_what_openvino_computes_for_its_onnx(cli, demo, artifacts, tmp_path, kind):
    """INT8 of a channels-last uint8 export (OpenVINO's convert_model failed on its input FakeQuantize) and of a V2
    model (whose rounding convert_model's passes changed by 0.2 x max|output|): the IR is the ONNX's own graph."""
    import numpy as np

    from swin_deploy.artifact import read_info
    from swin_deploy.backends.openvino_runner import OpenVinoOptions, OpenVinoRunner

    folder, _ = demo
    onnx_path, xml = tmp_path / "m.int8.onnx", tmp_path / "m.int8.xml"
    assert cli("quantize", artifacts[kind], "--precision", "int8", "--calib-data", folder / "data" / "calib",
               "--calib-images", "16", "-o", onnx_path).code == 0
    r = cli("convert", onnx_path, "-o", xml)
    assert r.code == 0, r.out + r.err
    info = read_info(onnx_path)
    x = info.example_input(np.random.default_rng(1), info.fixed_batch or 3)
    options = OpenVinoOptions(inference_precision="f32")
    outputs = []
    for path in (onnx_path, xml):
        with OpenVinoRunner(path, options=options, precision=info.precision) as runner:
            outputs.append(runner.infer(x))
    assert outputs[0].keys() == outputs[1].keys()
    for name in outputs[0]:
        np.testing.assert_array_equal(outputs[0][name], outputs[1][name])


def test_bench_runs_each_onnx_on_each_backend_and_reports_load_time(cli, artifacts, tmp_path):
    out = tmp_path / "b.json"
    r = cli("bench", artifacts["int8"], "--backend", "onnxruntime-cpu,openvino", "--batch-sizes", "1",
            "--iterations", "2", "--warmup", "0", "--json", out)
    assert r.code == 0, r.err
    doc = json.loads(out.read_text())
    backends = {row["label"]: row["backend"] for row in doc["results"]}
    assert set(backends) == {"int8.onnx [onnxruntime-cpu]", "int8.onnx [openvino]"}
    assert backends["int8.onnx [openvino]"].split()[0] == "openvino" and len(backends["int8.onnx [openvino]"].split()) == 2
    assert all(run["load_ms"] > 0 for run in doc["runners"].values())
    # the line naming the fastest says each runtime once, and what the label does not say (OpenVINO's precision)
    fastest = next(line for line in r.out.splitlines() if line.startswith("fastest at batch 1"))
    assert f"int8.onnx [openvino] ({backends['int8.onnx [openvino]'].split()[1]})" in fastest, fastest
    assert "int8.onnx [onnxruntime-cpu]" in fastest and "(onnxruntime-cpu)" not in fastest, fastest
    # --backend is each ONNX's runtime: with no ONNX among the artifacts it would be ignored, so it is refused
    xml = tmp_path / "m.xml"
    assert cli("convert", artifacts["fp32"], "-o", xml).code == 0
    r = cli("bench", xml, "--backend", "onnxruntime-cpu", "--batch-sizes", "1", "--iterations", "2")
    assert r.code == 2 and "none of these is an ONNX (m.xml on openvino): drop it" in r.err, r.err
    r = cli("bench", xml, artifacts["fp32"], "--backend", "onnxruntime-cpu", "--batch-sizes", "1", "--iterations", "2",
            "--json", out)
    assert r.code == 0 and {row["backend"].split()[0] for row in json.loads(out.read_text())["results"]} == {
        "openvino", "onnxruntime-cpu"}, r.err


def test_triton_openvino_folders_from_onnx_and_ir(cli, artifacts, tmp_path):
    pytest.importorskip("tritonclient.grpc")
    repo = tmp_path / "not" / "yet" / "there"  # the repository root is created, parents too
    r = cli("triton", artifacts["int8"], "--repo", repo, "--runtime", "openvino", "--threads", "2", "--name", "a")
    assert r.code == 0, r.err
    config = (repo / "a" / "config.pbtxt").read_text()
    assert 'backend: "openvino"' in config and 'default_model_filename: "model.onnx"' in config
    assert "KIND_CPU" in config and "INFERENCE_NUM_THREADS" in config and "platform" not in config
    assert "--inference-precision bf16" not in r.out  # INT8 is verified at OpenVINO's own choice already
    xml = tmp_path / "m.xml"
    assert cli("convert", artifacts["fp32"], "-o", xml).code == 0
    r = cli("triton", xml, "--repo", repo, "--name", "b")
    # a float artifact: the backend cannot force f32, so the summary says which gate matches what the server runs
    assert r.code == 0 and "verify --backend openvino --inference-precision bf16" in r.out, r.err
    assert (repo / "b" / "1" / "model.xml").is_file() and (repo / "b" / "1" / "model.bin").is_file()
    # an IR is served by the OpenVINO backend: its options need no --runtime
    r = cli("triton", xml, "--repo", repo, "--name", "b2", "--streams", "2", "--threads", "2", "--static-batch")
    config = (repo / "b2" / "config.pbtxt").read_text()
    assert r.code == 0 and all(f'key: "{k}"' in config for k in ("NUM_STREAMS", "SKIP_OV_DYNAMIC_BATCHSIZE")), r.err
    assert cli("triton", "--check", repo / "b").code == 0
    (repo / "b" / "1" / "model.bin").unlink()
    r = cli("triton", "--check", repo / "b")
    assert r.code == 1 and "model.bin" in r.out
    # weights cut short (a copy that never finished): a finding, and an IR like that is refused; both were internal
    # errors, OpenVINO's own traceback
    weights = xml.with_suffix(".bin").read_bytes()[:1000]
    (repo / "b" / "1" / "model.bin").write_bytes(weights)
    r = cli("triton", "--check", repo / "b")
    assert r.code == 1 and "model.xml: OpenVINO cannot read model.xml: model.bin is shorter than the weights" in " ".join(
        r.out.split()), r.out + r.err
    cut = shutil.copy(xml, tmp_path / "cut.xml")
    cut.with_suffix(".bin").write_bytes(weights)
    r = cli("triton", cut, "--repo", repo, "--name", "b3")
    assert r.code == 2 and "OpenVINO cannot read cut.xml: cut.bin is shorter than the weights it lists" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "copy both files again" in r.err, r.err
    r = cli("bench", cut, "--batch-sizes", "1", "--iterations", "1")  # every command that reads it says the same
    assert r.code == 2 and "cut.bin is shorter than the weights it lists" in r.err, r.err
    r = cli("triton", xml, "--repo", repo, "--name", "c", "--kind", "gpu")
    assert r.code == 2 and "runs on the CPU" in r.err and not (repo / "c").exists()
    r = cli("triton", artifacts["fp32"], "--repo", repo, "--name", "d", "--threads", "2")
    assert r.code == 2 and "--runtime openvino" in r.err
    # static batch: the backend's own switches for one compiled shape, smaller batches padded
    r = cli("triton", artifacts["int8"], "--repo", repo, "--runtime", "openvino", "--static-batch", "--max-batch", "8",
            "--name", "e")
    config = (repo / "e" / "config.pbtxt").read_text()
    assert r.code == 0 and "max_batch_size: 8" in config, r.err
    assert all(f'key: "{k}"' in config for k in ("SKIP_OV_DYNAMIC_BATCHSIZE", "ENABLE_BATCH_PADDING"))
    assert cli("triton", "--check", repo / "e").code == 0
    r = cli("triton", artifacts["int8"], "--repo", repo, "--static-batch", "--name", "f")
    assert r.code == 2 and "--runtime openvino" in r.err and not (repo / "f").exists()
    r = cli("triton", artifacts["static_batch"], "--repo", repo, "--runtime", "openvino", "--static-batch", "--name", "g")
    assert r.code == 2 and "fixed batch" in r.err


def test_bad_openvino_inputs_exit_2_with_one_line(cli, artifacts, tmp_path, monkeypatch):
    import swin_deploy.backends.openvino_runner as ovr

    xml = tmp_path / "m.xml"
    assert cli("convert", artifacts["fp32"], "-o", xml).code == 0
    r = cli("convert", xml, "-o", tmp_path / "again.xml")  # an IR is converted already
    assert r.code == 2 and "is not an ONNX" in r.err and len(r.err.strip().splitlines()) == 1
    for command in ("verify", "bench", "inspect"):  # the IR's weights passed for the model
        r = cli(command, xml.with_suffix(".bin"))
        assert r.code == 2 and "m.bin is the weights file of the OpenVINO IR m.xml, not a model: pass m.xml" in r.err
        assert len(r.err.strip().splitlines()) == 1
    xml.with_suffix(".bin").unlink()
    r = cli("verify", xml, "--random-init", "--samples", "2")
    assert r.code == 2 and "no weights file m.bin" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("verify", artifacts["fp32"], "--inference-precision", "bf16", "--samples", "2")
    assert r.code == 2 and "--backend openvino" in r.err
    r = cli("verify", artifacts["fp32"], "--backend", "openvino", "--inference-precision", "f64", "--samples", "2")
    assert r.code == 2 and "unknown --inference-precision 'f64'" in r.err
    monkeypatch.setattr(ovr, "cpu_capabilities", lambda: ["FP32", "INT8"])  # a CPU without BF16 (AVX2-only)
    r = cli("verify", artifacts["fp32"], "--backend", "openvino", "--inference-precision", "bf16", "--samples", "2")
    assert r.code == 2 and "cannot compute in bf16" in r.err and "--inference-precision f32" in r.err
    monkeypatch.setattr(ovr, "cpu_capabilities", lambda: ["BF16", "FP32", "INT8"])  # AVX-512 BF16, no FP16 (Zen 4)
    r = cli("verify", artifacts["fp32"], "--backend", "openvino", "--inference-precision", "f16", "--samples", "2")
    assert r.code == 2 and "cannot compute in f16" in r.err and "--inference-precision bf16 or f32" in r.err, r.err

    def missing():
        raise ovr.missing_package("openvino", "openvino")

    monkeypatch.setattr(ovr, "import_openvino", missing)
    r = cli("verify", artifacts["fp32"], "--backend", "openvino", "--samples", "2")
    assert r.code == 2 and "pip install 'swin-deploy[openvino]'" in r.err


def test_runtime_options_reach_the_runner_and_bad_ones_exit_2(cli, demo, artifacts, tmp_path):
    """--threads and --cache-dir, as verify, bench and predict share them: used when sound, one line when not."""
    folder, _ = demo
    val = folder / "data" / "val"
    cache, report = tmp_path / "cache" / "ov", tmp_path / "r.json"
    r = cli("verify", artifacts["int8"], "--backend", "openvino", "--threads", "1", "--cache-dir", cache,
            "--data", val, "--limit", "8", "--report", report)
    assert r.code == 0, r.out + r.err
    assert json.loads(report.read_text())["candidate"]["threads"] == 1
    assert list(cache.glob("*.blob"))  # OpenVINO cached what it compiled, in the folder it was given
    r = cli("predict", artifacts["int8"], val / "3", "--backend", "openvino", "--threads", "1", "--json", "-")
    assert r.code == 0 and json.loads(r.out)["predictions"], r.err
    ran = json.loads(r.out)["runner"]  # what computed the scores: the runtime and what it computed in
    assert ran["backend"] == "openvino" and ran["threads"] == 1 and ran["execution_precision"] in ("f32", "bf16", "f16")
    r = cli("predict", artifacts["fp32"], val / "3", "--backend", "openvino", "--inference-precision", "f32")
    assert r.code == 0 and "on openvino, computing in f32: top-5" in " ".join(r.out.split()), r.out
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for folder_given, said in ((blocker, "a-file is a file"), (blocker / "sub", "a-file is a file, not a folder")):
        r = cli("verify", artifacts["int8"], "--backend", "openvino", "--cache-dir", folder_given, "--samples", "2")
        assert r.code == 2 and said in r.err and "--cache-dir" in r.err and len(r.err.strip().splitlines()) == 1
    for command in (("verify", artifacts["fp32"], "--samples", "2"), ("predict", artifacts["fp32"], val / "3"),
                    ("bench", artifacts["fp32"], "--batch-sizes", "1", "--iterations", "2")):
        for threads in ("0", "-1"):
            r = cli(*command, "--threads", threads)
            assert r.code == 2 and "--threads must be at least 1" in r.err, (command, r.err)


def test_a_precision_openvino_cannot_compile_in_is_named_with_what_to_do(cli, artifacts, monkeypatch):
    """OpenVINO 2026.4 fails to compile the full-size INT8 graphs in f16 (a type mismatch in its own conversion) while
    f32 and bf16 compile: a user asked for f16 is told that, not asked whether the model is valid. Simulated on the
    small INT8 artifact (the full-size export takes minutes)."""
    import openvino

    import swin_deploy.backends.openvino_runner as ovr

    compile_model = openvino.Core.compile_model

    def fails_in_f16(self, model, device=None, config=None):
        if (config or {}).get("INFERENCE_PRECISION_HINT") == "f16":
            raise RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\n"
                               "Check 'element::Type::merge(...)' failed at src/core/src/op/matmul.cpp:107:")
        return compile_model(self, model, device, config)

    monkeypatch.setattr(openvino.Core, "compile_model", fails_in_f16)
    monkeypatch.setattr(ovr, "cpu_capabilities", lambda: ["FP32", "BF16", "FP16", "INT8"])
    r = cli("verify", artifacts["int8"], "--backend", "openvino", "--inference-precision", "f16", "--samples", "2")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1, r.err
    assert "cannot compute int8.onnx in f16" in r.err and "Check 'element::Type::merge" in r.err
    assert "compiles in f32: choose another --inference-precision" in r.err
    assert cli("verify", artifacts["int8"], "--backend", "openvino", "--samples", "2").code == 0


@pytest.mark.parametrize("promised", ["logits", "features", "stem", "stage3"])
def test_the_runner_names_an_output_as_the_artifact_promises(promised):
    """A port OpenVINO gives several names (a converter's Cast merged into it) is named as the artifact promises,
    whichever name OpenVINO lists first."""
    from swin_deploy.backends.openvino_runner import port_name

    class Port:
        def get_names(self):
            return {"a/cast_output_0", promised, "z_extra"}

        def get_any_name(self):
            return "a/cast_output_0"

    assert port_name(Port()) == promised


def test_a_port_with_several_names_runs_and_is_served_by_the_name_each_side_knows(cli, artifacts, tmp_path):
    """verify reads the promised `logits`; Triton's OpenVINO backend matches config names against get_any_name()
    alone (its ValidateInputs/ValidateOutputs), so the config names the port as that, and --check agrees."""
    pytest.importorskip("tritonclient.grpc")
    import openvino as ov

    xml, multi = tmp_path / "m.xml", tmp_path / "multi.xml"
    assert cli("convert", artifacts["fp32"], "-o", xml).code == 0
    model = ov.Core().read_model(str(xml))
    model.outputs[0].get_tensor().add_names({"a/cast_output_0"})
    ov.save_model(model, str(multi), compress_to_fp16=False)
    assert ov.Core().read_model(str(multi)).outputs[0].get_any_name() == "a/cast_output_0"
    assert cli("verify", multi, "--samples", "4").code == 0
    assert cli("triton", multi, "--repo", tmp_path / "repo").code == 0
    config = (tmp_path / "repo" / "multi" / "config.pbtxt").read_text()
    assert 'name: "a/cast_output_0"' in config and 'name: "logits"' not in config, config
    assert 'label_filename: "labels.txt"' in config  # still the logits, whatever the backend calls them
    assert cli("triton", "--check", tmp_path / "repo" / "multi").code == 0


@pytest.mark.parametrize("kind", ["fp32", "fp32_v2", "int8"])
def test_openvino_runs_each_window_attention_as_one_fused_kernel(demo, artifacts, kind):
    """The 4D attention layout (layers.heads_major) is what OpenVINO's MHA kernel takes: no Softmax and no attention
    MatMul is left standalone (the 5D layout left every one of them: 40% of swin_t INT8's time)."""
    import openvino as ov

    _, paths = demo
    path = {"fp32": paths["swin_digits"], "fp32_v2": paths["swinv2_digits"], "int8": artifacts["int8"]}[kind]
    compiled = ov.Core().compile_model(str(path), "CPU")
    layers = [op.get_rt_info()["layerType"].astype(str) for op in compiled.get_runtime_model().get_ops()]
    assert "Softmax" not in layers and "MatMul" not in layers, sorted(set(layers))
    assert layers.count("Subgraph") >= 4  # one per block at least (plus element-wise snippets)


def test_openvino_compiles_each_input_shape_it_is_fed(artifacts):
    """A static-shape compile per batch size (faster than the dynamic-batch model), same outputs, and the dynamic model
    past defaults.OPENVINO_STATIC_SHAPES shapes."""
    import numpy as np

    from swin_deploy import defaults
    from swin_deploy.artifact import read_info
    from swin_deploy.backends.openvino_runner import OpenVinoRunner

    size = read_info(artifacts["fp32"]).img_size
    x = np.random.default_rng(0).standard_normal((defaults.OPENVINO_STATIC_SHAPES + 2, 3, *size), dtype=np.float32)
    with OpenVinoRunner(artifacts["fp32"], threads=1) as runner:
        runner.infer(np.zeros((2, 3, size[0] * 2, size[1] * 2), np.float32))  # not the model's size: no static copy
        assert not runner.static
        dynamic = runner.dynamic.request.infer({0: x})[0].copy()
        outs = [runner.infer(x[:b])["logits"] for b in range(1, len(x) + 1)]
        assert sorted(runner.static) == [(b, 3, *size) for b in range(1, defaults.OPENVINO_STATIC_SHAPES + 1)]
        runner.infer(x[1:2])  # the same shape again: earlier results are the caller's, not overwritten
    for b, out in enumerate(outs, start=1):
        np.testing.assert_allclose(out, dynamic[:b], rtol=1e-4, atol=1e-4)
    with OpenVinoRunner(artifacts["fp32"], threads=1) as runner:  # a static copy OpenVINO cannot compile
        runner.core = FailingCore(runner.core)
        np.testing.assert_allclose(runner.infer(x[:3])["logits"], dynamic[:3], rtol=1e-4, atol=1e-4)
        assert runner.static == {(3, 3, *size): runner.dynamic} and runner.core.calls == 1
        runner.infer(x[:3])
        assert runner.core.calls == 1  # remembered, not compiled again


class FailingCore:
    """An OpenVINO Core whose compile_model fails, counting the calls."""

    def __init__(self, core):
        self.core, self.calls = core, 0

    def compile_model(self, *args, **kwargs):
        self.calls += 1
        raise RuntimeError("Exception from src/plugins/intel_cpu/src/graph.cpp: cannot compile")


def test_onnxruntime_throughput_hint_runs_parts_of_a_batch_on_single_threaded_streams(cli, demo, artifacts, tmp_path):
    """onnxruntime's CPU runner under the throughput hint: one single-threaded request per thread on a part of each
    batch, run together on threads of their own; the same outputs, in order, as the latency runner for even and uneven
    splits and a batch of one. A static batch runs whole. The hint reaches it from the CLI, which names the streams;
    a GPU provider refuses it."""
    import threading

    import numpy as np

    from swin_deploy.artifact import read_info
    from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner

    size = read_info(artifacts["int8_ort"]).img_size
    x = np.random.default_rng(0).standard_normal((5, 3, *size), dtype=np.float32)
    with OnnxRuntimeRunner(artifacts["int8_ort"], threads=2) as latency:
        expected = latency.infer(x)["logits"]
        assert latency.streams == 1
        # both threads on each request, spinning while a run lasts and not after it (benchmarks/ort_threading.py)
        options = latency.session.get_session_options()
        assert options.intra_op_num_threads == 2
        assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    with OnnxRuntimeRunner(artifacts["int8_ort"], threads=2, performance_hint="throughput") as runner:
        assert runner.streams == 2 and runner.describe()["performance_hint"] == "throughput"
        assert runner.session.get_session_options().intra_op_num_threads == 1
        calls, run = [], runner.session.run

        def spied(names, feed):
            calls.append((threading.current_thread().name, len(next(iter(feed.values())))))
            return run(names, feed)

        runner.session.run = spied
        for b in (1, 2, 3, 4, 5):
            np.testing.assert_allclose(runner.infer(x[:b])["logits"], expected[:b], rtol=1e-5, atol=1e-5)
        # a batch of one runs as it is; 2, 3, 4 and 5 in two parts each, on the streams' threads
        assert len(calls) == 9 and calls[0][1] == 1
        assert sorted(n for _, n in calls[1:]) == [1, 1, 1, 2, 2, 2, 2, 3]
        assert all(name.startswith("onnxruntime-stream") for name, _ in calls[1:])
    static = read_info(artifacts["static_batch"])
    x4 = np.random.default_rng(0).standard_normal((static.fixed_batch, 3, *static.img_size), dtype=np.float32)
    with OnnxRuntimeRunner(artifacts["static_batch"], threads=2) as latency:
        expected = latency.infer(x4)["logits"]
    with OnnxRuntimeRunner(artifacts["static_batch"], threads=2, performance_hint="throughput") as runner:
        assert runner.streams == 1
        np.testing.assert_allclose(runner.infer(x4)["logits"], expected, rtol=1e-5, atol=1e-5)
    out = tmp_path / "bench.json"
    r = cli("bench", artifacts["fp32"], "--threads", "2", "--performance-hint", "throughput", "--batch-sizes", "4",
            "--iterations", "2", "--json", out)
    assert r.code == 0, r.err
    bench = json.loads(out.read_text())
    assert bench["results"][0]["backend"] == "onnxruntime-cpu, 2 streams"
    assert [r["performance_hint"] for r in bench["runners"].values()] == ["throughput"]
    r = cli("verify", artifacts["int8_ort"], "--threads", "2", "--performance-hint", "throughput",
            "--data", demo[0] / "data" / "val", "--limit", "8")
    assert r.code == 0, r.out + r.err
    for command in (("bench", artifacts["fp32"], "--batch-sizes", "1", "--iterations", "2"),
                    ("verify", artifacts["fp32"], "--samples", "2")):
        r = cli(*command, "--backend", "onnxruntime-cuda", "--performance-hint", "throughput")
        assert r.code == 2 and "--performance-hint goes with --backend openvino or onnxruntime-cpu" in r.err, r.err


def test_bench_runs_each_hinted_runner_under_each_performance_hint(cli, artifacts, tmp_path):
    """`bench --performance-hint latency,throughput` times each runner that takes a hint (OpenVINO, onnxruntime's
    CPU) once per hint in one interleaved run, labelled by backend and hint; the PyTorch model, which takes none,
    once. The backend column names the streams each batch is split over; a gate against another artifact compares
    runs under the same hint. A repeated hint runs once; an unknown one, or hints no backend takes, exit 2."""
    from swin_deploy.backends.openvino_runner import OpenVinoOptions
    from swin_deploy.bench import BenchOptions, bench_artifacts
    from swin_deploy.errors import UserError

    out = tmp_path / "bench.json"
    r = cli("bench", artifacts["fp32"], "--backend", "onnxruntime-cpu,openvino", "--torch", "swin_digits",
            "--performance-hint", "latency,throughput,latency", "--threads", "2", "--batch-sizes", "1,4",
            "--iterations", "2", "--warmup", "0", "--json", out)
    assert r.code == 0, r.err
    bench = json.loads(out.read_text())
    name = artifacts["fp32"].name
    hints = {label: runner.get("performance_hint") for label, runner in bench["runners"].items()}
    assert hints == {f"{name} [onnxruntime-cpu, latency]": "latency", f"{name} [onnxruntime-cpu, throughput]": "throughput",
                     f"{name} [openvino, latency]": "latency", f"{name} [openvino, throughput]": "throughput",
                     "pytorch swin_digits": None}
    backends = {row["label"]: row["backend"] for row in bench["results"] if row["batch_size"] == 4}
    assert backends[f"{name} [onnxruntime-cpu, throughput]"] == "onnxruntime-cpu, 2 streams"
    assert backends[f"{name} [onnxruntime-cpu, latency]"] == "onnxruntime-cpu"
    # OpenVINO chooses its stream count (2 here, as the other test checks; fewer on a CPU where it makes one)
    ov_streams = bench["runners"][f"{name} [openvino, throughput]"]["requests_per_batch"]
    assert backends[f"{name} [openvino, throughput]"].endswith(f", {ov_streams} streams" if ov_streams > 1 else " f32")
    assert not backends[f"{name} [openvino, latency]"].endswith("streams")
    # a batch of one leaves a stream idle, and the backend column says so
    ones = {row["label"]: row["backend"] for row in bench["results"] if row["batch_size"] == 1}
    assert ones[f"{name} [onnxruntime-cpu, throughput]"] == "onnxruntime-cpu, 1 of 2 streams"
    assert ones[f"{name} [openvino, throughput]"].endswith(f", 1 of {ov_streams} streams" if ov_streams > 1 else " f32")
    assert ones[f"{name} [onnxruntime-cpu, latency]"] == "onnxruntime-cpu"
    # one backend: labelled by the hint alone
    r = cli("bench", artifacts["fp32"], "--performance-hint", "throughput,latency", "--batch-sizes", "2",
            "--iterations", "2", "--warmup", "0", "--json", "-")
    assert r.code == 0, r.err
    assert list(json.loads(r.out)["runners"]) == [f"{name} [throughput]", f"{name} [latency]"]
    # a speed gate against another artifact compares runs under the same hint
    other = artifacts["int8_ort"].name
    r = cli("bench", artifacts["int8_ort"], "--against", artifacts["fp32"], "--performance-hint", "latency,throughput",
            "--threads", "2", "--batch-sizes", "2", "--iterations", "10", "--warmup", "0", "--min-speedup", "0.01",
            "--json", "-")
    assert r.code == 0, r.err
    assert json.loads(r.out)["references"] == {f"{other} [latency]": f"{name} [latency]",
                                               f"{other} [throughput]": f"{name} [throughput]"}
    r = cli("bench", artifacts["fp32"], "--performance-hint", "latency,fast", "--batch-sizes", "1", "--iterations", "2")
    assert r.code == 2 and "unknown --performance-hint 'fast'" in r.err, r.err
    r = cli("bench", artifacts["fp32"], "--backend", "onnxruntime-cuda", "--performance-hint", "latency,throughput",
            "--batch-sizes", "1", "--iterations", "2")
    assert r.code == 2 and "--performance-hint goes with --backend openvino or onnxruntime-cpu" in r.err, r.err
    with pytest.raises(UserError, match="in `hints` alone"):
        bench_artifacts([artifacts["fp32"]], BenchOptions(hints=("latency", "throughput"), iterations=2,
                                                          openvino=OpenVinoOptions(performance_hint="latency")))


def test_throughput_hint_splits_each_batch_over_the_streams(artifacts):
    """Under the throughput hint each stream runs a part of the batch (one synchronous request would use one stream):
    same outputs, in order, as the latency runner, for even and uneven splits and a batch of one."""
    import numpy as np

    from swin_deploy.artifact import read_info
    from swin_deploy.backends.openvino_runner import OpenVinoOptions, OpenVinoRunner
    from swin_deploy.bench import BenchEntry

    size = read_info(artifacts["fp32"]).img_size
    x = np.random.default_rng(0).standard_normal((5, 3, *size), dtype=np.float32)
    with OpenVinoRunner(artifacts["fp32"]) as latency:
        expected = latency.infer(x)["logits"]
        assert latency.parallel == 1
    with OpenVinoRunner(artifacts["fp32"], options=OpenVinoOptions(performance_hint="throughput")) as runner:
        if runner.streams < 2:
            pytest.skip("OpenVINO made one stream on this CPU: nothing to split")
        assert runner.parallel >= 2
        for b in (1, 2, 3, 4, 5):
            np.testing.assert_allclose(runner.infer(x[:b])["logits"], expected[:b], rtol=1e-4, atol=1e-4)
        entry = BenchEntry("m", runner, lambda rng, b: x[:b])
        assert entry.backend_at(8).endswith(f", {runner.parallel} streams")
        assert entry.backend_at(1).endswith(f", 1 of {runner.parallel} streams")
    # a static-batch artifact takes its batch whole: nothing to split, and it still runs
    static = read_info(artifacts["static_batch"])
    x4 = np.random.default_rng(0).standard_normal((static.fixed_batch, 3, *static.img_size), dtype=np.float32)
    with OpenVinoRunner(artifacts["static_batch"]) as latency:
        expected = latency.infer(x4)["logits"]
    with OpenVinoRunner(artifacts["static_batch"], options=OpenVinoOptions(performance_hint="throughput")) as runner:
        assert runner.parallel == 1
        np.testing.assert_allclose(runner.infer(x4)["logits"], expected, rtol=1e-4, atol=1e-4)
