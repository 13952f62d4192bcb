"""Backends behind one runner protocol: PyTorch, onnxruntime, OpenVINO, TensorRT."""

from .base import Runner, Timing, run_batched, run_padded

__all__ = ["Runner", "Timing", "checked_backend", "checked_threads", "default_backend", "options_for", "run_batched",
           "run_padded", "runner_for", "unused_options"]

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "openvino", "tensorrt")


def checked_backend(backend: str | None) -> str | None:
    """`backend` as BACKENDS spell it (None: the artifact's default), in any case and without stray spaces; else a
    UserError listing them (an empty name is a slip, not the default)."""
    from ..errors import UserError

    if backend is None:
        return None
    name = backend.strip().lower()
    if name not in BACKENDS:
        raise UserError(f"unknown backend '{backend}': choose {', '.join(BACKENDS)}")
    return name


def checked_threads(threads: int | None) -> int | None:
    """`threads` as given, refused unless at least 1 (runtimes read 0 and negative counts as "choose for me" or fail
    deep inside, neither of which the user asked for) and at most the CPUs this process may use: more only contend for
    the same cores, and a slip (100000) exhausted the process limit and took the shell down with it.

    None is the runtime's choice, except under a CPU quota (a container's, a CI pod's) that allows fewer CPUs than
    the process may run on: the runtimes count the cores and run that many threads, which the kernel stops for the
    rest of each period once they have used the quota, so None is the quota's whole CPUs (machine.quota_threads).
    (benchmarks/RESULTS.md, "Latency gates under a CPU quota": with 2 threads under a 1-CPU quota, bench read an
    artifact as 1.35x as fast as itself.)"""
    from ..errors import UserError
    from ..machine import quota_threads, usable_cpus

    if threads is None:
        return quota_threads()
    if threads < 1:
        raise UserError(f"`threads` must be at least 1, not {threads} (leave it out for the runtime's choice)")
    if threads > (cpus := len(usable_cpus())):
        raise UserError(f"`threads` {threads} is more than the {cpus} CPUs this process may use: pass at most {cpus}")
    return threads


# the OpenVinoOptions each backend takes (the hint: onnxruntime's CPU runner splits a batch over streams as OpenVINO does)
TAKEN_BY = {"inference_precision": ("openvino",), "cache_dir": ("openvino",),
            "performance_hint": ("openvino", "onnxruntime-cpu")}


def unused_options(options, backends) -> str | None:
    """The one line for OpenVinoOptions none of `backends` (those a run uses) takes; None when each is taken."""
    unused = [name for name, takers in TAKEN_BY.items()
              if options is not None and getattr(options, name) is not None and not set(takers) & set(backends)]
    if not unused:
        return None
    takers = " or ".join(sorted({t for name in unused for t in TAKEN_BY[name]}, reverse=True))
    return f"{', '.join(f'`{n}`' for n in unused)} go{'es' * (len(unused) == 1)} with `backend` {takers} or an OpenVINO IR"


def options_for(options, backend: str):
    """The part of OpenVinoOptions `options` that `backend` takes (None: nothing)."""
    if options is None:
        return None
    from .openvino_runner import OpenVinoOptions

    kept = {name: getattr(options, name) for name, takers in TAKEN_BY.items() if backend in takers}
    return OpenVinoOptions.given(**kept) if kept else None


def default_backend(path) -> str:
    """The backend an artifact runs on unless told: .engine/.plan TensorRT, .xml OpenVINO, .onnx onnxruntime's CPU."""
    from ..artifact import kind_of

    return {"engine": "tensorrt", "ir": "openvino"}.get(kind_of(path), "onnxruntime-cpu")


def runner_for(path, backend: str | None = None, threads: int | None = None, openvino=None,
               precision=None) -> Runner:
    """A runner for an artifact file: .onnx -> onnxruntime (CPU unless told), .engine/.plan -> TensorRT,
    .xml (OpenVINO IR) -> OpenVINO. `openvino`: OpenVinoOptions for the OpenVINO runner (its performance hint also
    for onnxruntime's CPU runner); `precision`: the artifact's (None: read from its metadata; a caller holding the
    ArtifactInfo of a foreign ONNX passes it)."""
    from pathlib import Path

    from ..artifact import kind_of
    from ..errors import UserError, require_file

    path = Path(path)
    threads = checked_threads(threads)
    require_file(path, "pass an .onnx, .engine or OpenVINO .xml artifact")
    backend = checked_backend(backend) or default_backend(path)
    if said := unused_options(openvino, [backend]):
        raise UserError(said)
    kind = kind_of(path)
    if kind == "engine" and backend != "tensorrt":
        raise UserError(f"{path.name} is a TensorRT engine: run it with `backend` tensorrt (on an NVIDIA GPU)")
    if kind == "ir" and backend != "openvino":
        raise UserError(f"{path.name} is an OpenVINO IR: run it with `backend` openvino")
    if kind == "onnx" and backend == "tensorrt":
        raise UserError(f"{path.name} is an ONNX, and `backend` tensorrt runs engines: build one with swin-deploy "
                        "build-engine, or run the ONNX on TensorRT through onnxruntime (`backend` onnxruntime-tensorrt)")
    if backend == "tensorrt":
        from .tensorrt.runner import TensorRTRunner

        return TensorRTRunner(path)
    if backend == "openvino":
        from .openvino_runner import OpenVinoRunner

        return OpenVinoRunner(path, threads, openvino, precision)
    if backend.startswith("onnxruntime-"):
        from .onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, backend.removeprefix("onnxruntime-"), threads,
                                 openvino.performance_hint if openvino is not None else None)
    raise UserError(f"unknown backend '{backend}': choose {', '.join(BACKENDS)}")
