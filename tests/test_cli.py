"""The command line as wiring: library errors name parameters, the CLI spells them as flags; piped tables stay whole."""

from __future__ import annotations

import shutil

import pytest

from swin_deploy.errors import UserError


def test_library_error_names_the_parameter_and_the_cli_spells_the_flag(cli, tiny_onnx, tmp_path):
    from calibration import QuantizeOptions

    with pytest.raises(UserError) as e:
        QuantizeOptions("int8", calib_images=0)
    assert "`calib_images`" in str(e.value) and "--" not in str(e.value)
    r = cli("quantize", tiny_onnx["swin_test"], "--precision", "int8", "--calib-images", "0", "-o", tmp_path / "q.onnx")
    assert r.code == 2 and "--calib-images and --calib-batch must be at least 1" in r.err and "`" not in r.err


def test_piped_tables_keep_artifact_names_on_one_line(cli, tiny_onnx, tmp_path):
    long_name = tmp_path / "a_rather_long_artifact_name_for_the_ci_log_swin_test.fp32.onnx"
    shutil.copy(tiny_onnx["swin_test"], long_name)
    r = cli("bench", long_name, "--batch-sizes", "1", "--iterations", "1", "--warmup", "0")
    assert r.code == 0, r.err
    assert any(long_name.name in line for line in r.out.splitlines())
    r = cli("verify", long_name, "--random-init", "--samples", "2", "--batch-sizes", "1")
    assert r.code == 0, r.err
    assert any(f"verify {long_name.name}" in line for line in r.out.splitlines())
