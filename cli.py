"""swin-deploy command line: thin wiring over the swin_deploy library.

Exit codes: 0 success, 1 an accuracy gate failed, 2 a usage or input error (one line, no traceback
unless SWIN_DEPLOY_DEBUG=1).
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
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


@contextmanager
def steps(total: int):
    """A rich progress line for multi-step work; yields a callback that names the current step."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
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
    output: Output = None,
) -> None:
    """Export a native Swin model to ONNX (dynamic batch, opset-safe windows) and check parity.

    Weights: bundled for demo variants, else timm's pretrained unless --checkpoint or --random-init.
    """
    from swin_deploy.export import ExportOptions, export_onnx
    from swin_deploy.models import Weights, build_model, get_config

    cfg = get_config(variant)
    if img_size is not None:
        cfg = cfg.with_img_size((img_size, img_size))
    options = ExportOptions(opset=opset, static_batch=static_batch, max_batch=max_batch, simplify=not no_simplify,
                            verify=not no_verify)
    path = output or Path(f"{cfg.name}.onnx")
    weights = Weights.from_options(checkpoint, pretrained, random_init, seed)
    from swin_deploy.export.onnx_export import check_options
    from swin_deploy.fileio import check_writable_dir

    check_options(options)
    check_writable_dir(path)
    with steps(6) as on_step:
        on_step("build + load weights")
        model, sha = build_model(cfg, weights)
        result = export_onnx(model, sha, path, options, on_step=on_step)
    table(f"exported {cfg.name}", {
        "path": result.path, "size": f"{result.size_bytes / 1e6:.1f} MB", "opset": result.opset,
        "nodes": result.nodes, "LayerNorm": "fused (LayerNormalization)" if result.layernorm_fused else
        "decomposed (opset < 17)", "parity": "skipped" if result.parity_delta is None else
        f"{result.parity_delta:.1e} x max|logits|", "exporter": result.exporter, "seconds": f"{result.seconds:.1f}",
    })


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
        err.print(f"[red]{label}:[/red] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except Exception as e:
        if debug:
            raise
        err.print(f"[red]internal error:[/red] {type(e).__name__}: {e} "
                  "(rerun with SWIN_DEPLOY_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
