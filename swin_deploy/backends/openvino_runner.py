"""OpenVINO on the CPU: any swin-deploy ONNX (fp32, fp16, INT8 Q/DQ) or OpenVINO IR, compiled for this CPU.

OpenVINO picks an execution precision of its own: on CPUs with BF16 it runs float32 models in bf16 unless told
otherwise. A gate must know what ran, so the runner decides it explicitly (OpenVinoOptions.inference_precision; by
default f32 for fp32 and fp16 artifacts, OpenVINO's own choice for INT8, whose gate is looser than bf16's) and
reports what the compiled model says it uses.

Every input shape it is fed (up to defaults.OPENVINO_STATIC_SHAPES of them) gets a copy of the model compiled for
exactly that shape: OpenVINO runs a static shape 10-25% faster than the dynamic-batch model (Sapphire Rapids,
benchmarks/RESULTS.md "OpenVINO: static shapes"), and a batch size is fixed in most deployments.

Under the throughput hint OpenVINO splits the CPU into streams that each run one request, so one synchronous request
would use a fraction of the cores: the runner splits each batch into equal parts, one per request of the compiled
model's optimal number, and runs them together, so a batch takes all the streams (and bench's img/s is the hint's
throughput).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import defaults
from ..enums import ExecutionPrecision, PerformanceHint, Precision
from ..errors import UserError, missing_package
from ..fileio import make_folder
from ..machine import quota_threads
from .base import Runner

# the CPU capability (OpenVINO's OPTIMIZATION_CAPABILITIES) each execution precision needs; the enum's values are
# OpenVINO's own names for them
NEEDS = {ExecutionPrecision.BF16: "BF16", ExecutionPrecision.F16: "FP16"}


@dataclass(frozen=True)
class OpenVinoOptions:
    """How OpenVINO compiles a model. None: the default described in the module doc / OpenVINO's own."""

    inference_precision: ExecutionPrecision | None = None
    performance_hint: PerformanceHint | None = None  # None: latency (one request as fast as possible)
    cache_dir: Path | None = None  # compiled blobs are cached here and reused (faster start-up)

    def __post_init__(self) -> None:
        if self.inference_precision is not None:
            object.__setattr__(self, "inference_precision",
                               ExecutionPrecision.parse(self.inference_precision, "inference_precision"))
        if self.performance_hint is not None:
            object.__setattr__(self, "performance_hint", PerformanceHint.parse(self.performance_hint, "performance_hint"))

    @property
    def hint(self) -> PerformanceHint:
        return self.performance_hint or PerformanceHint.LATENCY

    @classmethod
    def given(cls, **settings) -> OpenVinoOptions | None:
        """Options from settings that may all be None (not asked for): None then."""
        return cls(**settings) if any(v is not None for v in settings.values()) else None


# the names swin-deploy artifacts give their tensors: the input; logits, pooled features, or feature maps (stem,
# stage1..N)
PROMISED_NAMES = ("input", "logits", "features", "stem")


def port_name(port) -> str:
    """A model input's or output's name as the artifact promises it: an OpenVINO port carries every name its tensor
    had on the way (the fp16 converter's casts add their own), and any one of them otherwise."""
    return next((n for n in sorted(port.get_names()) if n in PROMISED_NAMES or n.startswith("stage")),
                port.get_any_name())


def import_openvino():
    try:
        import openvino
    except ImportError as e:
        raise missing_package("openvino", "openvino") from e
    return openvino


def _reason(error: Exception) -> str:
    """OpenVINO's exceptions open with lines naming its own source files: the first line that says what failed."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    told = [line for line in lines if not line.startswith("Exception from")]
    return f"{type(error).__name__}: {(told or lines or [''])[0][:200]}"


def read_model(path: Path):
    """An ONNX or IR as OpenVINO reads it, or a UserError with OpenVINO's reason (an IR beside another model's .bin
    fails its shape checks here)."""
    from ..artifact import ir_weights, ir_weights_short, kind_of

    path = Path(path)
    try:
        return import_openvino().Core().read_model(str(path))
    except Exception as e:
        if kind_of(path) == "ir" and ir_weights_short(path):
            raise UserError(f"OpenVINO cannot read {path.name}: {ir_weights(path).name} is shorter than the "
                            "weights it lists (a copy cut short, or another model's .bin): copy both files again, or "
                            "write the IR again (swin-deploy convert)") from e
        raise UserError(f"OpenVINO cannot read {path.name} ({_reason(e)}): is it a valid ONNX or IR?") from e


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin says this CPU can compute in (FP32, BF16, FP16, INT8, ...)."""
    return list(import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class _Compiled:
    """A compiled model with its infer request, and under the throughput hint a queue of `parallel` requests that
    run the parts of a batch at once."""

    def __init__(self, compiled, parallel: int):
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.queue = import_openvino().AsyncInferQueue(compiled, parallel) if parallel > 1 else None

    def infer(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Each output, copied (the request's tensors are overwritten by its next call), parts concatenated."""
        if self.queue is None or len(parts) == 1:
            result = self.request.infer({0: parts[0]})
            return [np.array(result[i], dtype=np.float32) for i in range(len(self.compiled.outputs))]
        done: list[list[np.ndarray] | None] = [None] * len(parts)

        def collect(request, i: int) -> None:
            done[i] = [np.array(t.data, dtype=np.float32) for t in request.output_tensors]

        self.queue.set_callback(collect)
        for i, part in enumerate(parts):
            self.queue.start_async({0: part}, i)
        self.queue.wait_all()
        return [np.concatenate([d[j] for d in done]) for j in range(len(self.compiled.outputs))]


class OpenVinoRunner(Runner):
    """An ONNX or IR file compiled by OpenVINO for the CPU: one synchronous infer request (latency hint), or one per
    stream taking a part of each batch (throughput hint)."""

    name = "openvino"

    def __init__(self, model: str | Path, threads: int | None = None, options: OpenVinoOptions | None = None,
                 precision: Precision | None = None):
        super().__init__()
        # threads not given: a CPU quota's CPUs where there is one (OpenVINO's default, a thread per core, is
        # throttled under it), else OpenVINO's choice
        self.path, self.threads = Path(model), threads if threads is not None else quota_threads()
        self.options = options or OpenVinoOptions()
        self.hint = self.options.hint
        self.precision = precision  # the artifact's; read from its metadata when None
        self.execution_precision: str | None = None
        self.streams: int | None = None
        self.parallel: int | None = None  # requests each batch is split over (set when compiled)

    def _wanted_precision(self) -> ExecutionPrecision | None:
        if self.options.inference_precision is not None:
            return self.options.inference_precision
        precision = self.precision
        if precision is None:
            from ..artifact import artifact_info

            precision = artifact_info(self.path).precision
        # fp32/fp16 artifacts: gate what they say; INT8: OpenVINO's choice (its gate is looser than bf16's)
        return None if precision == Precision.INT8 else ExecutionPrecision.F32

    def _activate(self) -> None:
        ov = import_openvino()
        core = ov.Core()
        wanted = self._wanted_precision()
        capabilities = cpu_capabilities()
        if wanted in NEEDS and NEEDS[wanted] not in capabilities:
            can = [p.value for p, needs in NEEDS.items() if needs in capabilities] + [ExecutionPrecision.F32.value]
            raise UserError(f"this CPU cannot compute in {wanted} (OpenVINO reports {', '.join(capabilities)}): use "
                            f"`inference_precision` {' or '.join(can)}")
        config: dict[str, object] = {"PERFORMANCE_HINT": self.options.hint.value.upper()}
        if wanted is not None:
            config["INFERENCE_PRECISION_HINT"] = wanted.value
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        if self.options.cache_dir is not None:
            # OpenVINO fails on an unwritable cache only when it first writes a blob, naming its own sources
            config["CACHE_DIR"] = str(make_folder(self.options.cache_dir, "cache_dir"))
        model = read_model(self.path)
        try:
            compiled = core.compile_model(model, "CPU", config)
        except Exception as e:
            raise self._compile_error(core, model, config, e) from e
        self.core, self.model, self.config = core, model, config
        # requests run at once: 1 under the latency hint; under throughput, one per stream, where the batch can be
        # split (a static-batch artifact takes its batch whole, on one stream)
        self.parallel = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) \
            if self.options.hint == PerformanceHint.THROUGHPUT and model.inputs[0].get_partial_shape()[0].is_dynamic \
            else 1
        self.streams = int(compiled.get_property("NUM_STREAMS"))
        self.dynamic = _Compiled(compiled, self.parallel)
        self.static: dict[tuple[int, ...], _Compiled] = {}  # input shape -> its static compile
        self.output_names = [port_name(o) for o in compiled.outputs]
        # what the compiled model computes in (an openvino Type: f32, bf16, f16), whatever was asked
        self.execution_precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def _compile_error(self, core, model, config: dict, error: Exception) -> UserError:
        """The one line for a model OpenVINO read but could not compile. Where a precision was asked for, OpenVINO's
        conversion to it is the usual culprit (2026.4 fails on the full-size INT8 graphs in f16 while f32 and bf16
        compile): say so when the model compiles in f32."""
        wanted = config.get("INFERENCE_PRECISION_HINT")
        if wanted not in (None, ExecutionPrecision.F32.value):
            try:
                core.compile_model(model, "CPU", {**config, "INFERENCE_PRECISION_HINT": ExecutionPrecision.F32.value})
            except Exception:
                pass
            else:
                return UserError(f"OpenVINO {import_openvino().__version__.split('-')[0]} cannot compute "
                                 f"{self.path.name} in {wanted} ({_reason(error)}); it compiles in f32: choose another "
                                 "`inference_precision`")
        return UserError(f"OpenVINO cannot compile {self.path.name} ({_reason(error)}): is it a valid ONNX or IR?")

    def _compiled_for(self, shape: tuple[int, ...]) -> _Compiled:
        """The model compiled for exactly `shape`, compiled on first use; the dynamic model once
        OPENVINO_STATIC_SHAPES shapes have their own, and for a shape the model does not take."""
        compiled = self.static.get(shape)
        if compiled is not None or len(self.static) >= defaults.OPENVINO_STATIC_SHAPES:
            return compiled or self.dynamic
        # only dimensions the model leaves open are fixed (OpenVINO would also "reshape" a static image size)
        if not self.model.inputs[0].get_partial_shape().compatible(import_openvino().PartialShape(list(shape))):
            return self.dynamic
        model = self.model.clone()
        model.reshape({model.inputs[0]: list(shape)})
        try:
            compiled = _Compiled(self.core.compile_model(model, "CPU", self.config), self.parallel)
        except Exception:
            # the dynamic model compiled with the same settings: a static copy is only an optimisation, so a shape
            # OpenVINO cannot specialise runs on the dynamic model (remembered, not retried)
            compiled = self.dynamic
        self.static[shape] = compiled
        return compiled

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        n = min(len(x), self.parallel)
        if n == 1:
            return dict(zip(self.output_names, self._compiled_for(x.shape).infer([x])))
        # equal parts, the last padded with zeros: one static compile serves them all (unequal parts would need two
        # compiled models, whose streams would contend for the same cores), and a batch the streams do not divide
        # takes as long as the next one that does
        size = -(-len(x) // n)
        parts = -(-len(x) // size)
        padded = x if parts * size == len(x) else np.concatenate([x, np.zeros((parts * size - len(x), *x.shape[1:]),
                                                                             x.dtype)])
        outputs = self._compiled_for((size, *x.shape[1:])).infer(np.split(padded, parts))
        return {name: out[:len(x)] for name, out in zip(self.output_names, outputs)}

    def _deactivate(self) -> None:
        del self.dynamic, self.static, self.model, self.core

    def describe(self) -> dict:
        ov = import_openvino()
        return {"backend": self.name, "openvino": ov.__version__, "threads": self.threads or "default",
                "execution_precision": self.execution_precision, "performance_hint": str(self.options.hint),
                "streams": self.streams, "requests_per_batch": self.parallel}
