"""Every `trt.` name the code and the stand-in module use exists in the real TensorRT 10/11 bindings
(scripts/tensorrt_names.py, against the name lists in tests/tensorrt_api/, which say where they come from)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("tensorrt_names", ROOT / "scripts" / "tensorrt_names.py")
names = importlib.util.module_from_spec(spec)
spec.loader.exec_module(names)


def test_every_tensorrt_name_in_the_project_exists_in_the_real_bindings():
    lists = names.load_lists()
    assert set(lists) == {"10.16.1.11", "11.4.0.106"} and all(len(words) > 2000 for words in lists.values())
    used = [n for f in (ROOT / "swin_deploy").rglob("*.py") for n in names.used_names(f)]
    assert len(used) >= 15  # the scan sees the TensorRT code (a scan that finds nothing would pass anything)
    assert names.check([ROOT / "swin_deploy", ROOT / "calibration", ROOT / "cli.py", ROOT / "tests"],
                       [ROOT / "tests" / "stand_in_tensorrt.py"]) == []


def test_a_misspelt_or_removed_name_is_reported(tmp_path):
    code = tmp_path / "uses_trt.py"
    code.write_text("import tensorrt as trt\n"
                    "a = trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED\n"  # in both versions
                    "b = trt.BuilderFlag.FP16\n"  # TensorRT 10 only: still a real name
                    "c = trt.Builder.build_serialised_network\n")  # misspelt
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text("class Builder:\n    def build_serialized_network(self): ...\n    def make_it_fast(self): ...\n")
    problems = names.check([code], [stand_in])
    assert len(problems) == 2
    assert "trt.Builder.build_serialised_network" in problems[0] and "make_it_fast" in problems[1]
    only_11 = {"11.4.0.106": names.load_lists()["11.4.0.106"]}
    assert any("BuilderFlag.FP16" in p for p in names.check([code], lists=only_11))
