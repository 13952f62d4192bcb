"""Activation statistics from calibration images: the one pass both precisions use.

`calibrate` measures the images' ranges (MinMax) or runs onnxruntime's calibrators (Entropy, Percentile):
INT8 takes the ranges of the linear layers' tensors, FP16 the min/max of every float tensor (its overflow
check), and an INT8 that computes in float16 outside its Q/DQ both (`float_peaks`).
The calibration cache is plain JSON, {"model_sha256", "method", "percentile", "images", "ranges":
{tensor: [min, max]}, "float_peaks": {tensor: peak} where measured}, written next to the INT8 output and
reusable; a cache made for another model or with another method is refused.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, create_calibrator
from onnxruntime.quantization.calibrate import TensorData, TensorsData

from swin_deploy import defaults
from swin_deploy.enums import CalibMethod
from swin_deploy.errors import UserError
from swin_deploy.machine import quota_threads, readout_budget
from swin_deploy.precision.graph import readout_groups, run_shapes, static_bytes

from .options import LINEAR_OPS, check_percentile

METHODS = {CalibMethod.MINMAX: CalibrationMethod.MinMax, CalibMethod.ENTROPY: CalibrationMethod.Entropy,
           CalibMethod.PERCENTILE: CalibrationMethod.Percentile}


@dataclass
class Ranges:
    model_sha256: str
    method: CalibMethod
    percentile: float | None
    images: int
    ranges: dict[str, tuple[float, float]]
    run_images: int = 0  # images per calibration run, where memory cut the batch smaller (not cached); 0: not cut
    # largest |value| of every float tensor on the same images (what may overflow float16), where measured
    float_peaks: dict[str, float] | None = None
    # (groups, bytes, images a run): a run's read-out past the memory share, read a group of tensors per pass (not
    # cached)
    grouped: tuple[int, int, int] | None = None

    @property
    def label(self) -> str:
        """The method as a cache names it: 'minmax', 'percentile 99.999', ..."""
        return method_label(self.method, self.percentile)

    def peaks(self) -> dict[str, float]:
        """Largest |value| of each calibrated tensor, by tensor name."""
        return peaks_of(self.ranges)

    def tensors_data(self) -> TensorsData:
        data = {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in self.ranges.items()}
        return TensorsData(METHODS[self.method], data)

    def save(self, path: Path) -> None:
        from swin_deploy.fileio import atomic_output

        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps({"model_sha256": self.model_sha256, "method": str(self.method),
                                       "percentile": self.percentile, "images": self.images,
                                       "ranges": {k: list(v) for k, v in self.ranges.items()},
                                       **({} if self.float_peaks is None else {"float_peaks": self.float_peaks})},
                                      indent=1))

    @classmethod
    def load(cls, path: Path, model_sha256: str) -> Ranges:
        try:
            raw = json.loads(Path(path).read_text())
            cache = cls(raw["model_sha256"], CalibMethod(raw["method"]), raw.get("percentile"), int(raw["images"]),
                        {k: (float(v[0]), float(v[1])) for k, v in raw["ranges"].items()},
                        float_peaks=None if raw.get("float_peaks") is None else
                        {k: float(v) for k, v in raw["float_peaks"].items()})
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            raise UserError(f"{path} is not a swin-deploy calibration cache ({type(e).__name__})") from e
        if cache.model_sha256 != model_sha256:
            raise UserError(f"calibration cache {path} was made for another model (sha256 {cache.model_sha256[:12]}, "
                            f"this one {model_sha256[:12]}): drop `calib_cache` to calibrate again")
        return cache


class _ListReader:
    def __init__(self, items: list[dict]):
        self.items = iter(items)

    def get_next(self) -> dict | None:
        return next(self.items, None)


def peaks_of(ranges: dict[str, tuple[float, float]]) -> dict[str, float]:
    return {name: max(abs(lo), abs(hi)) for name, (lo, hi) in ranges.items()}


def method_label(method: CalibMethod, percentile: float | None) -> str:
    return f"percentile {percentile}" if method == CalibMethod.PERCENTILE else str(method)


def calibrate(model: onnx.ModelProto, reader, method: CalibMethod = CalibMethod.MINMAX,
              percentile: float = defaults.PERCENTILE, model_sha256: str = "",
              op_types: tuple[str, ...] | None = LINEAR_OPS, float_peaks: bool = False) -> Ranges:
    """Ranges of the inputs and outputs of `op_types` nodes (None: of every float tensor) over every batch the reader
    yields; with `float_peaks`, also the largest |value| of every float tensor (the histogram methods' ranges are
    clipped, not peaks)."""
    method = CalibMethod.parse(method, "method")
    if method == CalibMethod.PERCENTILE:
        check_percentile(percentile)
    extra = {"percentile": percentile, "symmetric": False} if method == CalibMethod.PERCENTILE else {"symmetric": False}
    with tempfile.TemporaryDirectory() as tmp:
        histogram = None
        if method != CalibMethod.MINMAX:
            src = Path(tmp) / "model.onnx"
            onnx.save(model, str(src))
            histogram = create_calibrator(src, op_types_to_calibrate=list(op_types) if op_types else None,
                                          augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                          calibrate_method=METHODS[method], extra_options=extra)
        batches = iter(reader.get_next, None)
        first = next(batches)  # the reader raises when it has no readable image
        # a run's read-out, known before it runs from its input's shape (the reader's images share one size): a
        # static batch's own, else one image's, the least a run can take
        budget, smallest = readout_budget(), reader.fixed or 1
        sized = run_shapes(model, (smallest, *next(iter(first.values())).shape[1:]))
        if histogram is not None:
            _refuse_oversized_histogram(model, op_types, method, budget, sized, smallest)
        stats = TensorStats(model, budget, sized) if histogram is None or float_peaks else None
        grouped = stats is not None and len(stats.groups) > 1
        sessions = [histogram.infer_session] if histogram else []
        sessions += [stats.session] if stats and not grouped else []
        # onnxruntime's histogram calibrators keep every intermediate output of every image until collect_data()
        # returns (entropy on 512 swin_t images peaked above 24 GB and was killed); repeated calls merge their
        # results, so feed them a chunk at a time, in runs that fit in memory. They also print progress to stdout;
        # library code must not.
        # grouped: its groups hold what the smallest run reads out
        fit = smallest if grouped else min(_images_that_fit(session, first, whole=bool(reader.fixed))
                                           for session in sessions)
        per_run = reader.batch_size if reader.fixed else min(reader.batch_size, fit)
        runs = _recut(itertools.chain([first], batches), per_run)
        held = []  # grouped: every run, read once per group
        with contextlib.redirect_stdout(io.StringIO()):
            while chunk := list(itertools.islice(runs, max(1, min(defaults.CALIB_CHUNK_IMAGES, fit) // per_run))):
                if histogram is not None:
                    histogram.collect_data(_ListReader(chunk))
                if grouped:
                    held += chunk
                for feed in chunk if stats and not grouped else ():
                    stats.update(feed)
            if grouped:
                stats.update_grouped(held)
            if histogram is not None:
                ranges = {k: (float(np.asarray(v.range_value[0]).min()), float(np.asarray(v.range_value[1]).max()))
                          for k, v in histogram.compute_data().data.items()}
            else:
                ranges = stats.ranges(op_types)
    return Ranges(model_sha256, method, percentile if method == CalibMethod.PERCENTILE else None, reader.used, ranges,
                  per_run if per_run < reader.batch_size else 0, peaks_of(stats.ranges(None)) if float_peaks else None,
                  (len(stats.groups), stats.read_bytes(), smallest) if grouped else None)


def _refuse_oversized_histogram(model: onnx.ModelProto, op_types: tuple[str, ...] | None, method: CalibMethod,
                                budget: int, typed: dict[str, onnx.ValueInfoProto], smallest: int) -> None:
    """onnxruntime's histogram calibrators read their tensors out in one run: where the smallest run's (`smallest`
    images, its tensors' types `typed`) passes `budget`, they cannot run here."""
    weights = {t.name for t in model.graph.initializer}
    names = {t for node in model.graph.node if not op_types or node.op_type in op_types
             for t in (*node.input, *node.output) if t in typed and t not in weights}
    sizes = [static_bytes(typed[n]) for n in names]
    if None not in sizes and sum(sizes) > budget:
        what = f"a run of this static batch of {smallest}" if smallest > 1 else "one image"
        raise UserError(f"`method` {method} reads {sum(sizes) / 2**30:.1f} GiB of activations for {what}, past the "
                        f"{budget / 2**30:.1f} GiB calibration may take here: use `method` minmax (it reads them in "
                        "groups)")


SAME_SET = {"Reshape", "Transpose", "Identity", "Flatten", "Squeeze", "Unsqueeze"}  # output: the input's values


class TensorStats:
    """The min and max of every float tensor of a model over the batches it is given: what onnxruntime's MinMax
    calibrator measures, to the last bit (the same unoptimised graph, the same tensors), but read out and reduced in
    numpy a run at a time, where its calibrator adds a ReduceMin and a ReduceMax per tensor to the graph; those are
    slow on CPU, so this reads every float tensor in the time it took for the linear layers' alone, and FP16's pass
    over every tensor in half its time (benchmarks/calibration_time.py)."""

    def __init__(self, model: onnx.ModelProto, budget: int | None = None,
                 sized: dict[str, onnx.ValueInfoProto] | None = None):
        graph = onnx.shape_inference.infer_shapes(model).graph
        weights = {t.name for t in graph.initializer}
        floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
        self.nodes = [(node.op_type, [*node.input, *node.output]) for node in graph.node]
        typed = {v.name: v for v in (*graph.input, *graph.value_info, *graph.output)
                 if v.type.tensor_type.elem_type in floats and v.name not in weights}
        self.tensors = list(typed)
        # a tensor that only moves another's values holds exactly its min and max: not read out (a third of Swin's)
        self.copies = {}
        for node in graph.node:
            if node.op_type in SAME_SET and node.input[0] in typed and node.output[0] in typed:
                self.copies[node.output[0]] = self.copies.get(node.input[0], node.input[0])
        self.read = [name for name in typed if name not in self.copies]
        self.model, self.typed = model, typed
        # where the smallest run (its tensors' types `sized`: a static batch cannot be cut; else one image) reads out
        # more than `budget`, the tensors are read a group at a time, one pass over the images each
        self.sized = {**typed, **(sized or {})}
        self.groups = [self.read] if budget is None else readout_groups(self.read, self.sized, budget)
        self.session = self._session(self.read) if len(self.groups) == 1 else None
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}

    def read_bytes(self) -> int:
        """Bytes a run reads out (static shapes only)."""
        return sum(static_bytes(self.sized[name]) or 0 for name in self.read)

    def _session(self, names: list[str]):
        import onnxruntime as ort

        measured = onnx.ModelProto()
        measured.CopyFrom(self.model)
        del measured.graph.output[:]
        measured.graph.output.extend(self.typed[name] for name in names)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as onnxruntime's calibrators
        options.intra_op_num_threads = quota_threads() or 0  # a CPU quota's CPUs, not a thread per core (0: default)
        return ort.InferenceSession(measured.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def update(self, feed: dict[str, np.ndarray]) -> None:
        """One run's min and max (one group of tensors read: `update_grouped`)."""
        self._reduce(self.read, self.session.run(None, feed))

    def update_grouped(self, feeds: list[dict[str, np.ndarray]]) -> None:
        """Every run's min and max, a group of tensors at a time, one session alive at a time."""
        for names in self.groups:
            session = self._session(names)
            for feed in feeds:
                self._reduce(names, session.run(None, feed))
            del session

    def _reduce(self, names: list[str], values: list[np.ndarray]) -> None:
        for name, value in zip(names, values):
            if not value.size:  # an empty tensor (a zero padding's slice) holds nothing
                continue
            low, high = float(np.nanmin(value)), float(np.nanmax(value))
            self.low[name] = min(self.low.get(name, low), low)
            self.high[name] = max(self.high.get(name, high), high)

    def _range(self, name: str) -> tuple[float, float]:
        source = self.copies.get(name, name)
        return self.low.get(source, 0.0), self.high.get(source, 0.0)

    def ranges(self, op_types: tuple[str, ...] | None) -> dict[str, tuple[float, float]]:
        """(min, max) of the inputs and outputs of `op_types` nodes (None: of every float tensor)."""
        selected = {t for op, tensors in self.nodes if not op_types or op in op_types for t in tensors}
        return {name: self._range(name) for name in self.tensors if name in selected}


def _images_that_fit(session, batch: dict[str, np.ndarray], whole: bool) -> int:
    """How many images one calibration run may take: what one image's run adds to this process's memory
    (onnxruntime's arena keeps its high-water mark; the calibrated outputs are still held when it is read) against
    READOUT_MEMORY_SHARE of the memory available then. `whole`: a static-batch model runs the batch as it is."""
    import psutil

    process = psutil.Process()
    before = process.memory_info().rss
    images = len(next(iter(batch.values()))) if whole else 1
    outputs = session.run(None, {k: v[:images] for k, v in batch.items()})
    per_image = max((process.memory_info().rss - before) // images, 1)
    del outputs
    return max(1, readout_budget() // per_image)


def _recut(batches, size: int):
    """The reader's batches cut into runs of at most `size` images."""
    for batch in batches:
        n = len(next(iter(batch.values())))
        for start in range(0, n, size):
            yield {k: v[start:start + size] for k, v in batch.items()}
