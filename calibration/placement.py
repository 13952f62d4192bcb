"""Which nodes of a Swin graph get Q/DQ.

Quantized: the linear layers (MatMul with a weight initializer: qkv, proj, fc1, fc2, patch-merging
reduction) and the patch-embedding Conv; the classifier Gemm only on request; the attention matmuls
(q k^T and attn v, both inputs activations) by flag. Everything else (LayerNorm, Softmax, GELU,
residual adds, the bias/mask add) stays in high precision because it has no Q/DQ of its own.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import onnx

from swin_deploy.precision.graph import initializer_names


@dataclass
class Placement:
    quantize: list[str]
    kept: int  # nodes left in high precision
    attention_matmuls: bool


def select_nodes(model: onnx.ModelProto, attention_matmuls: bool, head: bool, exclude: list[str]) -> Placement:
    graph = model.graph
    weights = initializer_names(graph)
    chosen = []
    for node in graph.node:
        if any(fnmatch.fnmatch(node.name, pattern) for pattern in exclude):
            continue
        if node.op_type == "Conv":
            chosen.append(node.name)
        elif node.op_type == "Gemm" and head:
            chosen.append(node.name)
        elif node.op_type == "MatMul":
            is_linear = any(i in weights for i in node.input)
            if is_linear or attention_matmuls:
                chosen.append(node.name)
    return Placement(chosen, len(graph.node) - len(chosen), attention_matmuls)
