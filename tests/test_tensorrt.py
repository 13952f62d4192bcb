"""TensorRT: without it, build-engine exits 2 with the install hint; with a GPU, the real path runs."""

from __future__ import annotations

import pytest

from swin_deploy.backends.tensorrt_runner import builder_unavailable_reason

REASON = builder_unavailable_reason()


def test_build_engine_without_tensorrt_gives_install_hint(cli, tiny_onnx):
    if REASON is None:
        pytest.skip("TensorRT is installed here")
    r = cli("build-engine", tiny_onnx["swin_test"])
    assert r.code == 2 and "pip install 'swin-deploy[tensorrt]'" in r.err and "Traceback" not in r.err


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
    from swin_deploy.artifact import ArtifactInfo
    from swin_deploy.backends.tensorrt_runner import BuildOptions, check_profile
    from swin_deploy.errors import UserError
    from swin_deploy.models import get_config

    info = ArtifactInfo.for_config(get_config("swin_test"), "0" * 64, 17, max_batch=16, static_batch=False)
    check_profile(info, BuildOptions(1, 8, 16))
    with pytest.raises(UserError, match="exceeds the batch the ONNX was exported"):
        check_profile(info, BuildOptions(1, 8, 32))
    with pytest.raises(UserError, match="`min_batch` <= `opt_batch`"):
        check_profile(info, BuildOptions(4, 2, 8))
    static = ArtifactInfo.for_config(get_config("swin_test"), "0" * 64, 17, max_batch=4, static_batch=True)
    with pytest.raises(UserError, match="static batch of 4"):
        check_profile(static, BuildOptions(1, 4, 4))
    check_profile(static, BuildOptions(4, 4, 4))
    info.extra["target"] = "onnxruntime"
    with pytest.raises(UserError, match="targets onnxruntime"):
        check_profile(info, BuildOptions(1, 8, 16))


def test_engine_with_corrupt_sidecar_exits_2(cli, tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\x00")
    (tmp_path / "m.engine.json").write_text("{not json")
    r = cli("verify", engine)
    assert r.code == 2 and "rebuild the engine" in r.err
    assert cli("verify", tmp_path / "other.engine").code == 2
