"""swin-deploy command line: thin wiring over the swin_deploy library.

Exit codes: 0 success, 1 an accuracy gate failed, 2 a usage or input error (one line, no traceback
unless SWIN_DEPLOY_DEBUG=1).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from swin_deploy.errors import GateFailed, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export Swin Transformer V1/V2 to ONNX and TensorRT, set precision, and gate accuracy and speed.")
out = Console()
err = Console(stderr=True)

# ---- shared options ------------------------------------------------------------------------------------------
Variant = Annotated[str, typer.Option("--variant", "-v", help="Short name (swin_t, swinv2_t, ...) or timm name.")]
OptVariant = Annotated[str | None, typer.Option("--variant", help="Variant, for an ONNX without swin-deploy metadata.")]
Checkpoint = Annotated[Path | None, typer.Option(
    "--checkpoint", help="timm or official Swin state_dict (.pth/.pt/.safetensors).")]
Pretrained = Annotated[bool, typer.Option("--pretrained", help="timm's pretrained weights (downloads through timm).")]
RandomInit = Annotated[bool, typer.Option("--random-init", help="Seeded random weights (tests, speed).")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for random weights, sampling and synthetic inputs.")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Output path.")]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads (default: the runtime's choice).")]


def batch_sizes_option(default: str):
    """--batch-sizes, defaulting to None so a command can choose by artifact (a static batch)."""
    return Annotated[str | None, typer.Option("--batch-sizes", help=f"Comma-separated batch sizes (default: {default}).")]


def parse_hw(text: str, option: str) -> tuple[int, int]:
    """'224' or '224,256' or '224x256' -> (H, W)."""
    parts = text.replace("x", ",").split(",")
    try:
        values = [int(p) for p in parts if p.strip()]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise UserError(f"{option} takes H,W or a single side, e.g. 224 or 256,320; not '{text}'")
    return (values[0], values[-1])


def parse_sizes(text: str | None, default: list[int]) -> list[int]:
    if text is None:
        return default
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"batch sizes must be comma-separated integers, not '{text}'") from None


def write_text_atomic(path: Path, text: str) -> None:
    from swin_deploy.fileio import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(text)


def progress_bar(counted: bool = True) -> Progress:
    """The one rich progress line every long command shows on stderr (with a bar and count if `counted`)."""
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    columns += [BarColumn(), MofNCompleteColumn()] if counted else []
    return Progress(*columns, TimeElapsedColumn(), console=err, transient=True)


@contextmanager
def steps(total: int):
    """A progress line for multi-step work; yields a callback that names the current step."""
    with progress_bar() as progress:
        task = progress.add_task("starting", total=total)
        seen: list[str] = []

        def on_step(name: str) -> None:
            if seen:
                progress.advance(task)
            seen.append(name)
            progress.update(task, description=name)

        yield on_step


def table(title: str, rows: dict[str, object]) -> None:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for k, v in rows.items():
        t.add_row(k, str(v))
    out.print(t)


# ---- commands ------------------------------------------------------------------------------------------------
@app.command()
def variants(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the registered Swin variants."""
    from swin_deploy.models import VARIANTS

    rows = [dict(name=c.name, timm_name=c.timm_name, version=c.version, input_size=list(c.img_size),
                 window=c.window_size, params_m=round(c.params / 1e6, 2), gflops=round(c.gflops(), 2),
                 num_classes=c.num_classes) for c in VARIANTS.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="Swin variants")
    for col in ("name", "timm name", "V", "input", "window", "params (M)", "GFLOPs"):
        t.add_column(col, justify="right" if col in ("params (M)", "GFLOPs", "window") else "left")
    for r in rows:
        t.add_row(r["name"], r["timm_name"] or "-", str(r["version"]), "x".join(map(str, r["input_size"])),
                  str(r["window"]), f"{r['params_m']:.2f}", f"{r['gflops']:.2f}")
    out.print(t)


@app.command()
def export(
    variant: Variant = "swin_t",
    checkpoint: Checkpoint = None,
    pretrained: Pretrained = False,
    random_init: RandomInit = False,
    seed: Seed = 0,
    img_size: Annotated[int | None, typer.Option("--img-size", help="Square input size (default: the variant's).")] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 13 up to the newest supported.")] = 17,
    max_batch: Annotated[int | None, typer.Option("--max-batch", help="Largest batch the artifact is checked for.")] = None,
    static_batch: Annotated[bool, typer.Option("--static-batch", help="Fixed batch (--max-batch or 1).")] = False,
    no_simplify: Annotated[bool, typer.Option("--no-simplify", help="Skip onnxslim.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the onnxruntime-vs-PyTorch parity check.")] = False,
    dynamic_size: Annotated[bool, typer.Option("--dynamic-size", help="Any input H, W in a range (--min/--max-size).")] = False,
    min_size: Annotated[str | None, typer.Option("--min-size", help="H,W; default: smallest with full windows.")] = None,
    max_size: Annotated[str | None, typer.Option("--max-size", help="H,W; default: 2x max(default size, min size).")] = None,
    features: Annotated[bool, typer.Option("--features", help="Output the stage feature maps (NCHW), not logits.")] = False,
    output: Output = None,
) -> None:
    """Export a native Swin model to ONNX (dynamic batch, opset-safe windows) and check parity.

    Weights: bundled for demo variants, else timm's pretrained unless --checkpoint or --random-init.
    """
    from swin_deploy.export import ExportOptions, export_onnx
    from swin_deploy.models import Weights, build_model, get_config

    cfg = get_config(variant)
    if img_size is not None:  # a dynamic export checks its own range instead of tiling
        cfg = replace(cfg, img_size=(img_size, img_size)) if dynamic_size else cfg.with_img_size((img_size, img_size))
    size_range, native = None, cfg.img_size
    if dynamic_size:
        cfg, size_range = cfg.for_dynamic(parse_hw(min_size, "--min-size") if min_size else None,
                                          parse_hw(max_size, "--max-size") if max_size else None)
    elif min_size or max_size:
        raise UserError("--min-size/--max-size go with --dynamic-size")
    options = ExportOptions(opset=opset, static_batch=static_batch, max_batch=max_batch, simplify=not no_simplify,
                            verify=not no_verify, features=features, dynamic_size=size_range)
    path = output or Path(f"{cfg.name}.onnx")
    weights = Weights.from_options(checkpoint, pretrained, random_init, seed)
    from swin_deploy.export.onnx_export import check_options
    from swin_deploy.fileio import check_writable_dir

    check_options(options)
    check_writable_dir(path)
    with steps(6) as on_step:
        on_step("build + load weights")
        model, sha = build_model(cfg, weights, dynamic=dynamic_size)
        result = export_onnx(model, sha, path, options, on_step=on_step)
    table(f"exported {cfg.name}", {
        "path": result.path, "size": f"{result.size_bytes / 1e6:.1f} MB", "opset": result.opset,
        "nodes": result.nodes, "LayerNorm": "fused (LayerNormalization)" if result.layernorm_fused else
        "decomposed (opset < 17)", "parity": "skipped" if result.parity_delta is None else
        f"{result.parity_delta:.1e} x max|output|", "exporter": result.exporter, "seconds": f"{result.seconds:.1f}",
        "outputs": ", ".join(result.outputs),
        "input size": "x".join(map(str, cfg.img_size)) if not size_range else
        f"{size_range[0][0]}x{size_range[0][1]} to {size_range[1][0]}x{size_range[1][1]} (dynamic)",
        **({"note": f"{native[0]}x{native[1]} is below the dynamic range (every stage needs a full window): "
                    "export without --dynamic-size for it"} if cfg.img_size != native else {}),
    })


@app.command()
def verify(
    artifact: Annotated[Path, typer.Argument(help="The .onnx or .engine to check.")],
    checkpoint: Checkpoint = None,
    pretrained: Pretrained = False,
    random_init: RandomInit = False,
    seed: Seed = 0,
    reference: Annotated[Path | None, typer.Option("--reference", help="Gate against another artifact instead.")] = None,
    timm_ref: Annotated[bool, typer.Option("--timm", help="Use timm's model (with --checkpoint) as the reference.")] = False,
    variant: OptVariant = None,
    data: Annotated[Path | None, typer.Option("--data", help="Image folder (ImageFolder layout adds accuracy).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="Seeded synthetic inputs when no --data.")] = 32,
    limit: Annotated[int | None, typer.Option("--limit", help="Use at most this many images from --data.")] = None,
    batch_sizes: batch_sizes_option("1,3,8, or a static-batch artifact's own") = None,
    img_sizes: Annotated[str | None, typer.Option("--img-sizes", help="Dynamic-size artifacts: sizes to check, "
                                                  "e.g. 224,256x320 (default: the artifact's size).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="onnxruntime-cpu|-cuda|-tensorrt, tensorrt.")] = None,
    max_rel_delta: Annotated[float | None, typer.Option(help="Gate: max |delta| / max |ref logits|.")] = None,
    min_cosine: Annotated[float | None, typer.Option(help="Gate: minimum cosine similarity.")] = None,
    min_top1_agreement: Annotated[float | None, typer.Option(help="Gate: fraction with the same top-1.")] = None,
    min_top5_agreement: Annotated[float | None, typer.Option(help="Gate: reference top-1 in candidate top-5.")] = None,
    max_top1_drop: Annotated[float | None, typer.Option(help="Gate: accuracy points lost (labelled data).")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write a JSON report.")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML.")] = None,
) -> None:
    """Gate an artifact's accuracy against the float32 PyTorch reference: exit 0 pass, 1 fail, 2 bad input."""
    from swin_deploy.backends import artifact_info, runner_for
    from swin_deploy.models import Weights
    from swin_deploy.tolerances import DEFAULT_THRESHOLDS
    from swin_deploy.verify import reference as refs
    from swin_deploy.verify.report import junit_xml
    from swin_deploy.verify.run import load_inputs
    from swin_deploy.verify.run import verify as run_verify

    info = artifact_info(artifact, variant)
    sizes = parse_sizes(batch_sizes, [info.fixed_batch] if info.fixed_batch else [1, 3, 8])
    refs.check_batch_sizes(info, sizes)
    thresholds = DEFAULT_THRESHOLDS[info.precision].override(
        max_rel_delta=max_rel_delta, min_cosine=min_cosine, min_top1_agreement=min_top1_agreement,
        min_top5_agreement=min_top5_agreement, max_top1_drop=max_top1_drop)
    candidate = runner_for(artifact, backend)
    if reference is not None:
        ref_runner = runner_for(reference)
    elif timm_ref:
        if checkpoint is None:
            raise UserError("--timm needs --checkpoint: the weights timm's model should load")
        ref_runner = refs.timm_reference(info, checkpoint)
    else:
        ref_runner = refs.torch_reference(info, Weights.from_options(checkpoint, pretrained, random_init, seed))
    hw = [parse_hw(t, "--img-sizes") for t in img_sizes.split(",")] if img_sizes else [tuple(info.img_size)]
    for size in hw:
        info.check_size(size)
    inputs = [load_inputs(info, data, samples, seed, limit, size) for size in hw]
    with steps(len(sizes) * len(hw)) as on_step:
        result = run_verify(artifact, info, candidate, ref_runner, inputs, sizes, thresholds,
                            on_batch=lambda b: on_step(f"batch size {b}"))
    t = Table(title=f"verify {artifact.name} ({info.precision}) vs {result.reference['backend']} on {inputs[0].source}")
    t.add_column("metric")
    for b in result.batches:
        t.add_column(f"batch {b.batch_size}" + (f" @{b.img_size[0]}x{b.img_size[1]}" if len(hw) > 1 else ""),
                     justify="right")
    t.add_column("threshold", justify="right")
    first = result.batches[0]
    shown = [*[m for m in ("max_abs_delta", "mean_abs_delta") if m in first.metrics], *[c.metric for c in first.checks],
             *[m for m in ("ref_top1", "cand_top1", "ref_top5", "cand_top5") if m in first.metrics]]
    limits = {c.metric: ("<= " if c.kind == "max" else ">= ") + f"{c.threshold:.6g}" for c in first.checks}
    for m in shown:
        t.add_row(m, *[f"{b.metrics[m]:.4g}" for b in result.batches], limits.get(m, ""))
    out.print(t)
    if result.skipped_images:
        err.print(f"skipped {result.skipped_images} unreadable image(s)")
    if report:
        write_text_atomic(report, json.dumps(result.report(), indent=2))
    if junit:
        write_text_atomic(junit, junit_xml(result))
    failing = [f"batch {b.batch_size}: {c.describe()}" for b in result.batches for c in b.checks if not c.passed]
    if failing:
        for line in failing:
            err.print(f"[red]fail[/red] {escape(line)}", highlight=False)
        raise GateFailed(f"{artifact.name} failed {len(failing)} check(s)")
    out.print(f"[green]PASS[/green] {artifact.name}: {len(result.batches)} run(s) (batch size x input size), all gates met")


CalibData = Annotated[Path | None, typer.Option("--calib-data", help="Calibration images (ImageFolder or flat).")]
CalibImages = Annotated[int, typer.Option("--calib-images", help="How many images to sample (by --seed).")]
CalibBatch = Annotated[int, typer.Option("--calib-batch", help="Calibration batch size.")]
CalibCache = Annotated[Path | None, typer.Option("--calib-cache", help="Reuse the ranges of an earlier run.")]
Method = Annotated[str, typer.Option("--method", help="minmax | entropy | percentile.")]
Percentile = Annotated[float, typer.Option("--percentile", help="For --method percentile.")]
Target = Annotated[str, typer.Option("--target", help="tensorrt (symmetric int8) | onnxruntime (U8S8).")]
HighPrecision = Annotated[str | None, typer.Option("--high-precision", help="fp32 | fp16 for non-quantized ops.")]
AttentionMatmuls = Annotated[bool | None, typer.Option("--attention-matmuls/--no-attention-matmuls",
                                                       help="Quantize q k^T and attn v (default per target).")]
QuantizeHead = Annotated[bool, typer.Option("--quantize-head", help="Quantize the classifier too.")]
Exclude = Annotated[list[str] | None, typer.Option("--exclude", help="Node-name glob to keep in float (repeatable).")]
KeepAbove = Annotated[float, typer.Option("--fp16-keep-above", help="FP16: keep nodes whose activations exceed this.")]
CalibSize = Annotated[str | None, typer.Option("--calib-size", help="Dynamic-size models: calibrate at H,W "
                                               "(default: the model's default size).")]


def int8_options(target: str, method: str, percentile: float, attention_matmuls: bool | None, quantize_head: bool,
                 exclude: list[str] | None, high_precision: str | None):
    from calibration import Int8Options

    return Int8Options(target=target, method=method, percentile=percentile, attention_matmuls=attention_matmuls,
                       quantize_head=quantize_head, exclude=list(exclude or []), high_precision=high_precision)


INT8_ONLY = ("calib_cache", "method", "percentile", "target", "high_precision", "attention_matmuls", "quantize_head",
             "exclude")
CALIBRATION = ("calib_data", "calib_images", "calib_batch", "calib_size")


def reject_unused(ctx: typer.Context, names: tuple[str, ...], applies_to: str) -> None:
    """Options given on the command line that do not apply here are a mistake to report, not to ignore."""
    given = [n for n in names if n in ctx.params and getattr(ctx.get_parameter_source(n), "name", "DEFAULT") != "DEFAULT"]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        verb, pronoun = ("apply", "them") if len(given) > 1 else ("applies", "it")
        raise UserError(f"{flags} only {verb} to {applies_to}: drop {pronoun}")


def run_quantize(model: Path, precision: str, output: Path, options) -> object:
    """Shared by `quantize` and `build-engine --fp16/--int8`: progress bar, then the summary table."""
    from swin_deploy.precision.quantize import quantize as do_quantize

    with progress_bar() as progress:
        task = progress.add_task(f"{precision}: converting", total=None)

        def on_progress(step: str, n: int, total: int) -> None:
            progress.update(task, description=f"{precision}: {step}", total=total or None)
            progress.advance(task, n)

        result = do_quantize(model, output, options, on_progress)
    rows = {"path": result.path, "precision": precision, "quantized / converted nodes": result.quantized_nodes,
            "nodes kept in float": result.float_nodes, **result.details}
    if result.calib_images:
        rows["calibration images"] = result.calib_images
    if result.skipped_images:
        rows["unreadable images skipped"] = result.skipped_images
    if result.cache_path:
        rows["calibration cache"] = result.cache_path
    rows["seconds"] = f"{result.seconds:.1f}"
    table(f"quantized {model.name}", rows)
    return result


@app.command()
def quantize(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="An fp32 ONNX from swin-deploy export.")],
    precision: Annotated[str, typer.Option("--precision", help="fp16 | int8.")],
    output: Output = None,
    calib_data: CalibData = None,
    calib_images: CalibImages = 512,
    calib_batch: CalibBatch = 16,
    calib_cache: CalibCache = None,
    seed: Seed = 0,
    method: Method = "minmax",
    percentile: Percentile = 99.999,
    target: Target = "tensorrt",
    high_precision: HighPrecision = None,
    attention_matmuls: AttentionMatmuls = None,
    quantize_head: QuantizeHead = False,
    exclude: Exclude = None,
    fp16_keep_above: KeepAbove = 1e4,
    calib_size: CalibSize = None,
    variant: OptVariant = None,
) -> None:
    """Decide precision in the ONNX: FP16 with an FP32 block list, or INT8 Q/DQ from calibration images."""
    from swin_deploy.precision.quantize import QuantizeOptions

    if precision == "fp16":
        reject_unused(ctx, INT8_ONLY, "--precision int8")
    elif precision == "int8":
        reject_unused(ctx, ("fp16_keep_above",), "--precision fp16")
    output = output or model.with_name(f"{model.name.removesuffix('.onnx')}.{precision}.onnx")
    options = QuantizeOptions(precision=precision, calib_data=calib_data, calib_images=calib_images,
                              calib_batch=calib_batch, seed=seed, calib_cache=calib_cache, fp16_keep_above=fp16_keep_above,
                              int8=int8_options(target, method, percentile, attention_matmuls, quantize_head, exclude,
                                                high_precision), variant=variant,
                              calib_size=parse_hw(calib_size, "--calib-size") if calib_size else None)
    run_quantize(model, precision, output, options)


@app.command("demo-data")
def demo_data(folder: Annotated[Path, typer.Argument(help="Where to write calib/ and val/.")]) -> None:
    """Write the demo models' dataset (scikit-learn digits) as PNG files in ImageFolder layout."""
    from swin_deploy.demo import write_digits

    counts = write_digits(folder)
    table("demo data", {"folder": folder, "calib images": counts["calib"], "val images (held out)": counts["val"]})


@app.command()
def bench(
    artifacts: Annotated[list[Path] | None, typer.Argument(help="ONNX files and/or TensorRT engines.")] = None,
    torch_variant: Annotated[str | None, typer.Option("--torch", help="Add the PyTorch model of this variant.")] = None,
    checkpoint: Checkpoint = None,
    pretrained: Pretrained = False,
    random_init: RandomInit = False,
    seed: Seed = 0,
    backend: Annotated[str | None, typer.Option("--backend", help="Runtime for the ONNX files (default CPU).")] = None,
    batch_sizes: batch_sizes_option("1,8,32 and any static-batch artifact's own") = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs per batch size.")] = 3,
    iterations: Annotated[int | None, typer.Option("--iterations", help="Timed runs per batch size.")] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="Or: time budget per batch size.")] = None,
    threads: Threads = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON.")] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a PNG plot.")] = None,
) -> None:
    """Latency (p50/p90/p99, mean) and throughput of artifacts and the PyTorch reference, side by side."""
    from swin_deploy.backends import artifact_info, runner_for
    from swin_deploy.bench import BenchEntry, plot, run_bench

    if not artifacts and not torch_variant:
        raise UserError("nothing to benchmark: pass artifact paths and/or --torch VARIANT")
    if iterations is not None and seconds is not None:
        raise UserError("choose --iterations or --seconds, not both")
    if iterations is None and seconds is None:
        iterations = 20
    if (iterations is not None and iterations < 1) or (seconds is not None and seconds <= 0) or warmup < 0:
        raise UserError("--iterations and --seconds must be positive, --warmup not negative")
    infos = {path: artifact_info(path) for path in artifacts or []}
    fixed = {i.fixed_batch for i in infos.values() if i.fixed_batch}
    sizes = parse_sizes(batch_sizes, sorted({1, 8, 32} | fixed))
    if not sizes or min(sizes) < 1:
        raise UserError("batch sizes must be positive integers, e.g. --batch-sizes 1,8,32")
    entries = []
    for path, info in infos.items():
        entries.append(BenchEntry(path.name, runner_for(path, backend, threads), tuple(info.img_size),
                                  info.max_batch, info.fixed_batch))
        if not any(entries[-1].accepts(b) for b in sizes):
            takes = f"only batch {info.fixed_batch}" if info.fixed_batch else f"batches up to {info.max_batch}"
            raise UserError(f"{path.name} takes {takes}: pick --batch-sizes it accepts")
    if torch_variant:
        from swin_deploy.backends.torch_runner import TorchRunner
        from swin_deploy.models import Weights, build_model, get_config

        model, _ = build_model(get_config(torch_variant), Weights.from_options(checkpoint, pretrained, random_init, seed))
        entries.append(BenchEntry(f"pytorch {torch_variant}", TorchRunner(model.freeze(), threads=threads),
                                  tuple(model.cfg.img_size)))
    with progress_bar(counted=False) as progress:
        task = progress.add_task("warming up")
        results = run_bench(entries, sizes, warmup, iterations, seconds,
                            on_tick=lambda msg: progress.update(task, description=msg), seed=seed)
    t = Table(title="latency (ms, host to host) and throughput")
    device = any(r.compute_p50_ms is not None for r in results)  # GPU runners time device compute apart
    for col in ("artifact", "backend", "batch", "p50", "p90", "p99", "mean", "img/s", *(["compute p50"] if device else [])):
        t.add_column(col, justify="left" if col in ("artifact", "backend") else "right", overflow="fold")
    for r in results:
        compute = ["-" if r.compute_p50_ms is None else f"{r.compute_p50_ms:.2f}"] if device else []
        t.add_row(r.label, r.backend, str(r.batch_size), f"{r.p50_ms:.2f}", f"{r.p90_ms:.2f}", f"{r.p99_ms:.2f}",
                  f"{r.mean_ms:.2f}", f"{r.throughput:.1f}", *compute)
    out.print(t)
    runners = {e.label: e.runner.describe() for e in entries}
    if json_path:
        write_text_atomic(json_path, json.dumps({"results": [r.as_dict() for r in results], "runners": runners,
                                                 "threads": threads}, indent=2))
    if plot_path:
        plot(results, plot_path)


def parse_bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)
    except (ValueError, KeyError):
        raise UserError(f"--workspace takes a size like 4GiB or 512MiB, not '{text}'") from None


@app.command("build-engine")
def build_engine(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(help="ONNX from export (fp32) or quantize (fp16/int8).")],
    fp16: Annotated[bool, typer.Option("--fp16", help="Convert an fp32 ONNX to FP16 first.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Calibrate an fp32 ONNX to INT8 Q/DQ first.")] = False,
    calib_data: CalibData = None,
    calib_images: CalibImages = 512,
    calib_batch: CalibBatch = 16,
    calib_cache: CalibCache = None,
    seed: Seed = 0,
    method: Method = "minmax",
    percentile: Percentile = 99.999,
    high_precision: HighPrecision = None,
    attention_matmuls: AttentionMatmuls = None,
    exclude: Exclude = None,
    min_batch: Annotated[int, typer.Option("--min-batch")] = 1,
    opt_batch: Annotated[int, typer.Option("--opt-batch")] = 8,
    max_batch: Annotated[int, typer.Option("--max-batch")] = 32,
    min_size: Annotated[str | None, typer.Option("--min-size", help="H,W for a --dynamic-size ONNX.")] = None,
    opt_size: Annotated[str | None, typer.Option("--opt-size", help="H,W for a --dynamic-size ONNX.")] = None,
    max_size: Annotated[str | None, typer.Option("--max-size", help="H,W for a --dynamic-size ONNX.")] = None,
    workspace: Annotated[str, typer.Option("--workspace", help="Builder workspace, e.g. 4GiB.")] = "4GiB",
    timing_cache: Annotated[Path | None, typer.Option("--timing-cache", help="Loaded if present, saved after.")] = None,
    opt_level: Annotated[int | None, typer.Option("--builder-optimization-level", min=0, max=5)] = None,
    output: Output = None,
) -> None:
    """Build a strongly typed TensorRT engine (TensorRT 10 and 11); precision comes from the ONNX."""
    from swin_deploy.artifact import read_info
    from swin_deploy.backends.tensorrt_runner import BuildOptions, check_profile, import_tensorrt
    from swin_deploy.backends.tensorrt_runner import build_engine as do_build
    from swin_deploy.fileio import sha256_file

    if fp16 and int8:
        raise UserError("choose --fp16 or --int8, not both")
    if not int8:
        reject_unused(ctx, INT8_ONLY, "--int8")
    if not (int8 or fp16):
        reject_unused(ctx, CALIBRATION, "--int8 or --fp16 (calibration images)")
    import_tensorrt()  # fail fast, before any calibration work
    info = read_info(model)
    options = BuildOptions(min_batch, opt_batch, max_batch,
                           *(parse_hw(v, f"--{k}-size") if v else None for k, v in (("min", min_size), ("opt", opt_size),
                                                                                   ("max", max_size))),
                           workspace_bytes=parse_bytes(workspace), timing_cache=timing_cache, optimization_level=opt_level)
    check_profile(info, options)
    wanted = "fp16" if fp16 else "int8" if int8 else None
    if wanted and info.precision != "fp32":
        raise UserError(f"{model.name} is already {info.precision}: drop --{wanted}, or pass the fp32 export")
    if wanted:
        from swin_deploy.precision.quantize import QuantizeOptions

        qpath = model.with_name(f"{model.name.removesuffix('.onnx')}.{wanted}.onnx")
        run_quantize(model, wanted, qpath, QuantizeOptions(
            precision=wanted, calib_data=calib_data, calib_images=calib_images, calib_batch=calib_batch, seed=seed,
            calib_cache=calib_cache, int8=int8_options("tensorrt", method, percentile, attention_matmuls, False,
                                                       exclude, high_precision)))
        model, info = qpath, read_info(qpath)
    output = output or model.with_suffix(".engine")
    with steps(1) as on_step:
        on_step("building TensorRT engine")
        meta = do_build(model, info, sha256_file(model), output, options)
    table(f"engine {output.name}", {"path": output, "precision": meta.precision, "TensorRT": meta.tensorrt,
                                    "GPU": f"{meta.gpu} (sm {meta.compute_capability})",
                                    "profile (batch)": f"{min_batch} / {opt_batch} / {max_batch}",
                                    "seconds": meta.build_seconds})


def main() -> None:
    """Console entry point: map library errors to exit codes and one-line messages.

    click's standalone mode handles its own usage errors (exit 2) and Ctrl-C; everything the
    library raises passes through to here.
    """
    debug = os.environ.get("SWIN_DEPLOY_DEBUG") == "1"
    try:
        app()
    except (UserError, GateFailed) as e:
        if debug:
            raise
        label = "error" if isinstance(e, UserError) else "FAILED"
        err.print(f"[red]{label}:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except Exception as e:
        if debug:
            raise
        err.print(f"[red]internal error:[/red] {type(e).__name__}: {escape(str(e))} "
                  "(rerun with SWIN_DEPLOY_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
