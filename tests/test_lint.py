"""`swin-deploy check`: TensorRT's ONNX parser rules, clean on every artifact kind, and planted defects caught."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


@pytest.mark.parametrize("tensorrt", [10, 11])
def test_every_artifact_kind_is_clean(cli, artifacts, tensorrt):
    for kind, path in artifacts.items():
        r = cli("check", path, "--tensorrt", tensorrt)
        if kind == "int8_ort":  # uint8 activations and com.microsoft ops: not for TensorRT, and it says so
            assert r.code == 1 and "targets onnxruntime" in r.out and "--target tensorrt" in r.out
        else:
            assert r.code == 0, f"{kind}: {r.out}"


def findings(model: onnx.ModelProto, tmp_path) -> list[str]:
    from swin_deploy.lint.tensorrt import check_onnx

    path = tmp_path / "planted.onnx"
    onnx.save(model, str(path))
    return [str(f) for f in check_onnx(path)]


def int8_model(artifacts) -> onnx.ModelProto:
    return onnx.load(str(artifacts["int8"]))


def test_uint8_zero_point_is_caught(artifacts, tmp_path):
    model = int8_model(artifacts)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2)
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    zp = helper.make_tensor("planted_zp_u8", TensorProto.UINT8, [], [0])
    model.graph.initializer.append(zp)
    q.input[2] = dq.input[2] = "planted_zp_u8"
    stale = [v for v in model.graph.value_info if v.name == q.output[0]]  # typed int8 before the plant
    for v in stale:
        model.graph.value_info.remove(v)
    found = findings(model, tmp_path)
    assert any(q.name in f and "quantizes to UINT8" in f for f in found), found


def weight_dq(model: onnx.ModelProto, square: bool = False):
    """A DequantizeLinear with a per-channel scale feeding a MatMul's weight input (`square`: a [C, C] weight)."""
    inits = {t.name: t for t in model.graph.initializer}
    for n in model.graph.node:
        weight = inits.get(n.input[0]) if n.input else None
        if n.op_type == "DequantizeLinear" and n.input[1] in inits and len(inits[n.input[1]].dims) == 1 \
                and inits[n.input[1]].dims[0] > 1 \
                and (not square or (weight is not None and len(weight.dims) == 2 and weight.dims[0] == weight.dims[1])):
            users = [u for u in model.graph.node if n.output[0] in u.input]
            if users and users[0].op_type == "MatMul" and users[0].input[1] == n.output[0]:
                return n
    raise AssertionError("no per-channel MatMul weight in the INT8 model")


def test_per_channel_scale_without_axis_or_on_the_wrong_axis_is_caught(artifacts, tmp_path):
    model = int8_model(artifacts)
    dq = weight_dq(model, square=True)
    assert [a.i for a in dq.attribute if a.name == "axis"] == [1]  # MatMul weights are [K, N]: N is axis 1
    del dq.attribute[:]
    found = findings(model, tmp_path)
    assert any(dq.name in f and "without an explicit axis" in f for f in found), found
    dq.attribute.append(helper.make_attribute("axis", 0))
    # a wrong axis must also agree in length with the scale for the graph to stay valid (a square weight), so that
    # strict inference passes and the axis rule itself is what reports it
    found = findings(model, tmp_path)
    assert not any("strict ONNX" in f for f in found), found
    assert any(dq.name in f and "write axis 1" in f for f in found), found


def test_op_missing_from_the_table_is_caught(artifacts, tmp_path):
    model = onnx.load(str(artifacts["fp32"]))
    erf = next(n for n in model.graph.node if n.op_type == "Erf")
    erf.op_type = "Acos"  # a valid ONNX op with the same signature that the table does not list
    found = findings(model, tmp_path)
    assert any(erf.name in f and "(Acos): not in the TensorRT support table" in f for f in found), found


def test_untyped_tensor_is_caught(artifacts, tmp_path):
    model = onnx.load(str(artifacts["fp32"]))
    erf = next(n for n in model.graph.node if n.op_type == "Erf")
    erf.domain, erf.op_type = "planted.domain", "Mystery"  # nothing can type its output
    model.opset_import.append(helper.make_opsetid("planted.domain", 1))
    del model.graph.value_info[:]  # the types the export recorded: inference must find them again
    found = findings(model, tmp_path)
    assert any(erf.name in f and "has no type" in f for f in found), found
    assert any("custom-domain op" in f for f in found)


def test_reshape_shape_computed_from_data_is_caught(artifacts, tmp_path):
    model = onnx.load(str(artifacts["fp32"]))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    reshape = next(n for n in graph.node if n.op_type == "Reshape" and n.input[1] in inits)
    shape = numpy_helper.to_array(inits[reshape.input[1]])
    # shape + 0 * max(input), cast back to int64: the same numbers, but from tensor data rather than shapes
    graph.initializer.extend([numpy_helper.from_array(shape.astype(np.float32), "planted_shape_f"),
                              numpy_helper.from_array(np.array(0.0, np.float32), "planted_zero")])
    nodes = [helper.make_node("ReduceMax", ["input"], ["planted_max"], keepdims=0, name="planted_max"),
             helper.make_node("Mul", ["planted_max", "planted_zero"], ["planted_mul"], name="planted_mul"),
             helper.make_node("Add", ["planted_shape_f", "planted_mul"], ["planted_add"], name="planted_add"),
             helper.make_node("Cast", ["planted_add"], ["planted_shape"], to=TensorProto.INT64, name="planted_cast")]
    index = list(graph.node).index(reshape)
    for i, node in enumerate(nodes):
        graph.node.insert(index + i, node)
    reshape.input[1] = "planted_shape"
    found = findings(model, tmp_path)
    assert any(reshape.name in f and "computed from the data of 'input'" in f for f in found), found


def test_bad_input_exits_2(cli, tmp_path):
    assert cli("check", tmp_path / "missing.onnx").code == 2
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    assert cli("check", tmp_path / "junk.onnx").code == 2
