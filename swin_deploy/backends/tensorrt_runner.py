"""TensorRT engines: build from an ONNX whose precision is explicit, and run with torch CUDA tensors.

Thin on purpose: every numeric decision (float16 tensors, Q/DQ) is already in the ONNX, where
onnxruntime checks it on any CPU. TensorRT 10 vs 11:
  * 11 removed BuilderFlag.FP16/INT8 and the IInt8 calibrators; every network is strongly typed.
  * 10 builds the same graphs when the network is created with NetworkDefinitionCreationFlag.STRONGLY_TYPED;
    11 accepts the flag too (it is the only mode there), so one code path serves both.
`tensorrt` is imported lazily; without it the caller gets a one-line install hint (exit 2).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import defaults
from ..artifact import ArtifactInfo
from ..enums import Int8Target
from ..errors import UserError, missing_package
from .base import Runner, Timing


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise missing_package("tensorrt", "tensorrt") from e
    return trt


def builder_unavailable_reason() -> str | None:
    """Why a TensorRT Builder cannot be made here (None when it can): for skipping tests honestly."""
    try:
        trt = import_tensorrt()
    except UserError as e:
        return str(e)
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device: TensorRT needs an NVIDIA GPU"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # pragma: no cover - depends on the driver
        return f"trt.Builder failed: {e}"
    return None if builder is not None else "trt.Builder returned None"


@dataclass
class EngineInfo:
    """The sidecar JSON written beside every engine."""

    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    profile: dict[str, list[int]]  # min/opt/max input shapes
    source_onnx_sha256: str
    swin_deploy: str
    build_seconds: float
    artifact: dict[str, str]  # the source ONNX's swin-deploy metadata

    @staticmethod
    def path_for(engine: Path) -> Path:
        return engine.with_name(engine.name + ".json")


def _gpu() -> tuple[str, str]:
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"{major}.{minor}"


def engine_artifact_info(engine: Path) -> ArtifactInfo:
    sidecar = EngineInfo.path_for(Path(engine))
    if not sidecar.is_file():
        raise UserError(f"{engine} has no sidecar {sidecar.name}: rebuild it with swin-deploy build-engine")
    try:
        raw = json.loads(sidecar.read_text())
        info = ArtifactInfo.from_props(raw["artifact"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{sidecar} is unreadable ({type(e).__name__}): rebuild the engine with swin-deploy build-engine") from e
    if info is None:
        raise UserError(f"{sidecar} carries no swin-deploy metadata: rebuild the engine")
    info.max_batch = raw["profile"]["max"][0]
    return info


@dataclass
class BuildOptions:
    min_batch: int = defaults.ENGINE_MIN_BATCH
    opt_batch: int = defaults.ENGINE_OPT_BATCH
    max_batch: int = defaults.ENGINE_MAX_BATCH
    # (H, W) for a --dynamic-size ONNX; None: the artifact's range ends and its default size
    min_size: tuple[int, int] | None = None
    opt_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    workspace_bytes: int = defaults.WORKSPACE_BYTES
    timing_cache: Path | None = None
    optimization_level: int | None = None


def check_profile(info: ArtifactInfo, options: BuildOptions) -> None:
    if not 1 <= options.min_batch <= options.opt_batch <= options.max_batch:
        raise UserError("the profile needs 1 <= `min_batch` <= `opt_batch` <= `max_batch`")
    if info.fixed_batch is not None:
        b = info.fixed_batch
        if (options.min_batch, options.opt_batch, options.max_batch) != (b, b, b):
            raise UserError(f"this ONNX has a static batch of {b}: pass `min_batch` {b} `opt_batch` {b} `max_batch` {b}")
    elif info.max_batch and options.max_batch > info.max_batch:
        raise UserError(f"`max_batch` {options.max_batch} exceeds the batch the ONNX was exported and checked for "
                        f"({info.max_batch}): re-export with `max_batch` {options.max_batch}")
    sizes = [s for s in (options.min_size, options.opt_size, options.max_size) if s is not None]
    if sizes and info.dynamic_size is None:
        raise UserError("`min_size`/`opt_size`/`max_size` need an ONNX exported with `dynamic_size`")
    for size in sizes:
        info.check_size(size)
    if info.extra.get("target") == Int8Target.ONNXRUNTIME:
        raise UserError("this INT8 model targets onnxruntime (uint8 activations), which TensorRT does not accept: "
                        "quantize the fp32 ONNX again with `target` tensorrt")


def build_engine(onnx_path: Path, info: ArtifactInfo, source_sha256: str, out: Path, options: BuildOptions) -> EngineInfo:
    """Parse, build a strongly typed engine with one optimization profile, write engine + sidecar atomically."""
    from .. import __version__
    from ..fileio import atomic_output

    trt = import_tensorrt()
    check_profile(info, options)
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        detail = "; ".join(f"node {e.node_name() or e.node()}: {e.desc()}" for e in errors[:3])
        raise UserError(f"TensorRT cannot parse {onnx_path.name}: {detail}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    # TF32 is on by default (a math mode, not a type, so strong typing keeps it): float32 GEMMs and convs on
    # Ampere+ would round inputs to a 10-bit mantissa. Precision lives in the ONNX, so float32 means float32.
    config.clear_flag(trt.BuilderFlag.TF32)
    if options.optimization_level is not None:
        config.builder_optimization_level = options.optimization_level
    cache_bytes = options.timing_cache.read_bytes() if options.timing_cache and options.timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, False)
    lo, hi = (tuple(info.dynamic_size[:2]), tuple(info.dynamic_size[2:])) if info.dynamic_size else (None, None)
    hw = {"min": options.min_size or lo or info.img_size, "opt": options.opt_size or info.img_size,
          "max": options.max_size or hi or info.img_size}
    shape = {k: [b, 3, *hw[k]] for k, b in
             (("min", options.min_batch), ("opt", options.opt_batch), ("max", options.max_batch))}
    profile = builder.create_optimization_profile()
    profile.set_shape("input", shape["min"], shape["opt"], shape["max"])
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see its log above)")
    gpu, cc = _gpu()
    meta = EngineInfo(tensorrt=trt.__version__, gpu=gpu, compute_capability=cc, precision=info.precision,
                      profile=shape, source_onnx_sha256=source_sha256, swin_deploy=__version__,
                      build_seconds=round(time.perf_counter() - start, 1), artifact=info.to_props())
    with atomic_output(out, suffix=".engine") as tmp_engine, atomic_output(EngineInfo.path_for(out)) as tmp_meta:
        tmp_engine.write_bytes(bytes(serialized))
        tmp_meta.write_text(json.dumps(asdict(meta), indent=2))
    if options.timing_cache:
        with atomic_output(options.timing_cache) as tmp_cache:
            tmp_cache.write_bytes(bytes(cache.serialize()))
    return meta


class TensorRTRunner(Runner):
    """Runs an engine with torch CUDA tensors on a torch stream; CUDA events time the compute."""

    name = "tensorrt"

    def __init__(self, engine: str | Path):
        super().__init__()
        self.path = Path(engine)

    def _activate(self) -> None:
        trt = import_tensorrt()
        import torch

        sidecar = json.loads(EngineInfo.path_for(self.path).read_text()) if EngineInfo.path_for(self.path).is_file() else {}
        if not torch.cuda.is_available():
            raise UserError("TensorRT engines need an NVIDIA GPU, and there is none here")
        gpu, cc = _gpu()
        if sidecar and (sidecar["tensorrt"] != trt.__version__ or sidecar["compute_capability"] != cc):
            raise UserError(f"{self.path.name} was built with TensorRT {sidecar['tensorrt']} for {sidecar['gpu']} "
                            f"(sm {sidecar['compute_capability']}); this is TensorRT {trt.__version__} on {gpu} "
                            f"(sm {cc}): rebuild it with swin-deploy build-engine")
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise UserError(f"TensorRT cannot load {self.path}: rebuild it with swin-deploy build-engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.stream = torch.cuda.Stream()
        self.trt = trt

    def _run(self, x: np.ndarray):
        import torch

        trt = self.trt
        with torch.cuda.stream(self.stream):
            x_dev = torch.from_numpy(x).to("cuda", non_blocking=True)
            self.context.set_input_shape("input", tuple(x.shape))
            self.context.set_tensor_address("input", x_dev.data_ptr())
            outs = {}
            for name in self.output_names:  # I/O stay float32 at every precision (the ONNX keeps them so)
                if self.engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                    raise UserError(f"{self.path.name} has a non-float32 output '{name}': build it from a swin-deploy ONNX")
                outs[name] = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=torch.float32, device="cuda")
                self.context.set_tensor_address(name, outs[name].data_ptr())
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            end.record(self.stream)
            host = {k: v.cpu().numpy() for k, v in outs.items()}  # synchronizes the stream
        return host, start.elapsed_time(end)

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._run(x)[0]

    def infer_timed(self, x: np.ndarray) -> tuple[dict[str, np.ndarray], Timing]:
        t0 = time.perf_counter()
        y, compute_ms = self._run(np.ascontiguousarray(x, dtype=np.float32))
        return y, Timing(total_ms=(time.perf_counter() - t0) * 1000, compute_ms=compute_ms)

    def _deactivate(self) -> None:
        del self.context, self.engine, self.runtime

    def describe(self) -> dict:
        return {"backend": self.name, "tensorrt": self.trt.__version__, "engine": str(self.path)}
