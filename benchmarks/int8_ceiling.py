"""How fast any INT8 of a Swin model could run on this CPU, against the strongest peer: issue #19's 1.5x, bounded.

    pip install -e '.[peers]'      # nncf, for the peer
    python benchmarks/int8_ceiling.py [--variants swin_t swinv2_t] [--batch-sizes 1 8] [--runs 20]

An INT8 graph's int8 layers (linear layers and the patch embedding) cannot run faster than the CPU multiplies int8
matrices. This measures that ceiling, the best int8 GEMM throughput OpenVINO reaches on this CPU (large FullyConnected
layers alone, with the same kernels and threads), and then for each model:
- the strongest peer and swin-deploy's INT8 (`--target tensorrt`, what docs/cpu.md ships to AVX-512 VNNI CPUs), both on
  OpenVINO at its default precision, latency hint, static shapes, timed in one interleaved run (no counters);
- where our INT8's time goes, by OpenVINO's per-layer counters (a separate compile with counters on, so slower): the
  int8 layers, their operations and throughput against the ceiling, and everything else;
- the floor: our int8 layers' operations at the ceiling, the time no INT8 of this model can go below here, and so the
  largest speedup over the peer any INT8 of it could reach were nothing else to take time; and what 1.5x the peer
  leaves for everything but the int8 layers at that floor.
The peer is the faster of timm's ONNX export (onnx-simplifier) at OpenVINO's default precision (bf16 where the CPU has
it) and NNCF's INT8 of it (transformer preset), as in `cpu_peers.py`, on the same seeded random weights.

Prints the CPU model and vector ISA first: the ceiling is the CPU's.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from swin_deploy.artifact import read_info
from swin_deploy.data import list_images, load_all, transform_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved_ms, machine, openvino_compiled, openvino_infer, parser, random_int8  # noqa: E402
from cpu_peers import nncf_int8  # noqa: E402
from export_vs_timm import timm_export  # noqa: E402

CEILING_SHAPES = ((8192, 1024, 1024), (8192, 2048, 2048), (4096, 4096, 4096))  # (M, K, N): large enough for peak


def int8_gemm(path: Path, m: int, k: int, n: int) -> Path:
    """One linear layer as swin-deploy's INT8 writes it: symmetric int8 Q/DQ on its input, int8 weights."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "ws"], ["wd"]),
             helper.make_node("MatMul", ["xd", "wd"], ["y"])]
    weights = [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
               numpy_helper.from_array(np.array(0, np.int8), "z"),
               numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), "w"),
               numpy_helper.from_array(np.array(0.01, np.float32), "ws")]
    graph = helper.make_graph(nodes, "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    return path


def int8_layer(info) -> bool:
    return info.node_type.startswith(("FullyConnected", "Convolution")) and "i8" in info.exec_type.lower()


def profile(model, x: np.ndarray, runs: int) -> dict[str, tuple[str, float, float]]:
    """Per-layer counters of a compiled model (counters on): {layer: (kind and kernel, ms per run, giga-operations per
    run)}, where operations (2 per multiply-add) are counted for int8 layers only, from the runtime graph's shapes."""
    ops = {op.get_friendly_name(): op for op in model.get_runtime_model().get_ops()}
    request = model.create_infer_request()
    for _ in range(3):
        request.infer({0: x})
    ms: dict[str, float] = {}
    int8: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for _ in range(runs):
        request.infer({0: x})
        for info in request.profiling_info:
            if info.status != info.Status.EXECUTED:
                continue
            ms[info.node_name] = ms.get(info.node_name, 0.0) + info.real_time.total_seconds() * 1e3 / runs
            kinds[info.node_name] = f"{info.node_type} {info.exec_type}"
            if int8_layer(info) and info.node_name not in int8:
                op = ops[info.node_name]
                out, weight = (list(op.output(0).get_shape()), list(op.input(1).get_shape()))
                # a FullyConnected's output is (..., N), a Convolution's (B, C_out, H, W): 2 x outputs x MACs each
                out_channels = out[-1] if info.node_type.startswith("FullyConnected") else out[1]
                int8[info.node_name] = 2 * np.prod(out) * np.prod(weight) / out_channels / 1e9
    return {name: (kinds[name], t, int8.get(name, 0.0)) for name, t in ms.items()}


def ceiling(tmp: Path, threads: int, runs: int) -> tuple[float, str]:
    """The best int8 GEMM throughput (giga-operations/s) of OpenVINO's CPU kernels here, and its kernel's name."""
    best, kernel = 0.0, ""
    for m, k, n in CEILING_SHAPES:
        model = openvino_compiled(int8_gemm(tmp / "gemm.onnx", m, k, n), [m, k], threads, counters=True)
        request = model.create_infer_request()
        x = np.random.default_rng(0).standard_normal((m, k), dtype=np.float32)
        for _ in range(2):
            request.infer({0: x})
        times = []
        for _ in range(runs):
            request.infer({0: x})
            layers = [i for i in request.profiling_info if int8_layer(i)]
            times.append(sum(i.real_time.total_seconds() for i in layers))
        rate = 2 * m * k * n / float(np.median(times)) / 1e9
        if rate > best:
            best, kernel = rate, layers[0].exec_type
    return best, kernel


def main() -> None:
    ap = parser(__doc__, runs=20)
    ap.add_argument("--calib-images", type=int, default=64)
    args = ap.parse_args()
    threads = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp())
    top, kernel = ceiling(tmp, threads, 10)
    print(f"{machine()}; OpenVINO latency hint, static shapes; the int8 GEMM ceiling here: {top:.0f} GOP/s "
          f"({kernel}, the best of {len(CEILING_SHAPES)} large FullyConnected layers alone)", flush=True)
    for name in args.variants:
        model, fp32, int8 = random_int8(name, tmp)
        calib, _ = load_all(list_images(tmp / "digits" / "calib", limit=args.calib_images),
                            transform_for(read_info(fp32)))
        timm = tmp / f"{name}.timm.onnx"
        timm_export(name, {k: v.clone() for k, v in model.state_dict().items()}, timm, "onnxsim")
        forms = {"timm, OpenVINO default": timm, "timm + NNCF INT8": nncf_int8(timm, calib, tmp / f"{name}.nncf.xml"),
                 "swin-deploy INT8": int8}
        print(f"\n{name}: median ms of {args.runs} interleaved runs after {args.warmup} warm-up; the rest: our INT8's "
              "layers other than int8 ones; floor: our int8 layers' operations at the ceiling; bound: peer / floor; "
              "1.5x leaves: the peer's time / 1.5 - floor, for the rest")
        print("| batch | peer ms | ours ms | ours vs peer | int8 layers ms (counters) | their GOP | their GOP/s (of "
              "ceiling) | the rest ms (counters) | floor ms | bound vs peer | 1.5x leaves ms |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        largest: list[str] = []
        for b in args.batch_sizes:
            shape = [b, *calib.shape[1:]]
            x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
            ms = interleaved_ms({label: openvino_infer(path, shape, threads) for label, path in forms.items()}, x,
                                args.warmup, args.runs)
            peer, strongest = min((ms[label], label) for label in forms if label.startswith("timm"))
            layers = profile(openvino_compiled(int8, shape, threads, counters=True), x, 5)
            gemm_ms = sum(t for _, t, gop in layers.values() if gop)
            gop = sum(gop for _, _, gop in layers.values())
            rest = sum(t for _, t, g in layers.values() if not g)
            by_kind: dict[str, float] = {}
            for kind, t, g in layers.values():
                if not g:
                    by_kind[kind] = by_kind.get(kind, 0.0) + t
            largest.append(f"batch {b}: " + ", ".join(f"{kind} {t:.1f}" for kind, t in sorted(
                by_kind.items(), key=lambda kv: -kv[1])[:3]))
            floor = gop / top * 1e3
            print(f"| {b} | {peer:.1f} ({strongest}) | {ms['swin-deploy INT8']:.1f} | {peer / ms['swin-deploy INT8']:.2f}x | "
                  f"{gemm_ms:.1f} | {gop:.1f} | {gop / gemm_ms * 1e3:.0f} ({gop / gemm_ms * 1e3 / top:.0%}) | "
                  f"{rest:.1f} | {floor:.1f} | {peer / floor:.2f}x | {peer / 1.5 - floor:.1f} |", flush=True)
        print("the rest's largest kinds, ms (counters): " + "; ".join(largest))


if __name__ == "__main__":
    main()
