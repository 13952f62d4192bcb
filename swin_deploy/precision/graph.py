"""Small ONNX graph utilities the precision passes need."""

from __future__ import annotations

import collections

import onnx


def opset_of(model: onnx.ModelProto) -> int:
    """The model's default-domain opset."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            out[name].append(node)
    return out


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in graph.node for o in n.output}


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder graph.node topologically in place (stable: keeps the original order where it can)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(i in available for i in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a dangling input at node {rest[0].name}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def unique_node_names(graph: onnx.GraphProto) -> None:
    """Give every node a distinct name (suffix _1, _2, ... on repeats)."""
    seen: collections.Counter[str] = collections.Counter()
    for node in graph.node:
        if seen[node.name]:
            base = node.name
            while f"{base}_{seen[base]}" in seen:
                seen[base] += 1
            node.name = f"{base}_{seen[base]}"
        seen[node.name] += 1


def input_dependent(graph: onnx.GraphProto) -> set[str]:
    """The tensors whose values depend on the graph inputs' values, not only on their shapes (nodes in topological
    order): what any node but Shape and Size reads of them."""
    live = {value.name for value in graph.input} - initializer_names(graph)
    for node in graph.node:
        if node.op_type not in ("Shape", "Size") and live.intersection(node.input):
            live.update(node.output)
    return live


def constant_values(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """The initializers and the Constant nodes' values, by tensor name."""
    values = {init.name: init for init in graph.initializer}
    values.update({node.output[0]: node.attribute[0].t for node in graph.node
                   if node.op_type == "Constant" and node.attribute[0].name == "value"})
    return values


def initializer_names(graph: onnx.GraphProto) -> set[str]:
    return {i.name for i in graph.initializer}


def own_float_initializers(graph: onnx.GraphProto, nodes: set[str]) -> None:
    """Give `nodes` their own copy of each float initializer they share with other nodes.
    A float16 conversion that keeps `nodes` in float32 then leaves each a constant of its own type: the converter
    would hand them the float16 one through a Cast, and TensorRT takes a Q/DQ scale only as a constant."""
    readers = consumers(graph)
    names = initializer_names(graph)
    copies = []
    for tensor in graph.initializer:
        inside = [n for n in readers.get(tensor.name, []) if n.name in nodes]
        if tensor.data_type != onnx.TensorProto.FLOAT or not inside or len(inside) == len(readers[tensor.name]):
            continue
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = next(f"{tensor.name}_fp32{i or ''}" for i in range(len(names) + 1)
                         if f"{tensor.name}_fp32{i or ''}" not in names)
        names.add(copy.name)
        copies.append(copy)
        for node in inside:
            node.input[:] = [copy.name if i == tensor.name else i for i in node.input]
    graph.initializer.extend(copies)


def io_names(graph: onnx.GraphProto) -> tuple[list[str], list[str]]:
    """The graph's input names (its weights left out: older exporters list them as inputs too) and output names."""
    weights = initializer_names(graph)
    return [i.name for i in graph.input if i.name not in weights], [o.name for o in graph.output]


def dedupe_casts(graph: onnx.GraphProto) -> int:
    """Drop repeated identical Cast nodes (same input, target type and output); returns how many.

    onnxruntime's float16 converter inserts one Cast per blocked consumer of a tensor, all writing
    the same output name, which breaks SSA when a tensor feeds two blocked nodes (V2's q feeds both
    ReduceL2 and Div of the cosine normalisation).
    """
    seen, keep, dropped = set(), [], 0
    for node in graph.node:
        if node.op_type == "Cast":
            key = (tuple(node.input), tuple(node.output), node.attribute[0].i)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return dropped


def remove_cast_round_trips(graph: onnx.GraphProto) -> int:
    """Bypass Cast(to float16) -> Cast(to float32) pairs; returns how many consumers were rewired.

    onnxruntime's float16 converter types the output of a blocked node as float16 when it is not a graph
    output, so a value flowing between two float32 (blocked) nodes still round-trips through float16:
    V2's norm clamp of 1e-12 became 0, and a zero token's cosine normalisation 0/0. Dead Casts are removed.
    """
    made = producers(graph)
    to_fp16, to_fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    rewired = 0
    for node in graph.node:
        if node.op_type != "Cast" or node.attribute[0].i != to_fp32:
            continue
        first = made.get(node.input[0])
        if first is None or first.op_type != "Cast" or first.attribute[0].i != to_fp16:
            continue
        source, target = first.input[0], node.output[0]
        for user in graph.node:
            for k, name in enumerate(user.input):
                if name == target:
                    user.input[k] = source
                    rewired += 1
        for out in graph.output:
            if out.name == target:  # keep the graph output's name: turn the second Cast into an Identity
                node.op_type, node.input[0] = "Identity", source
                del node.attribute[:]
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [n for n in graph.node if n.op_type != "Cast" or any(o in used for o in n.output)]
    while len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        keep = [n for n in graph.node if n.op_type != "Cast" or any(o in used for o in n.output)]
    return rewired


MS_DOMAIN = "com.microsoft"


def fold_transpose_into_matmul(model: onnx.ModelProto) -> int:
    """MatMul(a, Transpose(x)) -> FusedMatMul(a, Transpose'(x), transB=1); returns how many.

    For onnxruntime-only graphs. Transpose' is the same permutation with its last two axes swapped, so
    the matmul reads B transposed in its GEMM instead of a Transpose moving every element: Swin's k^T
    (..., heads, N, d) -> (..., heads, d, N) becomes a block copy of d-long rows (or nothing). We do it
    because onnxruntime's own MatMul-Transpose fusion comes too late: its transpose optimizer first merges
    k's two Transposes (heads split, k^T) into one element-wise permutation. Measured on swin_t INT8
    (onnxruntime 1.31 CPU, batch 8): 6% less time.
    """
    graph = model.graph
    made, used_by = producers(graph), consumers(graph)
    outputs = {o.name for o in graph.output}
    folded, dead, stale = 0, set(), set()
    for node in graph.node:
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            continue
        transpose = made.get(node.input[1])
        if (transpose is None or transpose.op_type != "Transpose" or len(used_by[transpose.output[0]]) != 1
                or transpose.output[0] in outputs):
            continue
        perm = list(onnx.helper.get_attribute_value(transpose.attribute[0])) if transpose.attribute else []
        if len(perm) < 2 or perm[-1] == len(perm) - 1:
            continue  # no perm (reverses all axes) or last axis kept: nothing to gain
        perm[-2], perm[-1] = perm[-1], perm[-2]
        if perm == sorted(perm):
            node.input[1] = transpose.input[0]
            dead.add(id(transpose))
        else:
            del transpose.attribute[:]
            transpose.attribute.append(onnx.helper.make_attribute("perm", perm))
        stale.add(transpose.output[0])  # gone, or its recorded shape no longer holds
        node.op_type, node.domain = "FusedMatMul", MS_DOMAIN
        node.attribute.append(onnx.helper.make_attribute("transB", 1))
        folded += 1
    keep_nodes = [n for n in graph.node if id(n) not in dead]
    del graph.node[:]
    graph.node.extend(keep_nodes)
    keep_info = [v for v in graph.value_info if v.name not in stale]
    del graph.value_info[:]
    graph.value_info.extend(keep_info)
    if folded and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(MS_DOMAIN, 1))
    return folded


def static_bytes(value: onnx.ValueInfoProto) -> int | None:
    """A tensor's size in bytes where every dimension is known, else None."""
    dims = value.type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        return None
    size = 1
    for d in dims:
        size *= d.dim_value
    return size * onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).itemsize


def run_shapes(model: onnx.ModelProto, shape: tuple[int, ...]) -> dict[str, onnx.ValueInfoProto]:
    """Every tensor's type in a run whose input has `shape`: shape inference carries it through the graph, so the
    tensors' sizes per run are known before it runs (a dim it cannot follow stays unknown)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    dynamic_size = any(not dim.HasField("dim_value") for dim in dims[1:])
    for dim, n in zip(dims, shape):
        dim.Clear()
        dim.dim_value = n
    graph = _symbolic_shapes(fixed) if dynamic_size else None
    if graph is None:
        graph = onnx.shape_inference.infer_shapes(fixed, data_prop=True).graph
    return {v.name: v for v in (*graph.input, *graph.value_info, *graph.output)}


def _symbolic_shapes(model: onnx.ModelProto) -> onnx.GraphProto | None:
    """The graph with every shape onnxruntime's symbolic shape inference finds, or None where it cannot finish. A
    dynamic-size graph computes its window grid from the input's size with Range and Mod, where ONNX's own data
    propagation stops; onnxruntime's follows them. Its loop is run here rather than through `infer_shapes`, which
    saves the model to the working directory when it cannot finish."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inference = SymbolicShapeInference(2**31 - 1, auto_merge=False, guess_output_rank=False, verbose=0)
        # it reads opset 18's axes input for ReduceSum and ReduceMean only, and every reduction takes the same input
        # since (a V2's INT8 at opset 19 normalises q and k with ReduceL2)
        for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMin", "ReduceSumSquare"):
            inference.dispatcher_.setdefault(op, inference._infer_ReduceMean)
        inference._preprocess(model)
        done = False
        while inference.run_:
            done = inference._infer_impl()
        inference._update_output_from_vi()
    except Exception:  # an operator or a version of the tool it does not know: ONNX's shapes, unknown dims and all
        return None
    return inference.out_mp_.graph if done else None


def readout_groups(names: list[str], typed: dict[str, onnx.ValueInfoProto], budget: int) -> list[list[str]]:
    """The tensors `names` (in graph order) to read out of a run, cut into consecutive groups of at most `budget`
    bytes (a larger tensor alone) where their shapes in `typed` say that reading all at once would pass it; else one
    group (also where a shape is not known before a run). onnxruntime keeps every graph output of a run alive whether
    it is fetched or not, so each group needs a session of its own."""
    sizes = [static_bytes(typed[name]) for name in names]
    if None in sizes or sum(sizes) <= budget:
        return [names]
    groups, size = [[]], 0
    for name, n in zip(names, sizes):
        if groups[-1] and size + n > budget:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += n
    return groups
