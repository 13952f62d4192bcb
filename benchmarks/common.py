"""What every benchmark here shares: the machine's description, and timing runners through the library's loop."""

from __future__ import annotations

import argparse
import os

import numpy as np
import onnxruntime as ort
import torch

from swin_deploy import defaults
from swin_deploy.backends.base import Runner
from swin_deploy.bench import time_round_robin
from swin_deploy.machine import cpu_name, vector_isa


def machine() -> str:
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    # oneDNN's ISA cap emulates an older CPU in OpenVINO's and torch's oneDNN kernels (AVX512_CORE_BF16: AVX-512, VNNI
    # and BF16 without AMX, as Zen 4/5); onnxruntime's MLAS and OpenVINO's MLAS f32 kernels ignore it
    capped = f", oneDNN capped at {cap} (ONEDNN_MAX_CPU_ISA; MLAS kernels not capped)" if cap else ""
    return (f"{cpu_name()} ({vector_isa()}){capped}, {torch.get_num_threads()} threads, onnxruntime {ort.__version__}, "
            f"torch {torch.__version__}")


def parser(doc: str | None, *, variants: tuple[str, ...] = ("swin_t", "swinv2_t"),
           batch_sizes: tuple[int, ...] | None = (1, 8), runs: int | None = defaults.BENCH_ITERATIONS,
           warmup: int = defaults.BENCH_WARMUP) -> argparse.ArgumentParser:
    """The options every model benchmark here takes, with its own defaults: --variants, --batch-sizes (left out for
    None), --runs (timed rounds) and --warmup (untimed rounds), both left out for `runs` None (nothing timed)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=list(variants))
    if batch_sizes is not None:
        ap.add_argument("--batch-sizes", nargs="+", type=int, default=list(batch_sizes))
    if runs is not None:
        ap.add_argument("--runs", type=int, default=runs, help=f"timed rounds (default {runs})")
        ap.add_argument("--warmup", type=int, default=warmup, help=f"untimed rounds first (default {warmup})")
    return ap


def rounds_ms(cases: dict[str, tuple[Runner, np.ndarray]], warmup: int, runs: int) -> dict[str, list[float]]:
    """Wall time (ms) of each runner on its input in every round, timed round-robin by swin_deploy.bench's loop
    (rounds pair by index across runners)."""
    return {label: [t.total_ms for t in timings]
            for label, timings in time_round_robin(cases, warmup, iterations=runs).items()}


def median_ms(cases: dict[str, tuple[Runner, np.ndarray]], warmup: int, runs: int) -> dict[str, float]:
    """Median wall time (ms) of each runner on its input, timed round-robin by swin_deploy.bench's loop."""
    return {label: float(np.median(ms)) for label, ms in rounds_ms(cases, warmup, runs).items()}


def openvino_compiled(path, shape: list[int] | None, threads: int, hint: str = "LATENCY", counters: bool = False):
    """The model at `path` compiled by OpenVINO for the CPU for exactly `shape` (None: the shapes it was exported
    with), with this performance hint, and OpenVINO's per-layer counters on where `counters` (which slows it)."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if shape is not None:
        model.reshape({model.inputs[0]: shape})
    return core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint,
                                             "PERF_COUNT": counters})


def openvino_infer(path, shape: list[int] | None, threads: int, hint: str = "LATENCY"):
    """An infer function of `openvino_compiled`'s model: one synchronous request."""
    request = openvino_compiled(path, shape, threads, hint).create_infer_request()
    return lambda x: request.infer({0: x})


def interleaved_ms(runs: dict, x: np.ndarray, warmup: int, rounds: int) -> dict[str, float]:
    """Median wall time (ms) of each plain function on `x`, called in turn `rounds` times after `warmup`."""
    import time

    times: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(warmup + rounds):
        for label, run in runs.items():
            start = time.perf_counter()
            run(x)
            if i >= warmup:
                times[label].append((time.perf_counter() - start) * 1000)
    return {k: float(np.median(v)) for k, v in times.items()}


def random_int8(name: str, folder):
    """The model `name` with seeded random weights, its fp32 export and that export's INT8 (TensorRT target)
    calibrated on 64 demo digit images (written to folder/digits on first use): (model, fp32 path, int8 path)."""
    from calibration import QuantizeOptions, quantize
    from swin_deploy.demo import write_digits
    from swin_deploy.export import ExportOptions, export_onnx
    from swin_deploy.models import Weights, build_model, get_config

    digits = folder / "digits"
    if not digits.exists():
        write_digits(digits)
    model, sha = build_model(get_config(name), Weights("random"))
    fp32 = export_onnx(model, sha, folder / f"{name}.onnx", ExportOptions()).path
    int8 = quantize(fp32, folder / f"{name}.int8.onnx",
                    QuantizeOptions("int8", calib_data=digits / "calib", calib_images=64)).path
    return model, fp32, int8
