"""ONNX -> strongly typed network -> builder config with one optimization profile -> serialized engine + sidecar.

Every step is a function of its options; `build_engine` chains them and writes engine and sidecar atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import onnx

from ... import defaults
from ...artifact import ORT_ONLY_INT8, ArtifactInfo, EngineInfo
from ...errors import UserError
from ...parsing import as_hw
from ...precision.graph import io_names
from . import import_tensorrt


@dataclass
class BuildOptions:
    # None: decided for the ONNX by check_profile (a static batch's own; ENGINE_*_BATCH within an exported max batch)
    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    # (H, W) for a --dynamic-size ONNX; None: the artifact's range ends and its default size
    min_size: tuple[int, int] | None = None
    opt_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    workspace_bytes: int = defaults.WORKSPACE_BYTES
    timing_cache: Path | None = None
    optimization_level: int | None = None

    def __post_init__(self) -> None:
        for name in ("min_size", "opt_size", "max_size"):
            setattr(self, name, as_hw(getattr(self, name), name))


def check_profile(info: ArtifactInfo, options: BuildOptions) -> BuildOptions:
    """`options` with the batches left unset decided for the ONNX `info` describes (its static batch; else the
    defaults, the max and opt batch within the max batch it was exported with), once they are a profile it
    can take."""
    if info.fixed_batch is not None:
        options = replace(options, **{f"{k}_batch": info.fixed_batch for k in ("min", "opt", "max")
                                      if getattr(options, f"{k}_batch") is None})
    else:
        top = min(defaults.ENGINE_MAX_BATCH, info.max_batch or defaults.ENGINE_MAX_BATCH)
        low = defaults.ENGINE_MIN_BATCH if options.min_batch is None else options.min_batch
        high = max(top, low, options.opt_batch or 0) if options.max_batch is None else options.max_batch
        opt = max(low, min(defaults.ENGINE_OPT_BATCH, high)) if options.opt_batch is None else options.opt_batch
        options = replace(options, min_batch=low, opt_batch=opt, max_batch=high)
    if not 1 <= options.min_batch <= options.opt_batch <= options.max_batch:
        raise UserError(f"the profile needs 1 <= `min_batch` <= `opt_batch` <= `max_batch`, not {options.min_batch}, "
                        f"{options.opt_batch}, {options.max_batch} (those not given are defaults)")
    if info.fixed_batch is not None:
        b = info.fixed_batch
        if (options.min_batch, options.opt_batch, options.max_batch) != (b, b, b):
            raise UserError(f"this ONNX has a static batch of {b}: pass `min_batch` {b} `opt_batch` {b} `max_batch` {b}")
    elif info.max_batch and options.max_batch > info.max_batch:
        raise UserError(f"`max_batch` {options.max_batch} exceeds the max batch the ONNX was exported with "
                        f"({info.max_batch}): re-export with `max_batch` {options.max_batch}")
    sizes = [s for s in (options.min_size, options.opt_size, options.max_size) if s is not None]
    if sizes and info.dynamic_size is None:
        raise UserError("`min_size`/`opt_size`/`max_size` need an ONNX exported with `dynamic_size`")
    for size in sizes:
        info.check_size(size)
    if sizes:  # TensorRT refuses a profile whose sides do not grow from min to opt to max, after the parse
        hw = list(profile_sizes(info, options).values())
        if any(not hw[0][i] <= hw[1][i] <= hw[2][i] for i in (0, 1)):
            shown = ", ".join(f"{h}x{w}" for h, w in hw)
            raise UserError(f"the profile needs `min_size` <= `opt_size` <= `max_size` in each side, not {shown} "
                            "(those not given are the ONNX's range ends and its size within them)")
    if info.onnxruntime_only:
        raise UserError(ORT_ONLY_INT8)
    return options


def profile_sizes(info: ArtifactInfo, options: BuildOptions) -> dict[str, tuple[int, int]]:
    """min/opt/max (H, W): those given, else a dynamic-size ONNX's range ends and its default size (within min..max,
    as the default opt batch is)."""
    lo, hi = (tuple(info.dynamic_size[:2]), tuple(info.dynamic_size[2:])) if info.dynamic_size else (None, None)
    low, high = tuple(options.min_size or lo or info.img_size), tuple(options.max_size or hi or info.img_size)
    opt = options.opt_size or tuple(max(a, min(d, b)) for d, a, b in zip(info.img_size, low, high))
    return {"min": low, "opt": tuple(opt), "max": high}


def profile_shapes(info: ArtifactInfo, options: BuildOptions) -> dict[str, list[int]]:
    """min/opt/max input shapes (the artifact's layout: NCHW, or NHWC for channels-last pixels)."""
    hw = profile_sizes(info, options)
    batch = {"min": options.min_batch, "opt": options.opt_batch, "max": options.max_batch}
    return {k: list(info.input_shape(batch[k], hw[k])) for k in ("min", "opt", "max")}


def network_from_onnx(trt, builder, logger, onnx_path: Path):
    """A strongly typed network parsed from the ONNX (types from the ONNX); the parser's first errors on failure."""
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        detail = "; ".join(f"node {e.node_name() or e.node()}: {e.desc()}" for e in errors[:3])
        raise UserError(f"TensorRT cannot parse {Path(onnx_path).name}: {detail}")
    return network, parser


def builder_config(trt, builder, network, options: BuildOptions, shapes: dict[str, list[int]]):
    """The builder config: workspace, TF32 off, optimization level, timing cache, one profile on the network's input."""
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
    if network.num_inputs != 1:
        raise UserError(f"the network has {network.num_inputs} inputs; a swin-deploy ONNX has one")
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    return config, cache


def cuda_device() -> tuple[str, str]:
    """(GPU name, compute capability) of device 0."""
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    return torch.cuda.get_device_name(0), f"{major}.{minor}"


def build_engine(onnx_path: Path, info: ArtifactInfo, source_sha256: str, out: Path, options: BuildOptions,
                 device: tuple[str, str] | None = None) -> EngineInfo:
    """Parse, build a strongly typed engine with one optimization profile, write engine + sidecar (and the timing
    cache) atomically. `device`: the (GPU, compute capability) recorded; default: CUDA device 0."""
    from ... import __version__
    from ...fileio import atomic_output

    trt = import_tensorrt()
    options = check_profile(info, options)
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = network_from_onnx(trt, builder, logger, onnx_path)
    shapes = profile_shapes(info, options)
    config, cache = builder_config(trt, builder, network, options, shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see its log above)")
    gpu, cc = device or cuda_device()
    inputs, outputs = io_names(onnx.load(str(onnx_path), load_external_data=False).graph)  # names the parser kept
    meta = EngineInfo(tensorrt=trt.__version__, gpu=gpu, compute_capability=cc, precision=info.precision,
                      profile=shapes, source_onnx_sha256=source_sha256, swin_deploy=__version__,
                      build_seconds=round(time.perf_counter() - start, 1), artifact=info.to_props(), inputs=inputs,
                      outputs=outputs)
    with atomic_output(out, suffix=".engine") as tmp_engine, atomic_output(EngineInfo.path_for(out)) as tmp_meta:
        tmp_engine.write_bytes(bytes(serialized))
        tmp_meta.write_text(meta.to_json())
    if options.timing_cache:
        with atomic_output(options.timing_cache) as tmp_cache:
            tmp_cache.write_bytes(bytes(cache.serialize()))
    return meta
