"""The command line as wiring: library errors name parameters, the CLI spells them as flags; piped tables stay whole."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from conftest import export_small

from swin_deploy.errors import UserError


def test_library_error_names_the_parameter_and_the_cli_spells_the_flag(cli, tiny_onnx, tmp_path):
    from calibration import QuantizeOptions

    with pytest.raises(UserError) as e:
        QuantizeOptions("int8", calib_images=0)
    assert "`calib_images`" in str(e.value) and "--" not in str(e.value)
    r = cli("quantize", tiny_onnx["swin_test"], "--precision", "int8", "--calib-images", "0", "-o", tmp_path / "q.onnx")
    assert r.code == 2 and "--calib-images must be at least 1, not 0" in r.err and "`" not in r.err
    r = cli("quantize", tiny_onnx["swin_test"], "--precision", "int8", "--calib-batch", "0", "-o", tmp_path / "q.onnx")
    assert r.code == 2 and "--calib-batch must be at least 1, not 0" in r.err  # the one that is wrong, alone


def test_piped_tables_keep_artifact_names_on_one_line(cli, tiny_onnx, tmp_path):
    long_name = tmp_path / "a_rather_long_artifact_name_for_the_ci_log_swin_test.fp32.onnx"
    shutil.copy(tiny_onnx["swin_test"], long_name)
    r = cli("bench", long_name, "--batch-sizes", "1", "--iterations", "1", "--warmup", "0")
    assert r.code == 0, r.err
    assert any(long_name.name in line for line in r.out.splitlines())
    r = cli("verify", long_name, "--random-init", "--samples", "2", "--batch-sizes", "1")
    assert r.code == 0, r.err
    assert any(f"verify {long_name.name}" in line for line in r.out.splitlines())


def test_brackets_in_paths_and_names_are_shown_as_written_not_read_as_styles(cli, tiny_onnx, demo, tmp_path):
    """Run folders are often named by their settings ("exp[lr=0.1]"); rich reads brackets as markup: "[bold]" vanished
    from a predict title and a folder named "x[/b]" was an internal error (exit 3) after export had done its work."""
    folder, _ = demo
    run = tmp_path / "x[" / "b]"  # shown as .../x[/b]/...
    run.mkdir(parents=True)
    model = run / "m[bold].onnx"
    r = cli("export", "--variant", "swin_test", "--random-init", "-o", model)
    assert r.code == 0 and "x[/b]/m[bold].onnx" in r.out, r.out + r.err
    image = run / "cat[red].png"
    shutil.copy(next((folder / "data" / "val" / "1").iterdir()), image)
    shown = {"predict": (("predict", model, image), image.name),
             "verify": (("verify", model, "--random-init", "--samples", "2", "--batch-sizes", "1"),
                        f"PASS {model.name}"),
             "bench": (("bench", model, "--backend", "onnxruntime-cpu,openvino", "--batch-sizes", "1",
                        "--iterations", "1", "--warmup", "0"), f"{model.name} [openvino]"),
             "inspect": (("inspect", model), model.name),
             "check": (("check", model), f"PASS {model.name}")}
    for command, (args, text) in shown.items():
        r = cli(*args)
        assert r.code == 0 and text in r.out, (command, r.out, r.err)
    r = cli("predict", tmp_path / "[/i]" / "m.onnx", image)  # and in an error's one line
    assert r.code == 2 and "[/i]" in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_output_paths_are_refused_before_any_work_naming_their_option(cli, tiny_onnx, tmp_path, monkeypatch):
    import swin_deploy.bench
    import swin_deploy.predict
    import swin_deploy.verify.run

    def must_not_run(*args, **kwargs):
        raise AssertionError("the work ran before its output path was checked")

    for module, name in ((swin_deploy.bench, "bench_artifacts"), (swin_deploy.verify.run, "verify_artifact"),
                         (swin_deploy.predict, "predict")):
        monkeypatch.setattr(module, name, must_not_run)
    model, missing = tiny_onnx["swin_test"], tmp_path / "no-such-folder" / "out"
    for command, option in ((("bench", model), "--json"), (("bench", model), "--junit"), (("bench", model), "--plot"),
                            (("verify", model, "--random-init"), "--report"), (("verify", model, "--random-init"), "--junit"),
                            (("predict", model, tmp_path), "--json")):
        r = cli(*command, option, missing)
        assert r.code == 2 and f"choose another {option} path" in r.err, (command, option, r.err)
    # a file where a folder of the path belongs: no folder can be created there (it read "does not exist: create it")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args in (("export", "--variant", "swin_test", "--random-init", "-o", blocker / "sub" / "m.onnx"),
                 ("verify", model, "--random-init", "--report", blocker / "r.json"),
                 ("triton", model, "--repo", blocker / "models"), ("demo-data", blocker / "sub" / "digits")):
        r = cli(*args)
        assert r.code == 2 and f"{blocker} is a file, not a folder: choose another" in r.err, (args, r.err)
    r = cli("bench", model, "--plot", tmp_path)
    assert r.code == 2 and "is a folder: --plot takes a file path" in r.err
    r = cli("bench", model, "--plot", tmp_path / "b.txt")  # a PNG was written there, after the whole run
    assert r.code == 2 and "--plot writes png, svg, pdf files by their suffix, not 'b.txt'" in r.err
    # two outputs naming one file: the second would replace the first (a JSON report overwritten by the JUnit XML)
    for command, first, second, same in ((("verify", model, "--random-init"), "--report", "--junit", "r.json"),
                                         (("bench", model), "--json", "--plot", "b.json"),
                                         (("bench", model), "--json", "--junit", "-")):
        r = cli(*command, first, tmp_path / same if same != "-" else same, second,
                f"{tmp_path}/./{same}" if same != "-" else same)
        assert r.code == 2 and f"{first} and {second} both write" in r.err, (command, r.err)
        assert len(r.err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.json"))


def test_a_place_that_refuses_new_files_is_a_usage_error_not_a_crash(cli, tiny_onnx, tmp_path):
    """/proc refuses new files even to root, for whom os.access says yes everywhere: the failed create decides."""
    for args in (("quantize", tiny_onnx["swin_test"], "--precision", "fp16", "-o", "/proc/m.onnx"),
                 ("demo-data", "/proc/digits"), ("variants", "--json", "/proc/v.json")):
        r = cli(*args)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "/proc" in r.err, (args, r.err)


def test_an_output_naming_the_commands_input_is_refused_and_the_input_kept(cli, demo, tiny_onnx, tmp_path):
    from swin_deploy.fileio import sha256_file

    folder, _ = demo
    model = tmp_path / "model.onnx"
    shutil.copy(tiny_onnx["swin_test"], model)
    before = sha256_file(model)
    for args, option in ((("quantize", model, "--precision", "fp16", "-o", model), "--output"),
                         (("quantize", model, "--precision", "int8", "--calib-data", folder / "data" / "calib",
                           "-o", tmp_path / "." / "model.onnx"), "--output"),
                         (("verify", model, "--random-init", "--report", model), "--report"),
                         (("bench", model, "--json", model), "--json"),
                         (("predict", model, folder / "data" / "val" / "1", "--json", model), "--json"),
                         (("inspect", model, "--json", model), "--json")):
        r = cli(*args)
        assert r.code == 2 and f"writing {option} there would replace it" in r.err, (args, r.err)
    assert sha256_file(model) == before
    photo = tmp_path / "photo.png"  # predict's images are its input too
    shutil.copy(next((folder / "data" / "val" / "1").iterdir()), photo)
    before = sha256_file(photo)
    r = cli("predict", model, photo, "--json", photo)
    assert r.code == 2 and "writing --json there would replace it" in r.err and sha256_file(photo) == before, r.err
    r = cli("predict", model, tmp_path, "--json", photo)  # one of the images found in a folder: it was replaced
    assert r.code == 2 and "writing --json there would replace it" in r.err and sha256_file(photo) == before, r.err
    assert cli("predict", model, tmp_path, "--json", tmp_path / "top5.json").code == 0  # beside them is fine


def test_an_output_named_as_another_kind_of_artifact_is_refused_or_decides_the_format(cli, tiny_onnx, tmp_path):
    """Artifacts are told apart by suffix when read back (.xml an OpenVINO IR, .engine/.plan a TensorRT engine, else
    an ONNX): an output whose name says another kind is refused before any work, naming the name that fits, and
    export's format follows an .xml output when --format is not given."""
    from swin_deploy.artifact import artifact_info

    model = tiny_onnx["swin_test"]
    for args, want in (
        (("export", "--variant", "swin_test", "--random-init", "--format", "onnx", "-o", tmp_path / "a.xml"), "a.onnx"),
        (("export", "--variant", "swin_test", "--random-init", "--format", "openvino", "-o", tmp_path / "b.onnx"),
         "b.xml"),
        (("export", "--variant", "swin_test", "--random-init", "-o", tmp_path / "c.engine"), "c.onnx"),
        (("quantize", model, "--precision", "fp16", "-o", tmp_path / "d.plan"), "d.onnx"),
        (("quantize", model, "--precision", "fp16", "-o", tmp_path / "e.xml"), "e.onnx"),
        (("build-engine", model, "-o", tmp_path / "f.trt"), "f.engine"),
        # suffixes in any case: q.ENGINE was written as an ONNX and read back as one, model.XML likewise
        (("quantize", model, "--precision", "fp16", "-o", tmp_path / "q.ENGINE"), "q.onnx"),
        (("quantize", model, "--precision", "fp16", "-o", tmp_path / "r.XML"), "r.onnx"),
    ):
        r = cli(*args)
        assert r.code == 2 and f"name {'a TensorRT engine' if want.endswith('.engine') else 'an'}" in r.err \
            and f" {want} (--output)" in r.err, (args, r.err)
    assert list(tmp_path.iterdir()) == []
    ir = tmp_path / "g.xml"
    assert cli("export", "--variant", "swin_test", "--random-init", "-o", ir).code == 0
    assert (tmp_path / "g.bin").is_file() and artifact_info(ir).variant == "swin_test"
    upper = tmp_path / "H.XML"  # OpenVINO writes only a lowercase .xml, and reads either
    assert cli("export", "--variant", "swin_test", "--random-init", "-o", upper).code == 0
    assert (tmp_path / "H.bin").is_file() and artifact_info(upper).variant == "swin_test"
    assert upper.read_bytes().startswith(b"<?xml")
    r = cli("verify", upper, "--random-init", "--samples", "2", "--batch-sizes", "2", "--report", "-")
    assert r.code == 0 and json.loads(r.out)["candidate"]["backend"] == "openvino", r.err


def test_in_a_log_progress_is_a_plain_line_now_and_then_and_an_error_is_its_only_line(cli, tiny_onnx, tmp_path,
                                                                                    monkeypatch):
    """Where stderr is no terminal (a CI log) rich draws no live progress: a run shows it is alive with a plain line
    at most every defaults.LOG_PROGRESS_EVERY_S (a CI step without output for 10 minutes may be stopped), and leaves
    no empty line before an error."""
    from swin_deploy import defaults

    (tmp_path / "empty").mkdir()
    r = cli("verify", tiny_onnx["swin_test"], "--random-init", "--data", tmp_path / "empty")
    assert r.code == 2 and r.err.startswith("error: no images") and r.err.count("\n") == 1, repr(r.err)
    r = cli("verify", tiny_onnx["swin_test"], "--random-init", "--batch-sizes", "1")
    assert r.code == 0 and r.err == "", repr(r.err)  # a short run: no line
    monkeypatch.setattr(defaults, "LOG_PROGRESS_EVERY_S", 0.0)
    r = cli("verify", tiny_onnx["swin_test"], "--random-init", "--batch-sizes", "1")
    lines = r.err.splitlines()
    assert r.code == 0 and lines and all(re.fullmatch(r"64x64, batch 1: \d+/32 \(0:00:\d\d\)", x) for x in lines), lines
    assert [int(x.split("/")[0].rsplit(" ", 1)[1]) for x in lines] == sorted({int(x.split("/")[0].rsplit(" ", 1)[1])
                                                                             for x in lines})  # counts go up
    r = cli("bench", tiny_onnx["swin_test"], "--batch-sizes", "1", "--iterations", "3")  # a spinner: no count
    assert r.code == 0 and re.search(r"^batch 1: \d+ rounds \(0:00:\d\d\)$", r.err, flags=re.M), r.err
    assert not [x for x in r.err.splitlines() if x.startswith("batch ") and "/" in x], r.err


def test_each_step_of_a_conversion_counts_its_own_work(monkeypatch, capsys):
    """quantize's progress moves from images calibrated to blocks quantized: the second count starts from zero (it
    read 65/10, and a step past its total is no longer logged)."""
    from swin_deploy import defaults, render

    monkeypatch.setattr(defaults, "LOG_PROGRESS_EVERY_S", 0.0)
    with render.image_progress("int8") as on_progress:
        on_progress("calibrating", 32, 64)
        on_progress("calibrating", 32, 64)
        on_progress("quantizing one block at a time", 1, 10)
    lines = [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()]
    assert lines[-1] == "int8: quantizing one block at a time: 1/10", lines
    counts = [line.rsplit(": ", 1)[1].split("/") for line in lines]
    assert all(int(done) <= int(total) for done, total in counts), lines


def test_version_is_one_line_a_ci_log_can_record(cli):
    from swin_deploy import __version__

    r = cli("--version")
    assert (r.code, r.out) == (0, f"swin-deploy {__version__}\n"), r


def test_help_shows_a_type_for_options_that_take_a_value_and_none_for_flags(cli, monkeypatch):
    """`--static-batch <bool>` reads as if it took true/false (a usage error): flags show no type, in every command's
    help and the top level's, while valued options keep theirs."""
    import re

    monkeypatch.setenv("COLUMNS", "200")
    for args in ((), ("export",), ("verify",), ("triton",), ("quantize",)):
        r = cli(*args, "--help")
        assert r.code == 0, r.err
        assert "<bool>" not in r.out and re.search(r"--help +Show this message", r.out), r.out
    r = cli("export", "--help")
    assert re.search(r"--static-batch +Fixed batch", r.out) and re.search(r"--max-batch +<int>", r.out), r.out


@pytest.mark.parametrize("args, said", [
    (("verify",), "Missing argument 'artifact'. (see swin-deploy verify --help)"),
    (("verify", "m.onnx", "--bogus"), "No such option: --bogus (see swin-deploy verify --help)"),
    (("verify", "m.onnx", "--threads", "two"), "Invalid value for '--threads'"),
    (("bench", "m.onnx", "--batch-sizes"), "Option '--batch-sizes' requires an argument."),
    (("verfy", "m.onnx"), "No such command 'verfy'. Did you mean 'verify'? (see swin-deploy --help)"),
])
def test_a_command_line_click_cannot_parse_is_one_line_too(cli, args, said):
    """A missing argument, an unknown option or command, a value of the wrong type: exit 2 with one line saying
    what is wrong and where the help is, like every other usage error (not typer's multi-line panel)."""
    r = cli(*args)
    assert r.code == 2 and r.err.startswith("error: ") and said in r.err and r.err.count("\n") == 1, r.err
    r = cli()
    assert r.code == 2 and "Usage: swin-deploy" in r.out  # no command at all: the help


@pytest.mark.parametrize("args, said", [
    (("quantize", "m.onnx", "--calib-data", "a/", "--calib-data", "b/"), "--calib-data given twice: give it once"),
    (("bench", "m.onnx", "--batch-sizes", "1", "--batch-sizes=8"), "--batch-sizes given twice: give it once"),
    (("export", "-o", "a.onnx", "--output", "b.onnx"), "-o and --output are the same option: give it once"),
    (("export", "-oa.onnx", "-ob.onnx"), "--output given twice"),
    (("triton", "m.onnx", "--dynamic-batching", "--no-dynamic-batching"),
     "--dynamic-batching and --no-dynamic-batching say opposite things: give one of them"),
])
def test_an_option_given_twice_is_refused_not_the_last_kept(cli, tmp_path, monkeypatch, args, said):
    """click keeps an option's last value silently: `quantize --calib-data a --calib-data b` calibrated on b alone
    and said nothing. Exit 2 in one line, before anything is read or written."""
    monkeypatch.chdir(tmp_path)
    r = cli(*args)
    assert r.code == 2 and r.err.startswith("error: ") and said in r.err and r.err.count("\n") == 1, r.err
    assert not any(tmp_path.iterdir())


def test_verify_options_are_refused_where_they_would_be_ignored_or_mean_nothing(cli, tiny_onnx, demo):
    """--limit and --strict act on --data's images: without --data they were ignored (32 synthetic inputs ran); a
    PyTorch reference's weights beside --reference were ignored too, even a checkpoint that does not exist;
    --workers 0 was refused only once images were decoded, so verify without --data and an FP16 quantize took it;
    --consistency-samples was ignored where there is no consistency run (one batch size, a static size)."""
    folder, _ = demo
    model = tiny_onnx["swin_test"]
    for args, said in ((("verify", model, "--random-init", "--limit", "5"), "--limit caps the images of --data"),
                       (("verify", model, "--random-init", "--strict"), "--strict makes an unreadable image of --data"),
                       (("verify", model, "--reference", model, "--checkpoint", "nowhere.pth"),
                        "--checkpoint chooses a PyTorch reference, and --reference swin_test.onnx is the one gated"),
                       (("verify", model, "--reference", model, "--random-init"), "drop it or --reference"),
                       (("verify", model, "--reference", tiny_onnx["swinv2_test"], "--reference-device", "cpu"),
                        "--reference-device chooses a PyTorch reference, and --reference swinv2_test.onnx is the one"),
                       (("verify", model, "--random-init", "--data", folder / "data" / "val", "--samples", "4"),
                        "--samples sets how many synthetic inputs run without --data: with images, --limit caps"),
                       (("verify", model, "--random-init", "--data", folder / "data" / "val", "--limit", "0"),
                        "--limit must be at least 1, not 0"),
                       (("verify", model, "--random-init", "--workers", "0"), "--workers must be at least 1, not 0"),
                       (("verify", model, "--random-init", "--batch-sizes", "4", "--consistency-samples", "8"),
                        "--consistency-samples sets the inputs of the consistency runs at the batch sizes after the "
                        "first (and a dynamic-size range's ends): pass more than one in --batch-sizes"),
                       (("quantize", model, "--precision", "fp16", "--workers", "0"), "--workers must be at least 1")):
        r = cli(*args)
        assert r.code == 2 and said in r.err and r.err.count("\n") == 1, (args, r.err)


def test_a_variant_or_weights_the_artifact_does_not_take_are_refused_not_ignored(cli, tiny_onnx, demo):
    """`--variant` names the model of an ONNX or IR without metadata: beside swin-deploy's metadata it may repeat it,
    never silently lose to it (verify, bench, predict, quantize, triton, convert all ran swin_test as asked for
    swin_t). bench's weights options are its PyTorch model's: without --torch they were ignored."""
    folder, _ = demo
    model = tiny_onnx["swin_test"]
    wrong = "swin_test.onnx is swin_test by its swin-deploy metadata, not swin_t: --variant names the model of an ONNX"
    for args in (("verify", model, "--random-init"), ("bench", model, "--iterations", "2"),
                 ("predict", model, folder / "data" / "val" / "3"), ("quantize", model, "--precision", "fp16"),
                 ("triton", model, "--repo", folder / "repo"), ("convert", model)):
        r = cli(*args, "--variant", "swin_t")
        assert r.code == 2 and wrong in r.err and r.err.count("\n") == 1, (args, r.err)
    # repeating the metadata is no mistake
    assert cli("verify", model, "--random-init", "--variant", "swin_test", "--samples", "2", "--batch-sizes", "1").code == 0
    for weights in (("--random-init",), ("--checkpoint", "nowhere.pth")):
        r = cli("bench", model, *weights, "--iterations", "2")
        assert r.code == 2 and "are the PyTorch model's: add --torch VARIANT" in r.err, (weights, r.err)
    assert not (folder / "repo").exists()


def test_predict_batch_size_below_1_is_refused(cli, tiny_onnx, demo):
    folder, _ = demo
    r = cli("predict", tiny_onnx["swin_test"], folder / "data" / "val" / "1", "--batch-size", "0")
    assert r.code == 2 and "--batch-size must be at least 1, not 0" in r.err and len(r.err.strip().splitlines()) == 1


def test_sigterm_unwinds_and_leaves_no_partial_output(tmp_path):
    """CI cancellations and `timeout` send SIGTERM: the run ends with 143 (as a shell reports it) and the atomic
    writer removes its partial file, as on Ctrl-C. Without the handler the process dies where it stands, leaving a
    hidden temp file the size of the model beside the output."""
    import subprocess
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal, sys, time
        import cli
        from swin_deploy.export import onnx_export

        def killed_midway(model, example, path, *args, **kwargs):
            path.write_bytes(b"half an ONNX")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)  # the handler interrupts this
            raise AssertionError("SIGTERM did not end the run")

        onnx_export._torch_export = killed_midway
        sys.argv = ["swin-deploy", "export", "--variant", "swin_test", "--random-init", "-o", {str(tmp_path / "m.onnx")!r}]
        cli.main()
    """)
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 143, r.stderr
    assert "AssertionError" not in r.stderr and list(tmp_path.iterdir()) == []


def test_a_full_disk_is_a_usage_error_naming_the_output_and_leaves_nothing(cli, tiny_onnx, tmp_path, monkeypatch):
    """No space left is the user's to fix (exit 2, one line), not a crash (exit 3); export used to take the failed write
    for a failed exporter, retry with torch.export and report its opset instead."""
    import errno

    import openvino
    import torch

    import swin_deploy.demo

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def openvino_disk_full(*args, **kwargs):
        raise RuntimeError("basic_ios::clear: iostream error")  # what OpenVINO 2026.4 raises on a full disk

    monkeypatch.setattr(torch.onnx, "export", disk_full)
    monkeypatch.setattr(openvino, "save_model", openvino_disk_full)
    cases = ((("export", "--variant", "swin_test", "--random-init", "-o", tmp_path / "m.onnx"), "no space left"),
             (("convert", tiny_onnx["swin_test"], "-o", tmp_path / "m.xml"), "OpenVINO could not write the IR"))
    for args, said in cases:
        r = cli(*args)
        assert r.code == 2 and said in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
    assert list(tmp_path.iterdir()) == []
    from PIL import Image

    saved = []

    def fills_up(self, path, *args, **kwargs):
        if len(saved) == 100:
            disk_full()
        saved.append(path)

    monkeypatch.setattr(Image.Image, "save", fills_up)
    r = cli("demo-data", tmp_path / "data")  # each split is written whole or not at all
    assert r.code == 2 and f"writing {tmp_path / 'data' / 'calib'}" in r.err and len(saved) == 100
    assert list((tmp_path / "data").iterdir()) == []
    monkeypatch.setattr(swin_deploy.demo, "write_digits", disk_full)  # met outside an output's own writer
    r = cli("demo-data", tmp_path / "data")
    assert r.code == 2 and "no space left on the device" in r.err and "internal error" not in r.err


def test_json_to_stdout_is_the_json_alone_and_a_reader_that_stops_early_changes_no_exit_code(cli, demo, tmp_path,
                                                                                             monkeypatch):
    """`-` means stdout for every JSON output: verify's --report wrote a file named '-'. A reader that stops early
    (`| head`) left exit 1, which here means a failed gate."""
    import json
    import subprocess

    folder, paths = demo
    monkeypatch.chdir(tmp_path)
    r = cli("verify", paths["swin_digits"], "--data", folder / "data" / "val", "--limit", "16", "--batch-sizes", "8",
            "--report", "-")
    assert r.code == 0 and json.loads(r.out)["passed"] is True and list(tmp_path.iterdir()) == [], r.err
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", "import cli; cli.main()", "predict", str(paths["swin_digits"]),
               str(folder / "data" / "val"), "--json", "-"]  # 359 images: more JSON than a pipe holds
    p = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert p.stdout.read(10).startswith(b"{")
    p.stdout.close()
    err = p.communicate(timeout=120)[1].decode()
    assert p.returncode == 0 and "Error" not in err, err


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_any_run(cli, demo, tiny_onnx, tmp_path):
    """A mistyped batch size (100000000 for 100) ran until the kernel killed the process, without a message."""
    folder, _ = demo
    model = tiny_onnx["swin_test"]
    for args, option in ((("verify", model, "--random-init", "--samples", "2", "--batch-sizes", "100000000"),
                          "--batch-sizes"),
                         (("bench", model, "--batch-sizes", "1,100000000"), "--batch-sizes"),
                         (("predict", model, folder / "data" / "val" / "1", "--batch-size", "100000000"),
                          "--batch-size")):
        r = cli(*args)
        assert r.code == 2 and f"GiB available: choose smaller {option}" in r.err.replace("a smaller", "smaller"), \
            (args, r.err)
    # export runs its parity check at batch 3: 22400 for 224 was let through (one image's activation fit) and killed
    for args, message in ((("--img-size", "20000"), "a batch of 3 20000x20000 images needs more than"),
                          (("--dynamic-size", "--max-size", "20000"), "one 20000x20000 image needs more than")):
        out = tmp_path / "big.onnx"
        r = cli("export", "--variant", "swin_test", "--random-init", *args, "-o", out)
        assert r.code == 2 and message in r.err and "choose a smaller --img-size" in r.err and not out.exists(), r.err


def test_predict_runs_fewer_images_than_its_batch_as_a_batch_of_their_own(demo, monkeypatch, tmp_path):
    """One photo ran as a batch of 8 (seven copies of it): eight times the work for its answer."""
    import swin_deploy.predict as predict_module

    folder, paths = demo
    batches = []
    run_padded = predict_module.run_padded
    monkeypatch.setattr(predict_module, "run_padded", lambda r, x, b: batches.append(b) or run_padded(r, x, b))
    one = sorted((folder / "data" / "val" / "4").iterdir())[:1]
    result = predict_module.predict(paths["swin_digits"], one)
    assert batches == [1] and result.predictions[0].top[0]["label"] == "4"
    batches.clear()
    assert len(predict_module.predict(paths["swin_digits"], one, batch_size=8).predictions) == 1 and batches == [8]
    batches.clear()
    predict_module.predict(paths["swin_digits"], [folder / "data" / "val" / "4"])
    assert batches and set(batches) == {8}
    # one path alone, as a str: it was taken apart into one-letter paths ("/ does not exist", or worse, found)
    alone = predict_module.predict(str(paths["swin_digits"]), str(one[0]))
    assert [p.image for p in alone.predictions] == [str(one[0])]
    batches.clear()  # an artifact with a max batch below the default is run at its max, not refused
    capped = export_small(tmp_path, "swin_digits", max_batch=4)
    assert len(predict_module.predict(capped, [folder / "data" / "val" / "4"]).predictions) > 4 and set(batches) == {4}


@pytest.mark.parametrize("kind", ["fp32", "int8", "int8_ort", "dynamic", "features", "static_batch", "uint8"])
def test_inspect_describes_what_onnxruntime_finds_in_the_artifact(cli, artifacts, tmp_path, kind):
    """inspect reads metadata only: its input and output shapes must be the ones the graph really has (onnxruntime's
    view of it), its hashes the ones verify reports and quantize records."""
    import onnxruntime as ort

    from swin_deploy.artifact import artifact_sha256

    out = tmp_path / "i.json"
    r = cli("inspect", artifacts[kind], "--json", out)
    assert r.code == 0 and "sha256" in r.out, r.err
    doc = json.loads(out.read_text())
    session = ort.InferenceSession(str(artifacts[kind]), providers=["CPUExecutionProvider"])

    def dims(text: str) -> list[str]:
        return text[1:text.index(")")].split(", ")

    def agrees(described: list[str], real: list) -> bool:  # numbers equal, symbols (B, H, W, H/W) symbolic
        return len(described) == len(real) and all(
            str(r) == d if d.isdigit() else not isinstance(r, int) for d, r in zip(described, real))

    assert agrees(dims(doc["input"]), session.get_inputs()[0].shape), (doc["input"], session.get_inputs()[0].shape)
    assert list(doc["outputs"]) == [o.name for o in session.get_outputs()]
    for o in session.get_outputs():
        assert agrees(dims(doc["outputs"][o.name]), o.shape), (doc["outputs"], o.shape)
    assert doc["kind"] == "ONNX" and doc["sha256"] == artifact_sha256(artifacts[kind])
    assert doc["metadata"].startswith("swin-deploy ")
    expected = {
        "fp32": {"model": "swin_digits", "precision": "fp32", "batch": "1 to 32", "classes": "10: 0, 1, 2, 3, 4, ..."},
        "int8": {"precision": "int8", "int8_target": "tensorrt", "calibration": "minmax",
                 "source_sha256": artifact_sha256(artifacts["fp32"]),
                 "runs_on": ["onnxruntime", "openvino", "tensorrt (build-engine)"]},
        "int8_ort": {"int8_target": "onnxruntime", "runs_on": ["onnxruntime", "openvino"]},  # TensorRT refuses it
        "dynamic": {"input_sizes": "64x64 to 128x128, multiples of 16 (default 64x64)", "batch": "any (dynamic)",
                    "classes": "10 (no names recorded: predict and Triton show indices)"},
        "features": {"model": "swinv2_test"},
        "static_batch": {"batch": "4 only (static)"},
        "uint8": {"input": "(B, 64, 64, 3) NHWC, uint8 pixels (normalisation in the graph)"},
    }[kind]
    assert {k: doc.get(k) for k in expected} == expected
    assert ("classes" in doc) == (kind != "features")


def test_inspect_names_the_classes_predict_and_triton_show(artifacts):
    """An ImageNet head has no names in its metadata: predict and Triton name its classes from timm's ImageNet-1k
    table, and inspect says so rather than "1000" alone (its descriptions hold commas, so classes are split by ';')."""
    from dataclasses import replace

    from swin_deploy.artifact import artifact_info
    from swin_deploy.describe import classes_of
    from swin_deploy.predict import class_names

    imagenet = replace(artifact_info(artifacts["fp32"]), num_classes=1000, labels=None)
    names, source = class_names(imagenet)
    assert source == "timm imagenet-1k" and names[:2] == ["tench, Tinca tinca", "goldfish, Carassius auratus"]
    assert classes_of(imagenet) == ("1000: tench, Tinca tinca; goldfish, Carassius auratus; great white shark, white "
                                    "shark, man-eater, man-eating shark, Carcharodon carcharias; tiger shark, "
                                    "Galeocerdo cuvieri; hammerhead, hammerhead shark; ... (names from timm "
                                    "imagenet-1k)")


def test_inspect_describes_irs_and_foreign_graphs_and_refuses_what_is_not_there(cli, artifacts, tmp_path):
    import onnx

    xml = tmp_path / "m.xml"
    assert cli("convert", artifacts["int8"], "-o", xml).code == 0
    r = cli("inspect", xml, "--json", "-")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["kind"] == "OpenVINO IR" and doc["files"] == ["m.xml", "m.bin"] and "opset" not in doc
    assert doc["precision"] == "int8" and doc["bytes"] == xml.stat().st_size + xml.with_suffix(".bin").stat().st_size
    assert doc["runs_on"] == ["openvino"]
    # another tool's ONNX: what its graph says, and with --variant the registry's view, never claimed as ours
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(artifacts["fp16"]))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    doc = json.loads(cli("inspect", foreign, "--json", "-").out)
    assert doc["metadata"].startswith("none: pass `variant` NAME") and doc["precision"] == "fp16"
    assert doc["inputs"] == {"input": "(batch, 3, 32, 32)"} and doc["outputs"] == {"logits": "(batch, 10)"}
    assert "none: pass --variant NAME to run it" in cli("inspect", foreign).out  # as the command line spells it
    doc = json.loads(cli("inspect", foreign, "--variant", "swin_digits", "--json", "-").out)
    assert doc["metadata"].startswith("none: described as swin_digits") and doc["weights_sha256"] is None
    (tmp_path / "folder.onnx").mkdir()
    for args, said in (((tmp_path / "missing.onnx",), "does not exist"),
                       ((tmp_path / "folder.onnx",), "folder.onnx is a folder, not a file: pass the path of an ONNX"),
                       ((foreign, "--variant", "swin_t"), "takes ?x3x32x32 inputs where swin_t"),
                       ((artifacts["fp32"], "--variant", "swin_t"), "is swin_digits by its swin-deploy metadata")):
        r = cli("inspect", *args)
        assert r.code == 2 and said in r.err and r.err.count("\n") == 1, r.err
    xml.with_suffix(".bin").unlink()
    r = cli("inspect", xml)
    assert r.code == 2 and "has no weights file m.bin beside it" in r.err


@pytest.mark.parametrize("max_batch, gated", [(4, [4, 1, 3]), (3, [3, 1]), (1, [1])])
def test_default_batch_sizes_give_way_to_the_artifacts_max_batch(cli, tmp_path, max_batch, gated):
    """An export with `--max-batch 4` failed verify's own default batch sizes (then 1, 3, 8) with exit 2, and bench
    timed it at batch 1 alone. The max batch takes the place of the sizes past it: verify's first (8, every input)
    runs at 4."""
    model = export_small(tmp_path, "swin_test", max_batch=max_batch)
    r = cli("verify", model, "--random-init", "--samples", "8", "--report", "-")
    assert r.code == 0, r.err
    assert [b["batch_size"] for b in json.loads(r.out)["batches"]] == gated
    if max_batch == 4:  # bench's defaults (1, 8, 32) ran at batch 1 alone
        r = cli("bench", model, "--iterations", "2", "--json", "-")
        assert r.code == 0 and [x["batch_size"] for x in json.loads(r.out)["results"]] == [1, 4], r.err


def test_a_number_out_of_range_is_named_alone_with_its_value(cli, tiny_onnx, tmp_path):
    """Each was one message for three options ("--version and --instances must be at least 1, --max-queue-delay-us
    not negative"), and triton's --max-batch 0 on an ONNX with no max batch read "outside 1..0: pass at most 0"."""
    model = tiny_onnx["swin_test"]
    repo = tmp_path / "repo"
    repo.mkdir()
    for args, said in ((("bench", model, "--iterations", "0"), "--iterations must be at least 1, not 0"),
                       (("bench", model, "--warmup", "-1"), "--warmup must be at least 0, not -1"),
                       (("bench", model, "--seconds", "0"), "--seconds must be a positive number of seconds, not 0"),
                       # nan timed nothing (an internal error after the load) and inf never ended
                       (("bench", model, "--seconds", "nan"), "--seconds must be a positive number of seconds, not nan"),
                       (("bench", model, "--seconds", "inf"), "--seconds must be a positive number of seconds, not inf"),
                       (("bench", model, "--max-rss", "infg"), "--max-rss takes a size like 4GiB or 512MiB, not 'infg'"),
                       (("bench", model, "--baseline", model, "--max-slowdown", "inf"),
                        "--max-slowdown takes a fraction like 10% or 0.1, not 'inf'"),
                       # a mean or std of nan or inf was recorded as the artifact's preprocessing
                       *((("export", "--variant", "swin_test", "--random-init", option, value, "-o",
                           tmp_path / "m.onnx"), f"{option} takes comma-separated numbers, e.g. 0.5,0.5,0.5; "
                          f"not '{value}'") for option, value in (("--mean", "nan"), ("--std", "0.5,inf,0.5"))),
                       (("triton", model, "--repo", repo, "--instances", "0"), "--instances must be at least 1, not 0"),
                       (("triton", model, "--repo", repo, "--max-queue-delay-us", "-5"),
                        "--max-queue-delay-us must be at least 0, not -5"),
                       (("triton", model, "--repo", repo, "--max-batch", "0"), "--max-batch must be at least 1, not 0"),
                       (("triton", model, "--repo", repo, "--runtime", "openvino", "--streams", "0"),
                        "--streams must be at least 1, not 0"),
                       (("export", "--variant", "swin_test", "--random-init", "--max-batch", "0", "-o",
                         tmp_path / "m.onnx"), "--max-batch must be at least 1, not 0"),
                       (("verify", model, "--random-init", "--samples", "0"), "--samples must be at least 1, not 0"),
                       # numpy's generators refuse a negative seed: bench's was an internal error (export took it)
                       *(((command, model, "--seed", "-1"), "--seed must be at least 0, not -1")
                         for command in ("bench", "verify")),
                       (("export", "--variant", "swin_test", "--random-init", "--seed", "-1", "-o", tmp_path / "m.onnx"),
                        "--seed must be at least 0, not -1")):
        r = cli(*args)
        assert r.code == 2 and r.err.strip() == f"error: {said}", (args, r.err)
    assert list(repo.iterdir()) == []


def test_the_library_names_an_unknown_threshold_and_reads_a_device_in_any_case(tiny_onnx):
    """VerifyOptions(thresholds={"max_rel": 0.1}) was a KeyError, and reference_device "CPU" unknown."""
    from swin_deploy.errors import UserError
    from swin_deploy.models import Weights
    from swin_deploy.verify.run import VerifyOptions, verify_artifact

    options = {"weights": Weights("random"), "samples": 2, "batch_sizes": [1]}
    with pytest.raises(UserError, match="unknown threshold `max_rel`: choose `max_rel_delta`, `min_cosine`"):
        verify_artifact(tiny_onnx["swin_test"], VerifyOptions(**options, thresholds={"max_rel": 0.1}))
    result = verify_artifact(tiny_onnx["swin_test"], VerifyOptions(**options, reference_device="CPU"))
    assert result.passed and result.reference["device"] == "cpu", result.reference


def test_more_threads_or_workers_than_the_machine_can_run_are_refused(cli, tiny_onnx, demo):
    """`--threads 100000` (a slip) had onnxruntime start threads until the process limit, which took the shell that
    ran it down too; `--workers 100000` would start a decode thread per image. Triton's --threads is the server's."""
    from swin_deploy.machine import usable_cpus

    folder, _ = demo
    model, cpus = tiny_onnx["swin_test"], len(usable_cpus())
    for args, said in ((("verify", model, "--random-init", "--threads", "100000"),
                        f"--threads 100000 is more than the {cpus} CPUs this process may use: pass at most {cpus}"),
                       (("bench", model, "--threads", str(cpus + 1)), f"--threads {cpus + 1} is more than the {cpus}"),
                       (("predict", model, folder / "data" / "val" / "1", "--workers", "100000"),
                        f"--workers 100000 is more than 4 per CPU this process may use: pass at most {4 * cpus}")):
        r = cli(*args)
        assert r.code == 2 and said in r.err and r.err.count("\n") == 1, (args, r.err)
    assert cli("verify", model, "--random-init", "--samples", "2", "--batch-sizes", "2", "--threads", str(cpus)).code == 0


def test_an_empty_option_value_is_refused_not_read_as_the_default(cli, tiny_onnx, tmp_path):
    """`--batch-sizes ""` (a shell variable that was never set) verified at the default sizes, `--backend ""` ran
    onnxruntime and `--img-size 64,x` exported 64x64, each without a word."""
    model = tiny_onnx["swin_test"]
    for args, said in ((("verify", model, "--random-init", "--batch-sizes", ""), "--batch-sizes takes comma-separated"),
                       (("verify", model, "--random-init", "--batch-sizes", ","), "not ','"),
                       (("verify", model, "--random-init", "--backend", ""), "unknown backend ''"),
                       (("bench", model, "--backend", ""), "unknown backend ''"),
                       (("bench", model, "--max-rss", ""), "--max-rss takes a size"),
                       (("verify", model, "--random-init", "--img-sizes", ""), "--img-sizes takes comma-separated"),
                       (("triton", model, "--repo", tmp_path, "--preferred-batch", ""), "--preferred-batch takes"),
                       (("export", "--variant", "swin_test", "--random-init", "--img-size", "", "-o",
                         tmp_path / "m.onnx"), "--img-size takes a side or HxW")):
        r = cli(*args)
        assert r.code == 2 and said in r.err and r.err.count("\n") == 1, (args, r.err)
    assert list(tmp_path.iterdir()) == []


def test_a_batch_size_or_backend_given_twice_runs_once(cli, tiny_onnx):
    """Each ran twice (a batch size, and was reported twice) or as two runners under one label (a backend, one of
    them lost from the results)."""
    model = tiny_onnx["swin_test"]
    r = cli("verify", model, "--random-init", "--samples", "4", "--batch-sizes", "3,1,3", "--report", "-")
    assert r.code == 0 and [b["batch_size"] for b in json.loads(r.out)["batches"]] == [3, 1], r.err
    r = cli("bench", model, "--batch-sizes", "8,1,1", "--iterations", "2", "--warmup", "0", "--json", "-")
    assert r.code == 0 and [x["batch_size"] for x in json.loads(r.out)["results"]] == [8, 1], r.err
    r = cli("bench", model, "--backend", "onnxruntime-cpu,onnxruntime-cpu", "--batch-sizes", "1", "--iterations", "2",
            "--json", "-")
    assert r.code == 0 and [x["label"] for x in json.loads(r.out)["results"]] == ["swin_test.onnx"], r.err
    # spelled in another case, or with a space after a comma, a backend is the same one (it was "unknown backend")
    r = cli("bench", model, "--backend", "OpenVINO, openvino", "--batch-sizes", "1", "--iterations", "2", "--json", "-")
    assert r.code == 0 and [x["backend"] for x in json.loads(r.out)["results"]] == ["openvino f32"], r.err
    r = cli("verify", model, "--random-init", "--samples", "2", "--batch-sizes", "2", "--backend", "OpenVINO")
    assert r.code == 0, r.err
