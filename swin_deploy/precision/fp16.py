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

import numpy as np
import onnx
from onnx import numpy_helper

from ..defaults import FP16_MAX
from ..machine import quota_threads, readout_budget
from .graph import (
    constant_values,
    consumers,
    dedupe_casts,
    input_dependent,
    opset_of,
    producers,
    readout_groups,
    remove_cast_round_trips,
    run_shapes,
    toposort,
    unique_node_names,
)

LAYERNORM_DECOMPOSED = {"ReduceMean", "Sub", "Pow", "Sqrt"}
# operators whose outputs hold only values their inputs hold (or zeros), so cannot overflow where their inputs did not;
# DequantizeLinear's output is within its calibrated range, which its float16 input held
SAME_VALUES = {"Reshape", "Transpose", "Gather", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Concat", "Split",
               "Identity", "Expand", "Pad", "DequantizeLinear"}


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
    casts between float16 nodes in float32, so a CPU run does not show it).

    In a Q/DQ graph the DequantizeLinear of such a tensor's QuantizeLinear gives back values as large, so it counts as
    a writer too; and a DequantizeLinear whose every reader stays float32 stays with them, as a Cast between it and its
    node would hide the pair TensorRT fuses."""
    graph = model.graph
    hot = hot_tensors(graph, peaks, limit)
    quantized = set()
    for node in graph.node:  # in graph order: a QuantizeLinear before its DequantizeLinear
        if node.op_type == "QuantizeLinear" and node.input[0] in hot:
            quantized.add(node.output[0])
        elif node.op_type == "DequantizeLinear" and node.input[0] in quantized:
            hot.add(node.output[0])
    users = consumers(graph)
    block = {n.name for n in graph.node if hot.intersection(n.output)} | \
        {reader.name for name in hot for reader in users.get(name, [])}
    block |= {n.name for n in graph.node if n.op_type == "DequantizeLinear" and users.get(n.output[0])
              and all(reader.name in block for reader in users[n.output[0]])}
    return sorted(block)


def hot_tensors(graph: onnx.GraphProto, peaks: dict[str, float], limit: float) -> set[str]:
    """The tensors whose peak passes `limit`, a margin below float16's largest value for inputs calibration did not
    see. A tensor that does not depend on the input's values (a shifted window's mask, MASK_VALUE -1e4, computed
    from shapes by a dynamic-size export) is the same for every input, so only float16's own limit applies; and an Add
    of such a term keeps the margin for its other term only: peak(other) * 65504 / limit + peak(term) <= 65504."""
    live = input_dependent(graph)
    values = constant_values(graph)
    made = producers(graph)

    def fixed_peak(name: str) -> float | None:  # of a term that does not depend on the input, where known
        if name in values:
            return float(np.abs(numpy_helper.to_array(values[name])).max(initial=0.0))
        return peaks.get(name)

    def fixed_term_within(node: onnx.NodeProto) -> bool:
        grows = [i for i in node.input if i in live]
        fixed = [fixed_peak(i) for i in node.input if i not in live]
        return (node.op_type == "Add" and len(grows) == 1 and len(fixed) == 1 and fixed[0] is not None
                and grows[0] in peaks and peaks[grows[0]] * FP16_MAX / limit + fixed[0] <= FP16_MAX)

    return {name for name, peak in peaks.items()
            if peak > FP16_MAX or (peak > limit and name in live and not (name in made and fixed_term_within(made[name])))}


class Float16Probe:
    """An ONNX's float16 tensors read out as stored. onnxruntime's CPU has no float16 kernel for most operators, so it
    computes a chain of float16 nodes in float32 and drops the casts between them: a value past 65504, inf on a GPU,
    stays finite in its outputs. Read out as graph outputs, the tensors are stored as float16, as a GPU stores them.
    A run whose read-out passes the memory share, where the graph's shapes tell, is read a group of tensors at a
    time."""

    def __init__(self, model: onnx.ModelProto):
        typed = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info
                 if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
        self.writers = {name: node.name for node in model.graph.node if node.op_type not in SAME_VALUES
                        for name in node.output if name in typed}
        self.input = model.graph.input[0].name
        self.model, self.typed = model, typed

    def _session(self, names: list[str], arena: bool = True):
        import onnxruntime as ort

        probe = onnx.ModelProto()
        probe.CopyFrom(self.model)
        probe.graph.output.extend(self.typed[name] for name in names)
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = arena
        options.intra_op_num_threads = quota_threads() or 0  # a CPU quota's CPUs, not a thread per core (0: default)
        return ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def first_overflows(self, batches: list) -> list[str | None]:
        """Per batch, the first node in graph order whose float16 output holds a value float16 cannot (inf or NaN),
        or None."""
        found: list[str | None] = [None] * len(batches)
        if not self.writers or not batches:
            return found
        # sizes with the input's shape fixed at the runs' (one shape for all): known before they run
        sized = {**self.typed, **run_shapes(self.model, batches[0].shape)}
        # a run takes about twice what it reads out (measured: 1.7x-1.9x, the float32 copies onnxruntime's CPU
        # computes the float16 chains in, and the largest working tensors)
        groups = readout_groups(list(self.writers), sized, readout_budget() // 2)
        for names in groups:  # consecutive in graph order: a batch's first overflow is in the first group with one
            todo = [i for i, node in enumerate(found) if node is None]
            if not todo:
                break
            # read in groups, the outputs leave the session at once: an arena would keep their high-water mark, rounded
            # up to a power of two (a 5 GiB read-out took 10 GiB with it, 5 without); one group keeps it (without, the
            # swin_t INT8's 16 runs took 15-20% longer)
            session = self._session(names, arena=len(groups) == 1)
            for i in todo:
                found[i] = self._first_in(session, names, batches[i])
            del session
        return found

    def _first_in(self, session, names: list[str], batch) -> str | None:
        """A function of its own so one run's read-out is freed before the next run starts."""
        values = session.run(names, {self.input: batch})
        return next((self.writers[name] for name, value in zip(names, values) if not np.isfinite(value).all()), None)


def first_float16_overflow(model: onnx.ModelProto, x) -> str | None:
    """`Float16Probe.first_overflows` of `model` on the one batch `x`."""
    return Float16Probe(model).first_overflows([x])[0]


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
