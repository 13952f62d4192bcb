"""Runs a serialized engine with torch tensors: I/O names, dtypes and the batch rule read from the engine itself."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from ...artifact import EngineInfo, read_sidecar
from ...errors import UserError, require_file
from ..base import Runner, Timing, as_input, pad_batch
from . import import_tensorrt

TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "UINT8": "uint8", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool"}


class TensorRTRunner(Runner):
    """An engine (file, or serialized bytes) in an execution context. On CUDA (the real case) it runs on a torch
    stream and CUDA events time the compute; `device="cpu"` exists for the unit tests' stand-in tensorrt module."""

    name = "tensorrt"

    def __init__(self, engine: str | Path | bytes, device: str = "cuda"):
        super().__init__()
        self.path = None if isinstance(engine, bytes) else Path(engine)
        self.serialized = engine if isinstance(engine, bytes) else None
        self.device = device

    def _activate(self) -> None:
        trt = import_tensorrt()
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise UserError("TensorRT engines need an NVIDIA GPU, and there is none here")
        if self.path is not None:
            if EngineInfo.path_for(self.path).is_file() and self.device == "cuda":
                from .loader import cuda_device

                read_sidecar(self.path).check_runtime(self.path, trt.__version__, *cuda_device())
            require_file(self.path, "pass an engine built by swin-deploy build-engine")
        data = self.serialized if self.serialized is not None else self.path.read_bytes()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(data)
        what = self.path or "the engine"
        if self.engine is None:
            raise UserError(f"TensorRT cannot load {what}: rebuild it with swin-deploy build-engine")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1:
            raise UserError(f"{what} has {len(inputs)} inputs; a swin-deploy engine has one")
        self.input_name = inputs[0]
        self.dtypes = {n: getattr(torch, TORCH_DTYPES[self.engine.get_tensor_dtype(n).name]) for n in names}
        batch = self.engine.get_tensor_shape(self.input_name)[0]
        self.fixed_batch = batch if batch > 0 else None  # a static-batch engine takes exactly this many
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream() if self.device == "cuda" else None
        self.trt = trt

    def _run(self, x: np.ndarray) -> tuple[dict[str, np.ndarray], float | None]:
        import torch

        n = len(x)
        if self.fixed_batch is not None:
            if n > self.fixed_batch:
                raise UserError(f"this engine takes a batch of {self.fixed_batch}, not {n}")
            x = pad_batch(x, self.fixed_batch)
        want = self.dtypes[self.input_name]
        if torch.from_numpy(x[:0]).dtype != want:
            raise UserError(f"the engine's input '{self.input_name}' is {want}, not {x.dtype}: feed what the artifact's "
                            "metadata says (float32, or uint8 pixels)")
        cuda = self.stream is not None
        with torch.cuda.stream(self.stream) if cuda else contextlib.nullcontext():
            x_dev = torch.from_numpy(x).to(self.device, non_blocking=cuda)
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            self.context.set_tensor_address(self.input_name, x_dev.data_ptr())
            outs = {}
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                outs[name] = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
                self.context.set_tensor_address(name, outs[name].data_ptr())
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(self.stream)
            if not self.context.execute_async_v3(self.stream.cuda_stream if cuda else 0):
                raise RuntimeError("TensorRT execution failed")
            if cuda:
                end.record(self.stream)
            # the runner protocol's outputs are float32, sliced to the inputs given (a static batch was padded)
            host = {k: v[:n].float().cpu().numpy() for k, v in outs.items()}  # .cpu() synchronizes the stream
        return host, start.elapsed_time(end) if cuda else None

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._run(x)[0]

    def infer_timed(self, x: np.ndarray) -> tuple[dict[str, np.ndarray], Timing]:
        assert self.active, f"{self.name}: activate() first (or use it as a context manager)"
        t0 = time.perf_counter()
        y, compute_ms = self._run(as_input(x))
        return y, Timing(total_ms=(time.perf_counter() - t0) * 1000, compute_ms=compute_ms)

    def _deactivate(self) -> None:
        del self.context, self.engine, self.runtime

    def describe(self) -> dict:
        return {"backend": self.name, "tensorrt": self.trt.__version__, "engine": str(self.path or "<bytes>")}
