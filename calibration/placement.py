"""Which nodes of a Swin graph get Q/DQ.

`linear` (the default): the linear layers (MatMul, or Gemm where a static-shape export fused MatMul + Add into one,
with a weight initializer: qkv, proj, fc1, fc2, patch-merging reduction) and the patch-embedding Conv; the
classifier head (the weighted op that writes the logits) only on request; the attention matmuls (q k^T and attn v,
both inputs activations) by flag. Everything else (LayerNorm, Softmax, GELU, residual adds, the bias/mask add)
stays in high precision because it has no Q/DQ of its own.
`nvidia`: NVIDIA's guidance for transformer INT8 on TensorRT: the same plus both attention matmuls and both inputs of
every residual Add (two float activations added), so TensorRT can keep the residual stream in int8 between fused
kernels. (Model Optimizer's ONNX PTQ differs on the residual stream; the README compares the two.)
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import onnx

from swin_deploy.enums import QdqPlacement
from swin_deploy.errors import UserError
from swin_deploy.precision.graph import initializer_names, producers

FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}


@dataclass
class Placement:
    quantize: list[str]
    kept: int  # nodes left in high precision
    attention_matmuls: bool
    residual_adds: int = 0
    float32_hot: int = 0  # nodes kept float32 beside float16 for their activations' peaks


def select_nodes(model: onnx.ModelProto, attention_matmuls: bool, head: bool, exclude: list[str],
                 placement: QdqPlacement = QdqPlacement.LINEAR) -> Placement:
    graph = model.graph
    weights = initializer_names(graph)
    heads = _head_nodes(graph, weights)
    for pattern in exclude:
        if not any(fnmatch.fnmatch(node.name, pattern) for node in graph.node):
            example = next((n.name for n in graph.node if n.op_type == "MatMul"), "")
            raise UserError(f"`exclude` '{pattern}' matches no node (names look like '{example}'): fix the pattern")
    chosen = []
    for node in graph.node:
        if any(fnmatch.fnmatch(node.name, pattern) for pattern in exclude):
            continue
        weighted = any(i in weights for i in node.input[:2])
        if node.name in heads:
            if head:
                chosen.append(node.name)
        elif node.op_type == "Conv" or (node.op_type == "Gemm" and weighted):
            chosen.append(node.name)
        elif node.op_type == "MatMul" and (weighted or attention_matmuls):
            chosen.append(node.name)
    residual = residual_adds(model) if placement == QdqPlacement.NVIDIA else []
    residual = [n for n in residual if not any(fnmatch.fnmatch(n, pattern) for pattern in exclude)]
    chosen += residual
    return Placement(chosen, len(graph.node) - len(chosen), attention_matmuls, len(residual))


def residual_adds(model: onnx.ModelProto) -> list[str]:
    """Adds of two float activations (the residual connections; bias and mask adds have a constant operand, and a
    dynamic-size graph's index arithmetic is integer)."""
    weights = initializer_names(model.graph)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input]}
    constants = weights | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "Add" and len(n.input) == 2
            and not any(i in constants for i in n.input) and all(types.get(i) in FLOATS for i in n.input)]


def _head_nodes(graph: onnx.GraphProto, weights: set[str]) -> set[str]:
    """The classifier: the last weighted MatMul/Gemm before the `logits` output (through Reshape/Add only)."""
    made = producers(graph)
    found = set()
    for out in graph.output:
        if out.name != "logits":
            continue
        node = made.get(out.name)
        while node is not None and node.op_type in ("Reshape", "Add", "Flatten", "Squeeze"):
            node = next((made[i] for i in node.input if i in made), None)
        if node is not None and node.op_type in ("MatMul", "Gemm") and any(i in weights for i in node.input[:2]):
            found.add(node.name)
    return found
