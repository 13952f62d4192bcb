"""A STAND-IN for the `tensorrt` module, for unit tests of swin-deploy's own control flow. It is not TensorRT.

Nothing here builds or optimizes anything: a "serialized engine" is a JSON note of the ONNX path, the profile and
the flags the loader set, and "execution" runs that ONNX in onnxruntime on CPU, reading and writing the tensors at
the addresses the runner gave (CPU torch tensors). What it lets a test prove without a GPU: the loader creates a
strongly typed network, clears TF32, sets the profile on the network's real input name and writes engine +
sidecar; the runner reads I/O names and dtypes from the engine, sets the input shape per call, allocates outputs
from the context's shapes, pads a static batch and slices outputs back. Every class, method and attribute defined
here exists in the real TensorRT 10.x/11.x bindings (`trt_api_check.py --defined tests/stand_in_tensorrt.py`).
"""

from __future__ import annotations

import ctypes
import json
from enum import IntEnum

import numpy as np

__version__ = "0.0.0-stand-in"


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity=WARNING):
        self.min_severity = min_severity


class NetworkDefinitionCreationFlag(IntEnum):  # pybind11 enums take int(), as IntEnum does
    STRONGLY_TYPED = 5


class BuilderFlag(IntEnum):  # pybind11 enums take int(), as IntEnum does
    TF32 = 7


class MemoryPoolType(IntEnum):  # pybind11 enums take int(), as IntEnum does
    WORKSPACE = 0


class TensorIOMode(IntEnum):  # pybind11 enums take int(), as IntEnum does
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class DataType(IntEnum):  # pybind11 enums take int(), as IntEnum does
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8


ONNX_TO_TRT = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL,
               2: DataType.UINT8, 7: DataType.INT64}
NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
         DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}


def _io(values) -> list[dict]:
    return [{"name": v.name, "dtype": ONNX_TO_TRT[v.type.tensor_type.elem_type].name,
             "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]}
            for v in values]


class ITensor:
    def __init__(self, name: str):
        self.name = name


class INetworkDefinition:
    def __init__(self, flags: int):
        self.flags = flags
        self.onnx = None
        self.io = {"inputs": [], "outputs": []}

    @property
    def num_inputs(self) -> int:
        return len(self.io["inputs"])

    def get_input(self, index: int) -> ITensor:
        return ITensor(self.io["inputs"][index]["name"])


class ParserError:
    def __init__(self, desc: str):
        self._desc = desc

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return -1

    def node_name(self) -> str:
        return ""


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: Logger):
        self.network, self.errors = network, []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> ParserError:
        return self.errors[index]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        try:
            graph = onnx.load(path).graph
        except Exception as e:  # noqa: BLE001 - reported as a parser error, as TensorRT would
            self.errors.append(ParserError(f"cannot read the model: {type(e).__name__}"))
            return False
        initializers = {t.name for t in graph.initializer}
        self.network.onnx = path
        self.network.io = {"inputs": _io(v for v in graph.input if v.name not in initializers),
                           "outputs": _io(graph.output)}
        return True


class IOptimizationProfile:
    def __init__(self):
        self.shapes: dict[str, list] = {}

    def set_shape(self, input: str, min, opt, max) -> None:  # noqa: A002 - the real binding's parameter names
        self.shapes[input] = [list(min), list(opt), list(max)]


class ITimingCache:
    def __init__(self, data: bytes):
        self.data = data or b"stand-in timing cache"

    def serialize(self) -> bytes:
        return self.data


class IBuilderConfig:
    def __init__(self):
        self.pools, self.cleared, self.profiles = {}, set(), []
        self.builder_optimization_level = 3
        self.cache = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        self.pools[pool] = pool_size

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.cleared.add(flag)

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        return ITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self.cache = cache
        return True

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    def __init__(self, logger: Logger):
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig):
        dynamic = any(-1 in t["shape"] for t in network.io["inputs"])
        if network.onnx is None or (dynamic and not config.profiles):
            return None  # TensorRT logs the reason and returns None
        note = {"stand_in": True, "onnx": network.onnx, "io": network.io,
                "profile": config.profiles[0].shapes if config.profiles else {},
                "strongly_typed": bool(network.flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED.value)),
                "tf32_cleared": BuilderFlag.TF32 in config.cleared,
                "workspace": config.pools.get(MemoryPoolType.WORKSPACE)}
        return json.dumps(note).encode()


class Runtime:
    def __init__(self, logger: Logger):
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes):
        try:
            note = json.loads(bytes(serialized_engine))
        except ValueError:
            return None  # not an engine this runtime can read
        return ICudaEngine(note) if isinstance(note, dict) and note.get("stand_in") else None


class ICudaEngine:
    def __init__(self, note: dict):
        self.note = note
        self.tensors = {t["name"]: (TensorIOMode.INPUT, t) for t in note["io"]["inputs"]}
        self.tensors.update({t["name"]: (TensorIOMode.OUTPUT, t) for t in note["io"]["outputs"]})

    @property
    def num_io_tensors(self) -> int:
        return len(self.tensors)

    def get_tensor_name(self, index: int) -> str:
        return list(self.tensors)[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self.tensors[name][0]

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self.tensors[name][1]["dtype"]]

    def get_tensor_shape(self, name: str) -> tuple:
        return tuple(self.tensors[name][1]["shape"])

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine):
        import onnxruntime as ort

        self.engine = engine
        self.session = ort.InferenceSession(engine.note["onnx"], providers=["CPUExecutionProvider"])
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.calls: list[tuple] = []  # (input shape) per execute: what the runner asked for

    def set_input_shape(self, name: str, shape) -> bool:
        lo, _, hi = self.engine.note["profile"].get(name, [None, None, None])
        if lo is not None and not all(a <= s <= b for a, s, b in zip(lo, shape, hi)):
            return False
        self.shapes[name] = tuple(shape)
        # output shapes as TensorRT would report them: known once the input shape is
        zeros = np.zeros(shape, dtype=NUMPY[self.engine.get_tensor_dtype(name)])
        for out, value in zip([o.name for o in self.session.get_outputs()], self.session.run(None, {name: zeros})):
            self.shapes[out] = value.shape
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        return self.shapes.get(name, self.engine.get_tensor_shape(name))

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self.addresses[name] = memory
        return True

    def _view(self, name: str) -> np.ndarray:
        dtype = np.dtype(NUMPY[self.engine.get_tensor_dtype(name)])
        count = int(np.prod(self.shapes[name]))
        buffer = (ctypes.c_uint8 * (count * dtype.itemsize)).from_address(self.addresses[name])
        return np.frombuffer(buffer, dtype=dtype).reshape(self.shapes[name])

    def execute_async_v3(self, stream_handle: int) -> bool:
        inputs = [n for n, (mode, _) in self.engine.tensors.items() if mode == TensorIOMode.INPUT]
        feeds = {n: self._view(n).copy() for n in inputs}
        self.calls.append(tuple(self.shapes[inputs[0]]))
        names = [o.name for o in self.session.get_outputs()]
        for name, value in zip(names, self.session.run(names, feeds)):
            self._view(name)[...] = value
        return True
