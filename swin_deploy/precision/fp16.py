"""FP16: float16 weights and activations, float32 I/O, with a Swin-specific float32 block list.

onnxruntime's bundled float16 converter does the conversion. Kept in float32:
  * LayerNorm (LayerNormalization, or its decomposition below opset 17): its variance (a mean of
    squares) overflows float16's 65504 on activations of a few hundred, which Swin's residual stream reaches;
  * V2's cosine attention path: ReduceL2 -> Clip -> Div normalisation of q and k, and the logit
    scale multiply (up to 100x);
  * any node the caller names: `hot_block_list` names the nodes that write or read a tensor whose peak on
    calibration images exceeds a limit (calibration.convert measures the peaks).
Three converter defects are repaired after it runs (see graph.py): input Casts out of topological
order, duplicate Casts when a tensor feeds two blocked nodes, and float16 round trips between two
blocked nodes (which turned V2's 1e-12 norm clamp into 0 and a zero padding token into NaN).
"""

from __future__ import annotations

import onnx

from .graph import consumers, dedupe_casts, opset_of, remove_cast_round_trips, toposort, unique_node_names

LAYERNORM_DECOMPOSED = {"ReduceMean", "Sub", "Pow", "Sqrt"}


def default_block_list(model: onnx.ModelProto) -> list[str]:
    graph = model.graph
    users = consumers(graph)
    block: list[str] = []
    opset = opset_of(model)
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            block.append(node.name)
        elif opset < 17 and node.op_type in LAYERNORM_DECOMPOSED:
            block.append(node.name)
        elif node.op_type == "ReduceL2":  # V2 cosine normalisation: ReduceL2 -> Clip -> Div (-> Mul scale)
            block.append(node.name)
            for clip in users[node.output[0]]:
                block.append(clip.name)
                for div in users[clip.output[0]]:
                    block.append(div.name)
                    block.extend(m.name for m in users[div.output[0]] if m.op_type == "Mul")
    if opset < 17:  # the Div and Add of the decomposed LayerNorm
        for node in graph.node:
            if node.op_type == "Sqrt":
                block.extend(n.name for n in users[node.output[0]] if n.op_type == "Div")
    return sorted(set(block))


def hot_block_list(model: onnx.ModelProto, peaks: dict[str, float], limit: float) -> list[str]:
    """The nodes to keep in float32 for activations past `limit` (`peaks`: tensor name -> largest |value| measured):
    each node that writes such a tensor, and each node that reads one. A float16 reader would get the tensor through
    the converter's Cast to float16, which turns values past 65504 into inf on a GPU (onnxruntime's CPU runs such
    casts between float16 nodes in float32, so a CPU run does not show it)."""
    hot = {name for name, peak in peaks.items() if peak > limit}
    users = consumers(model.graph)
    return sorted({n.name for n in model.graph.node if hot.intersection(n.output)}
                  | {reader.name for name in hot for reader in users.get(name, [])})


def first_float16_overflow(model: onnx.ModelProto, x) -> str | None:
    """The first node, in graph order, whose float16 output holds a value float16 cannot (inf or NaN) on input `x`, or
    None. The float16 tensors are read out as graph outputs, so onnxruntime stores each as float16: run as it is, its
    CPU computes a chain of float16 nodes in float32 (it drops the casts between them) and would not show it."""
    import numpy as np
    import onnxruntime as ort

    typed = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info
             if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
    writers = {name: node.name for node in model.graph.node for name in node.output if name in typed}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(typed[name] for name in writers)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(list(writers), {model.graph.input[0].name: x})
    return next((writers[name] for name, value in zip(writers, values) if not np.isfinite(value).all()), None)


def convert_fp16(model: onnx.ModelProto, block_list: list[str]) -> onnx.ModelProto:
    """float16 model with float32 `input`/`logits` and the named nodes kept in float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=block_list,
                                         disable_shape_infer=False)
    dedupe_casts(converted.graph)
    remove_cast_round_trips(converted.graph)
    toposort(converted.graph)
    unique_node_names(converted.graph)
    return converted
