"""swin-deploy on CPU against what a user would run instead, in one interleaved run per model and batch size.

    pip install -e '.[peers]'      # nncf, for the strongest CPU INT8 peer
    python benchmarks/cpu_peers.py [--variants swin_t swinv2_t] [--batch-sizes 1 8] [--runs 20] [--head-to-head]
        [--hints latency throughput] [--img-size 256]

The peers start from timm's own ONNX export of the same seeded random weights (torch.onnx.export, simplified by
onnx-simplifier): on onnxruntime in float32, on OpenVINO in f32 and at OpenVINO's default execution precision (bf16 on
CPUs that have it), and quantized by NNCF (INT8, transformer model type, calibrated on the same images as ours) on
OpenVINO (on a CPU without VNNI, with NNCF's overflow fix on every layer). swin-deploy's rows are its fp32 export
and its INT8 artifacts on both runtimes, plus the INT8 variations OpenVINO could prefer (asymmetric uint8 activations:
the onnxruntime target; float32 outside the Q/DQ; quantized attention matmuls; nvidia placement; 7-bit weights).
Calibration and the accuracy columns use the demo digit images upscaled to the model's size; with random weights only
logit deltas mean something. "gates" is `swin-deploy verify` on those images for our artifacts, on that row's runtime
("near-ties only": top-1 agreement failed on classes random weights barely separate, the other gates passed).

`--img-size H [W]` runs every model at that size (timm built with `img_size`); at sizes whose stage grids the windows
do not tile (swin_t at 256) both timm and swin-deploy pad.

Prints the CPU model and vector ISA first: which runtime and precision win depends on them.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from calibration import Int8Options, QuantizeOptions, quantize
from swin_deploy.artifact import read_info
from swin_deploy.backends.base import Runner, run_batched
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.backends.openvino_runner import OpenVinoOptions, OpenVinoRunner, cpu_capabilities
from swin_deploy.compare import Comparison
from swin_deploy.data import list_images, load_all, transform_for
from swin_deploy.demo import write_digits
from swin_deploy.enums import Precision
from swin_deploy.errors import UserError
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.latency import speedup_ci
from swin_deploy.machine import exact_int8_dot_products
from swin_deploy.models import Weights, build_model, get_config
from swin_deploy.verify.run import VerifyOptions, verify_artifact

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, parser, rounds_ms  # noqa: E402
from export_vs_timm import timm_export  # noqa: E402

# (label, Int8Options settings): the shipped targets first, then what OpenVINO might run faster
INT8_FORMS = {
    "INT8 --target tensorrt": {},
    "INT8 --target onnxruntime --reduce-range": {"target": "onnxruntime", "reduce_range": True},
    "INT8 --target onnxruntime": {"target": "onnxruntime"},
    "INT8 --target tensorrt --high-precision fp32": {"high_precision": "fp32"},
    "INT8 --target tensorrt --attention-matmuls": {"attention_matmuls": True},
    "INT8 --target tensorrt --placement nvidia": {"placement": "nvidia"},
    "INT8 --target tensorrt --reduce-range": {"reduce_range": True},
}


def shipped() -> tuple[str, str]:
    """The INT8 form docs/cpu.md ships to this CPU and the runtime it runs on: the TensorRT target on OpenVINO where
    int8 products add exactly (VNNI, AMX), the onnxruntime target with 7-bit weights on onnxruntime where they do not:
    there OpenVINO's INT8 ran slower than its own f32, and failed verify's gates with 8-bit weights (RESULTS, "CPU
    peers on AMD EPYC Zen 3")."""
    if exact_int8_dot_products() is False:
        return "INT8 --target onnxruntime --reduce-range", "onnxruntime"
    return "INT8 --target tensorrt", "OpenVINO"


@dataclass
class Row:
    label: str
    runner: Runner
    ours: Path | None = None  # our artifact (verified with its gates); None for a peer
    openvino: OpenVinoOptions | None = None


def default_precision() -> str:
    """What OpenVINO's CPU plugin runs a float32 model in when not told: bf16 where the CPU has it."""
    return "bf16" if "BF16" in cpu_capabilities() else "f32"


def nncf_int8(onnx_path: Path, calib: np.ndarray, out: Path, transformer: bool = True) -> Path:
    """timm's ONNX quantized by NNCF for OpenVINO: post-training INT8 with its transformer preset, as OpenVINO's
    own Swin notebooks do (`transformer=False`: NNCF's default settings). On a CPU whose int8 products do not add
    exactly, with NNCF's overflow fix on every layer (7-bit weights, OpenVINO's documented workaround for such CPUs;
    NNCF's default fixes the first layer only)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    fix = nncf.OverflowFix.ENABLE if exact_int8_dot_products() is False else nncf.OverflowFix.FIRST_LAYER
    quantized = nncf.quantize(model, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]),
                              model_type=nncf.ModelType.TRANSFORMER if transformer else None, subset_size=len(calib),
                              advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=fix))
    ov.save_model(quantized, str(out))
    return out


def rows_for(name: str, fp32: Path, state_dict: dict, tmp: Path, data: Path, calib: np.ndarray, threads: int,
             forms: dict[str, dict], hints: tuple[str, ...], size: tuple[int, int] | None = None) -> list[Row]:
    timm = tmp / f"{name}.timm.onnx"
    timm_export(name, state_dict, timm, "onnxsim", size)
    nncf = nncf_int8(timm, calib, tmp / f"{name}.timm.nncf.xml")
    default = default_precision()

    def labelled(label: str, hint: str) -> str:
        return label + (f" [{hint}]" if len(hints) > 1 else "")

    def ov(label: str, path: Path, precision: str | None, artifact: Precision = Precision.FP32,
           ours: Path | None = None) -> list[Row]:
        """The OpenVINO row(s) of `path`: one per performance hint, labelled by it where there are several."""
        return [Row(labelled(label, hint), OpenVinoRunner(path, threads, OpenVinoOptions(precision, hint), artifact),
                    ours, OpenVinoOptions(precision, hint)) for hint in hints]

    def ort(label: str, path: Path, ours: Path | None = None) -> list[Row]:
        """The onnxruntime row(s) of `path`, one per performance hint as for OpenVINO."""
        return [Row(labelled(label, hint), OnnxRuntimeRunner(path, threads=threads, performance_hint=hint), ours,
                    OpenVinoOptions(performance_hint=hint)) for hint in hints]

    fix = " (overflow fix: all layers)" if exact_int8_dot_products() is False else ""
    rows = [*ort("timm + onnxsim fp32, onnxruntime", timm),
            *ov("timm + onnxsim fp32, OpenVINO f32", timm, "f32"),
            *ov(f"timm + onnxsim fp32, OpenVINO default ({default})", timm, None, Precision.INT8),
            *ov(f"timm + NNCF INT8{fix}, OpenVINO", nncf, None, Precision.INT8),
            *ort("swin-deploy fp32, onnxruntime", fp32, fp32),
            *ov("swin-deploy fp32, OpenVINO f32", fp32, "f32", ours=fp32)]
    if default != "f32":
        rows += ov(f"swin-deploy fp32, OpenVINO {default}", fp32, default, ours=fp32)
    for label, settings in forms.items():
        options = QuantizeOptions("int8", calib_data=data / "calib", calib_images=len(calib),
                                  int8=Int8Options(**settings))
        path = quantize(fp32, tmp / f"{name}.{len(rows)}.int8.onnx", options).path
        if settings.get("target") == "onnxruntime" or not settings:
            rows += ort(f"swin-deploy {label}, onnxruntime", path, path)
        rows += ov(f"swin-deploy {label}, OpenVINO", path, None, Precision.INT8, ours=path)
    return rows


def accuracy(rows: list[Row], name: str, images: np.ndarray, data: Path,
             size: tuple[int, int] | None = None) -> dict[str, str]:
    """Max relative logit delta and min cosine vs the PyTorch float32 model; verify's gates for our artifacts."""
    model, _ = build_model(get_config(name).at_size(size), Weights("random"))
    with torch.no_grad():
        ref = model(torch.from_numpy(images)).numpy()
    out = {}
    for row in rows:
        with row.runner:
            got = next(iter(run_batched(row.runner, images, 8).values()))
        gate = "-"
        if row.ours is not None:
            backend = "openvino" if isinstance(row.runner, OpenVinoRunner) else None
            result = verify_artifact(row.ours, VerifyOptions(weights=Weights("random"), data=data / "val", limit=64,
                                                             batch_sizes=[8], backend=backend, openvino=row.openvino))
            gate = "pass" if result.passed else "FAIL (top-1, near-ties only)" if result.near_tie_failure() else "FAIL"
        comparison = Comparison()
        comparison.update({"logits": ref}, {"logits": got})
        m = comparison.metrics()
        out[row.label] = f"{m['max_rel_delta']:.3f} | {m['min_cosine']:.4f} | {gate}"
    return out


def compiled(rows: list[Row]) -> tuple[list[Row], dict[str, str]]:
    """The rows whose runner compiles, and why each other did not: a runtime that cannot compile a peer's graph
    (OpenVINO 2026.4 on NNCF's INT8 of timm's swinv2_b_192to384) leaves that peer out of the table, not the run."""
    kept, failed = [], {}
    for row in rows:
        try:
            with row.runner:
                kept.append(row)
        except UserError as e:
            failed[row.label] = str(e).splitlines()[0][:160]
    return kept, failed


def vs_peer(rounds: dict[str, list[float]], peers: list[str], label: str) -> str:
    """How many times as fast as the strongest peer (the one with the lowest median) `label` ran: the median over
    rounds of peer_i / label_i with its 95% bootstrap interval, as `swin-deploy bench` gates a speedup (paired rounds
    cancel the machine's drift, which moves both alike)."""
    if not peers:
        return "-"
    peer = min(peers, key=lambda p: np.median(rounds[p]))
    s = speedup_ci(rounds[peer], rounds[label])
    return f"{s.estimate:.2f}x [{s.low:.2f}, {s.high:.2f}]"


def main() -> None:
    ap = parser(__doc__, runs=20)
    ap.add_argument("--calib-images", type=int, default=64)
    ap.add_argument("--shipped-only", action="store_true", help="only the two shipped INT8 targets, no variations")
    ap.add_argument("--head-to-head", action="store_true",
                    help="time only the two strongest peers and the INT8 swin-deploy ships to this CPU, on its runtime "
                         "(fewer runners taking turns: each finds more of its weights still in cache, as a deployed "
                         "model does)")
    ap.add_argument("--hints", nargs="+", choices=["latency", "throughput"], default=["latency"],
                    help="performance hints, each row on a CPU runtime once per hint (onnxruntime's throughput "
                         "hint: a stream of one thread per core, as OpenVINO's); the strongest peer is the fastest under "
                         "any of them")
    ap.add_argument("--img-size", type=int, nargs="+", help="H [W] (default: each variant's own)")
    args = ap.parse_args()
    size = None if not args.img_size else (args.img_size[0], args.img_size[-1])
    threads = torch.get_num_threads()
    tmp = Path(tempfile.mkdtemp())
    data = tmp / "data"
    write_digits(data)
    print(f"{machine()}; OpenVINO CPU capabilities {', '.join(cpu_capabilities())}; median of {args.runs} "
          f"interleaved runs after {args.warmup} warm-up; performance hints {', '.join(args.hints)}", flush=True)
    form, runtime = shipped()
    forms = {form: INT8_FORMS[form]} if args.head_to_head else \
        dict(list(INT8_FORMS.items())[:2]) if args.shipped_only else INT8_FORMS
    for name in args.variants:
        model, sha = build_model(get_config(name).at_size(size), Weights("random"))
        state_dict = {k: v.clone() for k, v in model.state_dict().items()}
        fp32 = export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions()).path
        images, _ = load_all(list_images(data / "calib", limit=args.calib_images), transform_for(read_info(fp32)))
        rows = rows_for(name, fp32, state_dict, tmp, data, images, threads, forms, tuple(args.hints), size)
        if args.head_to_head:
            rows = [r for r in rows if "default" in r.label or "NNCF" in r.label
                    or r.label.startswith(f"swin-deploy {form}, {runtime}")]
        rows, failed = compiled(rows)
        acc = accuracy(rows, name, images[:32], data, size)
        times: dict[int, dict[str, list[float]]] = {}
        for r in rows:
            r.runner.activate()
        for b in args.batch_sizes:
            x = np.random.default_rng(0).standard_normal((b, *images.shape[1:]), dtype=np.float32)
            times[b] = rounds_ms({r.label: (r.runner, x) for r in rows}, args.warmup, args.runs)
        for r in rows:
            r.runner.deactivate()
        peers = [r.label for r in rows if r.ours is None and ("default" in r.label or "NNCF" in r.label)]
        at = "x".join(map(str, model.cfg.img_size))
        print(f"\n{name} at {at}: median ms at batch {' / '.join(map(str, args.batch_sizes))}; speedup vs the strongest "
              "OpenVINO peer (the faster of OpenVINO-default and NNCF INT8 on timm's graph) at that batch: median over "
              "rounds of peer / runner [95% CI]")
        print("| runner | ms | vs strongest peer | max rel delta | min cosine | gates |")
        print("|---|---:|---:|---:|---:|---|")
        for r in rows:
            ms = " / ".join(f"{np.median(times[b][r.label]):.1f}" for b in args.batch_sizes)
            ratio = " / ".join(vs_peer(times[b], peers, r.label) for b in args.batch_sizes)
            print(f"| {r.label} | {ms} | {ratio} | {acc[r.label]} |", flush=True)
        for label, why in failed.items():
            print(f"| {label} | does not compile: {why} | - | - | - | - |", flush=True)


if __name__ == "__main__":
    main()
