"""Triton Inference Server model repositories: a model folder from an artifact, and its validation.

    DIR/NAME/config.pbtxt          platform, max_batch_size, I/O (dims without the batch), instances, batching
    DIR/NAME/labels.txt            class names, one per line (the classification extension returns them)
    DIR/NAME/VERSION/model.onnx    or model.plan (+ model.plan.json, swin-deploy's engine sidecar),
                                   or model.xml + model.bin (OpenVINO IR) for Triton's OpenVINO backend

The config is built as Triton's own `ModelConfig` protobuf (tritonclient ships the generated module) and written
in its text format, then read back and checked the way `check_model` checks any folder: parsed by the protobuf,
then compared with the artifact (name, platform, dims, dtypes, batch limits, the engine's profile).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import defaults
from ..artifact import (
    ORT_ONLY_INT8,
    ArtifactInfo,
    EngineInfo,
    artifact_info,
    external_data_files,
    ir_weights,
    kind_of,
    load_onnx,
    read_sidecar,
    write_described_copy,
)
from ..enums import PerformanceHint, Precision, Runtime, TritonKind
from ..errors import NoMetadata, UserError, missing_package, require_at_least, require_file
from ..fileio import atomic_directory, make_folder
from ..parsing import one_or_many

CONFIG = "config.pbtxt"
LABELS = "labels.txt"
PLATFORMS = {"model.onnx": "onnxruntime_onnx", "model.plan": "tensorrt_plan"}
OPENVINO_BACKEND, OPENVINO_DEFAULT_FILE = "openvino", "model.xml"
ORT_TENSORRT_MODES = {"fp16": "FP16", "int8": "INT8"}
TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8"}
ONNX_DTYPES = {1: "float32", 10: "float16", 2: "uint8", 3: "int8"}  # onnx.TensorProto element types


def model_config_pb2():
    try:
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError) as e:  # tritonclient without its grpc part raises RuntimeError
        raise missing_package("tritonclient[grpc]", "triton") from e
    return model_config_pb2


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # float32 | float16 | uint8 | int8
    shape: tuple[int, ...]  # with the batch dimension; -1 where the artifact takes any size


@dataclass
class ArtifactIO:
    """What a model file takes and gives, as Triton needs it."""

    inputs: list[Tensor]
    outputs: list[Tensor]
    batch: tuple[int, int] | None  # (min, max) batch for a batchable artifact; None: fixed batch (the shape's first dim)
    engine_profile: dict[str, list[int]] | None = None  # a TensorRT engine's min/opt/max input shapes


def onnx_io(path: Path, info: ArtifactInfo) -> ArtifactIO:
    """I/O of an ONNX, read from its graph (symbolic dims -1)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def tensors(values) -> list[Tensor]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
            out.append(Tensor(v.name, ONNX_DTYPES.get(t.elem_type, f"onnx type {t.elem_type}"), dims))
        return out

    inputs = tensors(v for v in graph.input if v.name not in {i.name for i in graph.initializer})
    batch = None if info.static_batch else (1, info.max_batch or 0)  # 0: no limit recorded
    return ArtifactIO(inputs, tensors(graph.output), batch)


def engine_io(path: Path, info: ArtifactInfo) -> ArtifactIO:
    """I/O of a TensorRT engine from its sidecar (profile) and the source ONNX's metadata."""
    sidecar = read_sidecar(path)
    profile = sidecar.profile
    lo, hi = profile["min"], profile["max"]
    shape = tuple(a if a == b else -1 for a, b in zip(lo, hi))
    dtype = "uint8" if info.pixels else "float32"
    dims = info.output_dims()
    names = sidecar.outputs if len(sidecar.outputs) == len(dims) else list(dims)
    outputs = [Tensor(name, "float32", (shape[0], *d)) for name, d in zip(names, dims.values())]
    batch = None if lo[0] == hi[0] and info.static_batch else (lo[0], hi[0])
    return ArtifactIO([Tensor(sidecar.inputs[0], dtype, shape)], outputs, batch, profile)


def openvino_io(path: Path, info: ArtifactInfo) -> ArtifactIO:
    """I/O of an IR, or of an ONNX served by Triton's OpenVINO backend, as OpenVINO reads it (dynamic dims -1): that
    backend compares output dims exactly with what OpenVINO infers, which can be static where the ONNX's own shapes
    are symbolic."""
    from ..backends.openvino_runner import read_model

    model = read_model(path)
    names = {"f32": "float32", "f16": "float16", "u8": "uint8", "i8": "int8"}

    def tensors(ports) -> list[Tensor]:
        out = []
        for port in ports:
            dims = tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())
            # the backend knows a port by get_any_name() alone (its ValidateInputs/ValidateOutputs), whatever other
            # names OpenVINO gives it: a config naming another is refused at load
            out.append(Tensor(port.get_any_name(), names.get(port.get_element_type().get_type_name(),
                                                         str(port.get_element_type())), dims))
        return out

    batch = None if info.static_batch else (1, info.max_batch or 0)
    return ArtifactIO(tensors(model.inputs), tensors(model.outputs), batch)


def read_io(path: Path, variant: str | None = None, openvino: bool = False, *,
            fallback_variant: str | None = None) -> tuple[ArtifactInfo, ArtifactIO]:
    """The artifact's metadata and I/O as the backend serving it sees them (`openvino`: Triton's OpenVINO backend);
    `variant` and `fallback_variant` as artifact_info takes them."""
    path = Path(path)
    info = artifact_info(path, variant, fallback_variant=fallback_variant)
    if kind_of(path) == "engine":
        return info, engine_io(path, info)
    return info, (openvino_io(path, info) if openvino or kind_of(path) == "ir" else onnx_io(path, info))


@dataclass
class TritonOptions:
    name: str | None = None  # default: the artifact's file name, made a valid model name
    version: int = 1
    max_batch: int | None = None  # default: the engine profile's max, the ONNX's checked max, or 32
    instances: int = 1
    kind: TritonKind | None = None  # default: see default_kind
    runtime: Runtime | None = None  # for an ONNX: onnxruntime (default) or OpenVINO; an IR is always OpenVINO
    threads: int | None = None  # OpenVINO: INFERENCE_NUM_THREADS
    streams: int | None = None  # OpenVINO: NUM_STREAMS
    performance_hint: PerformanceHint | None = None  # OpenVINO: PERFORMANCE_HINT (default latency)
    bf16: bool = False  # OpenVINO: HINT_BF16 (the backend's one precision parameter)
    # OpenVINO: compile for max_batch alone and pad smaller batches (SKIP_OV_DYNAMIC_BATCHSIZE, ENABLE_BATCH_PADDING);
    # a static shape ran 10-25% faster on Sapphire Rapids (benchmarks/RESULTS.md, "OpenVINO: static shapes")
    static_batch: bool = False
    dynamic_batching: bool | None = None  # default: on where the artifact takes batches
    preferred_batch: list[int] = field(default_factory=list)
    max_queue_delay_us: int = defaults.TRITON_MAX_QUEUE_DELAY_US
    ort_tensorrt: Precision | None = None  # fp16 | int8: onnxruntime's TensorRT accelerator (ONNX on GPU)
    overwrite: bool = False
    variant: str | None = None  # what model an ONNX or IR without swin-deploy metadata is

    def __post_init__(self) -> None:
        self.preferred_batch = list(one_or_many(self.preferred_batch) or ())
        if self.runtime is not None:
            self.runtime = Runtime.parse(self.runtime, "runtime")
        if self.kind is not None:
            self.kind = TritonKind.parse(self.kind, "kind")
        if self.performance_hint is not None:
            self.performance_hint = PerformanceHint.parse(self.performance_hint, "performance_hint")
        require_at_least("threads", self.threads, 1)
        require_at_least("streams", self.streams, 1)
        if self.ort_tensorrt is not None:
            self.ort_tensorrt = Precision.parse(self.ort_tensorrt, "ort_tensorrt")
            if self.ort_tensorrt not in ORT_TENSORRT_MODES:
                raise UserError(f"`ort_tensorrt` takes fp16 or int8, not {self.ort_tensorrt}")

    def check_runtime(self, runtime: Runtime | None) -> None:
        """The OpenVINO backend's own options go with that backend only (an ONNX with `runtime` openvino, or an IR)."""
        openvino_only = {"threads": self.threads, "streams": self.streams, "performance_hint": self.performance_hint,
                         "bf16": self.bf16 or None, "static_batch": self.static_batch or None}
        given = [k for k, v in openvino_only.items() if v is not None]
        if given and runtime != Runtime.OPENVINO:
            raise UserError(f"{' and '.join(f'`{k}`' for k in given)} configure{'s' * (len(given) == 1)} Triton's "
                            "OpenVINO backend: add `runtime` openvino, or serve an OpenVINO IR")


@dataclass
class TritonResult:
    folder: Path
    config_text: str
    model_file: Path
    labels: Path | None
    precision_note: str | None = None  # what precision the server will compute in, where the config cannot say


def model_name(artifact: Path) -> str:
    """A model name Triton and a file system both take: the file's stem with other characters as '_'."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", artifact.stem).strip("_")
    return name or "model"


def default_kind(runtime: Runtime | None, ort_tensorrt: bool) -> TritonKind:
    """Where instances run unless `kind` says: OpenVINO's backend on the CPU, a TensorRT plan (runtime None) and
    onnxruntime's TensorRT accelerator on the GPU, and onnxruntime otherwise wherever the server has (KIND_AUTO, what
    Triton itself does without a kind: its GPUs, else its CPU), so one folder loads on a GPU server and a CPU-only one
    alike, where KIND_GPU fails to load without a GPU."""
    if runtime == Runtime.OPENVINO:
        return TritonKind.CPU
    return TritonKind.GPU if runtime is None or ort_tensorrt else TritonKind.AUTO


def build_config(name: str, info: ArtifactInfo, io: ArtifactIO, model_file: str, options: TritonOptions,
                 has_labels: bool):
    """The ModelConfig protobuf for the artifact (UserError for options the artifact cannot honour)."""
    pb = model_config_pb2()
    o = options
    engine = model_file == "model.plan"
    for option, minimum in (("version", 1), ("instances", 1), ("max_queue_delay_us", 0)):
        require_at_least(option, getattr(o, option), minimum)
    if o.runtime == Runtime.OPENVINO:
        config = pb.ModelConfig(name=name, backend=OPENVINO_BACKEND)
        if model_file != OPENVINO_DEFAULT_FILE:
            config.default_model_filename = model_file
        _openvino_parameters(config, o)
    else:
        config = pb.ModelConfig(name=name, platform=PLATFORMS[model_file])
    if io.batch is None:  # a fixed batch: Triton sees whole shapes and cannot batch requests
        if o.dynamic_batching or o.preferred_batch or o.max_batch or o.static_batch:
            raise UserError("this artifact has a fixed batch: drop `dynamic_batching`, `preferred_batch`, "
                            "`max_batch` and `static_batch`, or export/build it with a dynamic batch")
        config.max_batch_size = 0
        strip = 0
    else:
        lo, hi = io.batch
        top = o.max_batch or hi or defaults.TRITON_MAX_BATCH
        require_at_least("max_batch", o.max_batch, 1)
        if o.max_batch is not None and hi and o.max_batch > hi:
            where = "the engine profile's max batch" if engine else "the max batch the ONNX was exported with"
            raise UserError(f"`max_batch` {o.max_batch} is outside 1..{hi} ({where}): pass at most {hi}")
        dynamic = o.dynamic_batching if o.dynamic_batching is not None else True
        if dynamic and lo != 1:
            raise UserError(f"the engine's profile starts at batch {lo}; Triton's dynamic batcher sends any batch from "
                            "1: rebuild with `min_batch` 1 or pass `dynamic_batching` off")
        if any(b < 1 or b > top for b in o.preferred_batch):
            raise UserError(f"`preferred_batch` sizes must be between 1 and the max batch {top}")
        if o.preferred_batch and not dynamic:
            raise UserError("`preferred_batch` goes with dynamic batching")
        config.max_batch_size = top
        if dynamic:
            config.dynamic_batching.preferred_batch_size.extend(sorted(set(o.preferred_batch)))
            config.dynamic_batching.max_queue_delay_microseconds = o.max_queue_delay_us
        strip = 1
    for t in io.inputs:
        config.input.add(name=t.name, data_type=TRITON_DTYPES[t.dtype], dims=t.shape[strip:])
    for t in io.outputs:
        out = config.output.add(name=t.name, data_type=TRITON_DTYPES[t.dtype], dims=t.shape[strip:])
        if has_labels and len(io.outputs) == 1:  # a classifier's one output is its logits, whatever it is named
            out.label_filename = LABELS
    if engine and o.kind != TritonKind.GPU:
        raise UserError(f"a TensorRT plan runs on the GPU only: drop `kind` {o.kind}, or serve the ONNX")
    if o.runtime == Runtime.OPENVINO and o.kind != TritonKind.CPU:
        raise UserError(f"Triton's OpenVINO backend runs on the CPU only: drop `kind` {o.kind}")
    config.instance_group.add(count=o.instances, kind={TritonKind.GPU: pb.ModelInstanceGroup.KIND_GPU,
                                                       TritonKind.CPU: pb.ModelInstanceGroup.KIND_CPU,
                                                       TritonKind.AUTO: pb.ModelInstanceGroup.KIND_AUTO}[o.kind])
    if o.ort_tensorrt is not None:
        _ort_tensorrt(config, info, engine, o)
    return config


def _openvino_parameters(config, o: TritonOptions) -> None:
    """The OpenVINO backend's documented parameters (its README: PERFORMANCE_HINT, NUM_STREAMS, INFERENCE_NUM_THREADS,
    HINT_BF16, SKIP_OV_DYNAMIC_BATCHSIZE, ENABLE_BATCH_PADDING). It has no float32 switch: without HINT_BF16 OpenVINO
    still picks its own precision (bf16 on CPUs with BF16), which `verify --backend openvino --inference-precision
    bf16` gates ahead of time."""
    values = {"PERFORMANCE_HINT": (o.performance_hint or PerformanceHint.LATENCY).value.upper(),
              "NUM_STREAMS": str(o.streams or 1), "INFERENCE_NUM_THREADS": o.threads and str(o.threads),
              "HINT_BF16": "YES" if o.bf16 else None,
              "SKIP_OV_DYNAMIC_BATCHSIZE": "YES" if o.static_batch else None,
              "ENABLE_BATCH_PADDING": "YES" if o.static_batch else None}
    for key, value in values.items():
        if value is not None:
            config.parameters[key].string_value = value


def _ort_tensorrt(config, info: ArtifactInfo, engine: bool, o: TritonOptions) -> None:
    if engine or o.kind != TritonKind.GPU or o.runtime == Runtime.OPENVINO:
        raise UserError("`ort_tensorrt` is onnxruntime's TensorRT accelerator: it goes with an ONNX on `kind` gpu "
                        "(its default)")
    if info.onnxruntime_only:
        raise UserError(f"{ORT_ONLY_INT8}, or serve it without `ort_tensorrt`")
    if o.ort_tensorrt == Precision.INT8 and info.precision != Precision.INT8:
        raise UserError("`ort_tensorrt` int8 needs an INT8 (Q/DQ) ONNX: quantize it first, or use fp16")
    accel = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
    accel.parameters["precision_mode"] = ORT_TENSORRT_MODES[o.ort_tensorrt]
    accel.parameters["max_workspace_size_bytes"] = str(defaults.WORKSPACE_BYTES)


def write_model(artifact: Path, repo: Path, options: TritonOptions | None = None) -> TritonResult:
    """DIR/NAME for `artifact` (see the module doc), written in a temporary folder beside it and renamed into place
    only when complete and valid (fileio.atomic_directory); an existing model folder is replaced only with
    `overwrite`."""
    from google.protobuf import text_format

    from ..predict import class_names

    o = options or TritonOptions()
    artifact = Path(artifact)
    require_file(artifact, "pass an .onnx, .engine or OpenVINO .xml artifact")
    repo = Path(repo)
    if repo.exists() and not repo.is_dir():
        raise UserError(f"model repository {repo} is a file, not a folder: pass another `repo`")
    name = model_name(artifact) if o.name is None else o.name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise UserError(f"model name '{name}' must be letters, digits, '_', '-' or '.' (not starting with '.'): "
                        "pass another `name`")
    target = repo / name
    if target.exists() and not o.overwrite:
        raise UserError(f"{target} exists: pass `overwrite` to replace it, or another `name`")
    engine, ir = kind_of(artifact) == "engine", kind_of(artifact) == "ir"
    if (engine or ir) and o.runtime is not None and o.runtime != (Runtime.OPENVINO if ir else None):
        raise UserError(f"{artifact.name} runs on {'OpenVINO' if ir else 'TensorRT'} only: drop `runtime`")
    runtime = Runtime.OPENVINO if ir else None if engine else (o.runtime or Runtime.ONNXRUNTIME)
    o.check_runtime(runtime)
    o = replace(o, runtime=runtime, kind=o.kind or default_kind(runtime, o.ort_tensorrt is not None))
    info, io = read_io(artifact, o.variant, openvino=runtime == Runtime.OPENVINO)
    labels = None if info.headless else class_names(info)[0]
    model_file = "model.plan" if engine else OPENVINO_DEFAULT_FILE if ir else "model.onnx"
    config = build_config(name, info, io, model_file, o, labels is not None)
    text = text_format.MessageToString(config)
    make_folder(repo, "repo")  # only now that everything checked out: a refused run creates nothing
    with atomic_directory(target) as staging:
        (staging / CONFIG).write_text(text)
        if labels is not None:
            (staging / LABELS).write_text("".join(f"{label}\n" for label in labels))
        version = staging / str(o.version)
        version.mkdir()
        if engine:
            shutil.copyfile(artifact, version / model_file)
            shutil.copyfile(EngineInfo.path_for(artifact), EngineInfo.path_for(version / model_file))
        elif o.variant is not None:
            # someone else's ONNX or IR: the served copy carries the variant's metadata, so the folder describes
            # itself (its check, and anything reading it later, needs no `variant`)
            write_described_copy(artifact, version / model_file, info)
        else:
            shutil.copyfile(artifact, version / model_file)
            if ir:
                shutil.copyfile(ir_weights(artifact), ir_weights(version / model_file))
            else:  # an ONNX with external data: its weight files go beside it, where onnxruntime looks for them
                for weights in external_data_files(load_onnx(artifact, load_weights=False)):
                    (version / weights).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(artifact.parent / weights, version / weights)
        findings = check_model(staging, name=name)
        if findings:  # what we wrote must pass our own check: a bug in swin-deploy otherwise
            raise RuntimeError(f"the written model folder fails its check: {findings[0]}")
    return TritonResult(target, text, target / str(o.version) / model_file,
                        target / LABELS if labels is not None else None, _served_precision(info, o))


def _served_precision(info: ArtifactInfo, o: TritonOptions) -> str | None:
    """For a float artifact on Triton's OpenVINO backend: the backend has no float32 switch, so the server computes
    in OpenVINO's own precision (bf16 on CPUs with BF16), not in the f32 `verify` gates by default. An INT8
    artifact is verified at OpenVINO's own choice already."""
    if o.runtime != Runtime.OPENVINO or info.precision == Precision.INT8:
        return None
    where = "bf16 (HINT_BF16)" if o.bf16 else "OpenVINO's own: bf16 on BF16 CPUs, no f32 switch"
    return f"{where}; gate it: verify --backend openvino --inference-precision bf16"


class NotChecked(UserError):
    """A model folder swin-deploy does not check: one served by a runtime it does not write for (Python, PyTorch,
    TensorFlow, an ensemble)."""


@dataclass
class RepositoryCheck:
    findings: dict[Path, list[str]]  # per model folder checked (empty list: valid)
    skipped: dict[Path, str]  # per model folder of the repository that is not swin-deploy's to check: why


def check_repository(folder: Path, variant: str | None = None) -> RepositoryCheck:
    """Findings per model folder: `folder` itself when it is one (has a config.pbtxt), else each model folder of the
    repository it is (as Triton's --model-repository takes it). A repository's models of other runtimes, and those
    without swin-deploy metadata when no `variant` says what they are, are skipped with the reason: a repository
    serves other models beside Swin ones. A model folder given alone that cannot be checked is a UserError."""
    from ..models.registry import get_config

    folder = Path(folder)
    if variant is not None:
        get_config(variant)  # an unknown name is the user's slip, not a finding in each model it would apply to
    if not folder.is_dir() or (folder / CONFIG).is_file():
        return RepositoryCheck({folder: check_model(folder, variant=variant)}, {})
    models = sorted(d for d in folder.iterdir() if (d / CONFIG).is_file())
    if not models:
        raise UserError(f"{folder} has no {CONFIG} and no model folders with one: pass a model folder (DIR/NAME) or "
                        "a repository, or write one with swin-deploy triton")
    result = RepositoryCheck({}, {})
    for model in models:
        try:
            result.findings[model] = check_model(model, variant=variant)
        except (NotChecked, NoMetadata) as e:
            result.skipped[model] = str(e)
    if not result.findings:
        raise UserError(f"no model in {folder} is one swin-deploy checks ({next(iter(result.skipped.values()))}): "
                        "pass a repository with onnxruntime, TensorRT or OpenVINO models of swin-deploy artifacts")
    return result


# the model file each runtime swin-deploy serves loads by default, by the config's platform or backend (Triton takes
# either: `platform: "onnxruntime_onnx"` or `backend: "onnxruntime"`)
BACKEND_OF_PLATFORM = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt"}
SERVED_FILES = {**{platform: file for file, platform in PLATFORMS.items()},
                **{BACKEND_OF_PLATFORM[platform]: file for file, platform in PLATFORMS.items()},
                OPENVINO_BACKEND: OPENVINO_DEFAULT_FILE}


def _served_file(config, folder: Path) -> tuple[str, list[str]]:
    """(the model file the config's runtime loads, findings on how the config names that runtime); NotChecked for a
    runtime swin-deploy does not serve."""
    runtime = config.platform or config.backend
    if runtime not in SERVED_FILES:
        said = f'platform "{config.platform}"' if config.platform else (f'backend "{config.backend}"' if config.backend
                                                                          else "no platform or backend")
        raise NotChecked(f"{folder.name} has {said}: swin-deploy checks the onnxruntime, TensorRT and OpenVINO "
                         "models it writes")
    findings = []
    if config.platform and config.backend and BACKEND_OF_PLATFORM.get(config.platform) != config.backend:
        findings.append(f'platform "{config.platform}" and backend "{config.backend}" name different runtimes: keep '
                        "one of them")
    return config.default_model_filename or SERVED_FILES[runtime], findings


def check_model(folder: Path, name: str | None = None, variant: str | None = None) -> list[str]:
    """Findings for a Triton model folder (empty: valid), one line each: what is wrong and what to do.

    `name`: the model name the folder will have (default: the folder's name); `variant`: what model a model file
    without swin-deploy metadata is (without it, NoMetadata). NotChecked for a runtime swin-deploy does not serve."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder: pass a model folder of a Triton repository (DIR/NAME)")
    config_path = folder / CONFIG
    if not config_path.is_file():
        raise UserError(f"{folder} has no {CONFIG}: pass a model folder (DIR/NAME), or write one with swin-deploy triton")
    try:
        config = text_format.Parse(config_path.read_text(), pb.ModelConfig())
    except text_format.ParseError as e:
        return [f"{CONFIG}: not a valid Triton ModelConfig ({e}): fix the line named"]
    served, findings = _served_file(config, folder)
    openvino = (config.platform or config.backend) == OPENVINO_BACKEND
    name = name or folder.name
    if config.name and config.name != name:
        findings.append(f"name '{config.name}' differs from the folder '{name}': Triton refuses it; make them equal")
    # by number, as Triton's version policy orders them (its default serves the highest): "10" comes after "9"
    versions = sorted((d for d in folder.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    if not versions:
        return [*findings, "no version folder (e.g. 1/) with the model file: add one"]
    if not (versions[-1] / served).is_file():
        others = [f for f in SERVED_FILES.values() if f != served and (versions[-1] / f).is_file()]
        held = f" (it holds {others[0]}: serve that with platform \"{PLATFORMS[others[0]]}\")" \
            if others and others[0] in PLATFORMS else ""
        return [*findings, f"version {versions[-1].name} has no {served} for {config.platform or config.backend}"
                           f"{held}: add it"]
    if openvino:
        if kind_of(served) == "ir" and not ir_weights(versions[-1] / served).is_file():
            return [*findings, f"{served} has no {ir_weights(Path(served)).name} beside it: copy the weights"]
        if any(g.kind != pb.ModelInstanceGroup.KIND_CPU for g in config.instance_group):
            findings.append("Triton's OpenVINO backend runs on the CPU: use instance_group kind KIND_CPU")
    model_file = versions[-1] / served
    try:
        # `variant` says what the models without metadata are; those with it are what it says
        info, io = read_io(model_file, openvino=openvino, fallback_variant=variant)
    except NoMetadata:
        raise
    except UserError as e:
        return [*findings, f"{model_file.name}: {e}"]
    findings += _check_io(config, io)
    findings += _check_batching(config, io, pb)
    for out in config.output:
        if out.label_filename and not (folder / out.label_filename).is_file():
            findings.append(f"output {out.name}: label file {out.label_filename} is missing: add it or drop label_filename")
        elif out.label_filename:
            lines = (folder / out.label_filename).read_text().splitlines()
            if len(lines) != info.num_classes:
                findings.append(f"{out.label_filename} has {len(lines)} lines for {info.num_classes} classes: one per class")
    if kind_of(model_file) == "engine" and any(g.kind == pb.ModelInstanceGroup.KIND_CPU for g in config.instance_group):
        findings.append("instance_group KIND_CPU with a TensorRT plan: plans run on the GPU; use KIND_GPU")
    return findings


def _check_io(config, io: ArtifactIO) -> list[str]:
    findings = []
    strip = 1 if config.max_batch_size > 0 else 0
    if strip and io.batch is None:
        findings.append(f"max_batch_size {config.max_batch_size} for a model with a fixed batch: set max_batch_size 0 "
                        "and give full dims")
    for kind, declared, actual in (("input", config.input, io.inputs), ("output", config.output, io.outputs)):
        by_name = {t.name: t for t in actual}
        for d in declared:
            t = by_name.get(d.name)
            if t is None:
                findings.append(f"{kind} '{d.name}' is not one of the model's {kind}s ({', '.join(by_name)}): rename it")
                continue
            want_type = TRITON_DTYPES.get(t.dtype)
            got_type = model_config_pb2().DataType.Name(d.data_type)
            if got_type != want_type:
                findings.append(f"{kind} '{d.name}': data_type {got_type}, the model's is {want_type}: use {want_type}")
            want = list(t.shape[strip:])
            if list(d.dims) != want:
                with_batch = strip and list(d.dims) == list(t.shape)
                batch_note = " (dims exclude the batch when max_batch_size > 0)" if with_batch else ""
                findings.append(f"{kind} '{d.name}': dims {list(d.dims)}, the model's are {want}{batch_note}: use {want}")
        missing = set(by_name) - {d.name for d in declared}
        if missing and kind == "input":
            findings.append(f"the model's input '{sorted(missing)[0]}' is not declared: add it")
    return findings


def _check_batching(config, io: ArtifactIO, pb) -> list[str]:
    findings = []
    top = config.max_batch_size
    if top > 0 and io.batch is not None:
        lo, hi = io.batch
        if hi and top > hi:
            what = "the engine profile covers" if io.engine_profile else "the ONNX was exported with"
            findings.append(f"max_batch_size {top} exceeds the largest batch {what} ({hi}): lower it to {hi}")
        if config.HasField("dynamic_batching") and lo > 1:
            findings.append(f"dynamic batching sends batches from 1 but the engine's profile starts at {lo}: rebuild "
                            "with min batch 1 or remove dynamic_batching")
    for b in config.dynamic_batching.preferred_batch_size:
        if top <= 0 or b > top:
            findings.append(f"preferred_batch_size {b} exceeds max_batch_size {top}: use sizes up to {top}")
    return findings
