"""swin-deploy command line: thin wiring over the swin_deploy and calibration libraries.

Each command parses its options, calls one library function and renders the result (swin_deploy.render).
Exit codes: 0 success, 1 an accuracy gate failed, 2 a usage or input error (one line, no traceback
unless SWIN_DEPLOY_DEBUG=1), 3 an internal error; 130 and 143 on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Annotated

import typer
import typer.core
from typer import TyperException as UsageErrors  # click's usage errors, in the copy of click typer carries

from calibration.options import GATES, Int8Options, QuantizeOptions
from swin_deploy import defaults
from swin_deploy.enums import Precision
from swin_deploy.errors import GateFailed, SwinDeployError, UserError, out_of_space
from swin_deploy.parsing import parse_bytes, parse_floats, parse_fraction, parse_hw, parse_hw_list, parse_ints, read_class_names


def _flags_untyped(params: list) -> list:
    """Flags shown without a value type. Typer 0.29's help labels every option with its type, flags too
    (`--static-batch <bool>`, read as if it took true/false, which is a usage error); earlier releases left the
    type out for flags, as click does."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.display_type_rich = lambda ctx: None
    return params


class UntypedFlagsGroup(typer.core.TyperGroup):
    def get_params(self, ctx) -> list:
        return _flags_untyped(super().get_params(ctx))


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, cls=UntypedFlagsGroup,
                  help="Export Swin Transformer V1/V2 to ONNX and TensorRT, set precision, and gate accuracy and speed.")


class OnceCommand(typer.core.TyperCommand):
    """A command that refuses an option given twice: click keeps the last value silently, so `quantize --calib-data a
    --calib-data b` calibrated on b alone and `--batch-sizes 1 --batch-sizes 8` benched batch 8 alone."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
            seen = set()
            for param in order:
                # click's Option by its type name: typer carries its own copy of click since 0.2x
                once = param.param_type_name == "option" and not (param.multiple or param.count or param.is_eager)
                if once and param in seen:
                    ctx.fail(_given_twice(param, args))
                seen.add(param)
        return super().parse_args(ctx, args)

    def get_params(self, ctx) -> list:
        return _flags_untyped(super().get_params(ctx))


command = functools.partial(app.command, cls=OnceCommand)


def _given_twice(param, args: list[str]) -> str:
    spelled = list(dict.fromkeys(a.split("=", 1)[0] for a in args if a.split("=", 1)[0] in (*param.opts,
                                                                                         *param.secondary_opts)))
    if len(spelled) < 2:  # one spelling twice (or as `-ofile`, which names no option by itself)
        return f"{spelled[0] if spelled else max(param.opts, key=len)} given twice: give it once (only the last " \
               "would count)"
    if {*spelled} & {*param.opts} and {*spelled} & {*param.secondary_opts}:
        return f"{' and '.join(spelled)} say opposite things: give one of them"
    return f"{' and '.join(spelled)} are the same option: give it once (only the last would count)"


def _print_version(asked: bool) -> None:
    if asked:
        from swin_deploy import __version__

        typer.echo(f"swin-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print the version and exit.")] = False) -> None:
    pass

# ---- shared options ------------------------------------------------------------------------------------------
Variant = Annotated[str | None, typer.Option("--variant", "-v", help="Short name (swin_t, swinv2_t, ...) or timm "
                                             "name; default swin_t, or a transformers checkpoint's own.")]
OptVariant = Annotated[str | None, typer.Option("--variant", help="Variant, for an ONNX or IR without swin-deploy "
                                                                  "metadata.")]
Checkpoint = Annotated[Path | None, typer.Option(
    "--checkpoint", help="timm or official Swin state_dict (.pth/.pt/.safetensors/.ckpt), a transformers or timm "
    "hub folder, or a Hugging Face hub id (owner/name; from the hub cache, else fetched).")]
Pretrained = Annotated[bool, typer.Option("--pretrained", help="timm's pretrained weights (downloads through timm).")]
RandomInit = Annotated[bool, typer.Option("--random-init", help="Seeded random weights (tests, speed).")]
Ema = Annotated[bool, typer.Option("--ema", help="The checkpoint's EMA weights (timm's state_dict_ema, the official "
                                   "code's model_ema), not its raw ones.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for random weights, sampling and synthetic inputs.")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Output path.")]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads (default: the runtime's choice).")]
Json = Annotated[Path | None, typer.Option("--json", help="Write the results as JSON to PATH (- for stdout).")]
Workers = Annotated[int | None, typer.Option("--workers", help="Image decode workers (default: by the machine).")]
ImgSize = Annotated[str | None, typer.Option("--img-size", help="Input size, e.g. 384 or 512x640: a dynamic-size "
                                             "artifact runs at any size in its range (default: the artifact's own).")]
Gate = Annotated[float | None, typer.Option(help="Gate threshold (default: by precision, swin_deploy/tolerances.py).")]
SearchGate = Annotated[float | None, typer.Option(help="--auto-exclude and --sensitivity: the gate to reach against "
                                                  "float32 (default: verify's INT8 one).")]


def _listed(sizes: tuple[int, ...]) -> str:
    return ",".join(map(str, sizes))


def batch_sizes_option(default: str):
    """--batch-sizes, defaulting to None so the library can choose by artifact (a static batch)."""
    return Annotated[str | None, typer.Option("--batch-sizes", help=f"Comma-separated batch sizes (default: {default}).")]


def weights(checkpoint: Path | None, pretrained: bool, random_init: bool, seed: int, ema: bool):
    from swin_deploy.models import Weights

    return Weights.from_options(checkpoint, pretrained, random_init, seed, ema)


def parsed(parse, text: str | None, flag: str):
    """An option's text through its parser (swin_deploy.parsing), or None when the option was not given (an empty
    value is given: the parser refuses it rather than it meaning the default)."""
    return parse(text, flag) if text is not None else None


def hw(text: str | None, flag: str) -> tuple[int, int] | None:
    return parsed(parse_hw, text, flag)


def ints(text: str | None, flag: str) -> list[int] | None:
    return parsed(parse_ints, text, flag)


def write_json(path: Path | None, document: dict | list) -> None:
    """--json PATH writes the document atomically; --json - prints it on stdout (every command means the same)."""
    from swin_deploy.fileio import write_text_atomic

    if path is None:
        return
    text = json.dumps(document, indent=2)
    if str(path) == "-":
        try:
            print(text, flush=True)
        except BrokenPipeError:
            # the reader stopped early (`| head`), which is its business: the exit code stays the command's verdict
            # (click turns the error into exit 1, which here means a failed gate); later output goes nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    else:
        write_text_atomic(path, text)


def shared(*groups: list[inspect.Parameter]):
    """Append the parameters of `groups` to a command's signature (Typer reads the signature), so options that several
    commands share are declared once; the command receives them in its **settings."""
    def decorate(command):
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
               if p.kind != inspect.Parameter.VAR_KEYWORD]

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            return command(*args, **kwargs)

        wrapper.__signature__ = inspect.Signature([*own, *(p for group in groups for p in group)])
        return wrapper

    return decorate


def options_of(defaults_from, **declared) -> list[inspect.Parameter]:
    """Keyword parameters `name: Annotated[...]`, each defaulting to the library's own default (`defaults_from`'s
    field of that name), so the command line never restates one."""
    values = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
              for f in dataclasses.fields(defaults_from)
              if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                              default=values.get(name)) for name, annotation in declared.items()]


def _calibration_options() -> list[inspect.Parameter]:
    return options_of(
        QuantizeOptions,
        calib_data=Annotated[Path | None, typer.Option("--calib-data", help="Calibration images (ImageFolder or flat).")],
        calib_images=Annotated[int, typer.Option("--calib-images", help="How many images to sample (by --seed).")],
        calib_batch=Annotated[int, typer.Option("--calib-batch", help="Calibration batch size.")],
        calib_size=Annotated[str | None, typer.Option("--calib-size", help="Dynamic-size models: calibrate at H,W.")],
        calib_cache=Annotated[Path | None, typer.Option("--calib-cache", help="INT8: reuse the ranges of an earlier run.")],
        workers=Annotated[int | None, typer.Option("--workers", help="Image decode workers (default: by the machine).")],
        seed=Annotated[int, typer.Option("--seed", help="Seed for sampling calibration images.")],
        fp16_keep_above=Annotated[float, typer.Option(
            "--fp16-keep-above", help="FP16, and INT8 with float16 outside its Q/DQ: keep in float32 the nodes whose "
            "activations on the calibration images exceed this.")],
        variant=OptVariant,
    )


def _int8_options() -> list[inspect.Parameter]:
    return options_of(
        Int8Options,
        method=Annotated[str, typer.Option("--method", help="minmax | entropy | percentile.")],
        percentile=Annotated[float, typer.Option("--percentile", help="For --method percentile.")],
        high_precision=Annotated[str | None, typer.Option("--high-precision", help="fp32 | fp16 for non-quantized ops "
                                                          "(default: by target).")],
        attention_matmuls=Annotated[bool | None, typer.Option("--attention-matmuls/--no-attention-matmuls",
                                                              help="Quantize q k^T and attn v.")],
        quantize_head=Annotated[bool, typer.Option("--quantize-head", help="Quantize the classifier too.")],
        placement=Annotated[str, typer.Option("--placement", help="INT8 Q/DQ: linear (linear layers' inputs) | nvidia "
                                              "(+ attention matmuls and residual adds, NVIDIA's guidance for TensorRT).")],
        exclude=Annotated[list[str] | None, typer.Option("--exclude", help="Node-name glob to keep in float (repeatable).")],
        auto_exclude=Annotated[bool, typer.Option("--auto-exclude", help="Keep blocks in float, worst first, until "
                                                  "the INT8 is within verify's INT8 gates (or those given) on the "
                                                  "images compared (the --sensitivity search).")],
        **{name: SearchGate for name in GATES},
        compare_images=Annotated[int, typer.Option("--compare-images", help="--auto-exclude and --sensitivity: "
                                                   "images each comparison runs on.")],
        compare_data=Annotated[Path | None, typer.Option("--compare-data", help="--auto-exclude and --sensitivity: "
                                                         "compare on these images, e.g. the validation set verify "
                                                         "will use (default: calibration-folder images calibration "
                                                         "did not read).")],
        reduce_range=Annotated[bool, typer.Option("--reduce-range", help="7-bit weights, exact on CPUs without VNNI "
                                                  "(AVX2 only, or AVX-512 before Cascade Lake): docs/cpu.md.")],
    )


def conversion_settings(settings: dict) -> dict:
    """The shared quantize/build-engine settings as the library takes them (H,W text parsed)."""
    return {**settings, "calib_size": hw(settings["calib_size"], "calib_size")}


# how an artifact runs: verify, bench and predict share these
RUNTIME_OPTIONS = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=None)
                   for name, annotation in {
    "threads": Threads,
    "inference_precision": Annotated[str | None, typer.Option(
        "--inference-precision", help="OpenVINO: f32 | bf16 | f16 (default: f32 for fp32/fp16 artifacts, OpenVINO's "
        "own for INT8); the gate follows what runs.")],
    "performance_hint": Annotated[str | None, typer.Option("--performance-hint", help="OpenVINO and onnxruntime-cpu: "
                                                          "latency | throughput (default latency; throughput splits "
                                                          "each batch over streams of one thread). bench: "
                                                          "comma-separated, each such runner under each.")],
    "cache_dir": Annotated[Path | None, typer.Option("--cache-dir", help="OpenVINO: cache compiled models here.")],
}.items()]
BACKEND_HELP = "onnxruntime-cpu (default for ONNX) | onnxruntime-cuda | onnxruntime-tensorrt | openvino | tensorrt."


def openvino_options(settings: dict):
    from swin_deploy.backends.openvino_runner import OpenVinoOptions

    return OpenVinoOptions.given(**{k: settings[k] for k in ("inference_precision", "performance_hint", "cache_dir")})


def commas(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated option's values (None: not given)."""
    return tuple(v.strip() for v in text.split(",")) if text is not None else None


def use_threads(settings: dict) -> int | None:
    """--threads, checked by the library, also set as this process's PyTorch thread count (PyTorch references and
    runners share the process: a process-wide setting is the application's to make, the library leaves it alone)."""
    from swin_deploy.backends import checked_threads

    threads = checked_threads(settings["threads"])
    if threads:
        import torch

        torch.set_num_threads(threads)
    return threads


CALIBRATION_OPTIONS = _calibration_options()
INT8_OPTIONS = _int8_options()


# ---- commands ------------------------------------------------------------------------------------------------
@command()
def variants(json_path: Json = None) -> None:
    """List the registered Swin variants."""
    from swin_deploy import render
    from swin_deploy.fileio import check_outputs
    from swin_deploy.models import VARIANTS

    check_outputs(json=json_path)
    write_json(json_path, [c.summary() for c in VARIANTS.values()])
    if str(json_path) != "-":
        render.variants_table(VARIANTS.values())


def _simplifier(simplifier: str | None, no_simplify: bool) -> str:
    if no_simplify and simplifier not in (None, "none"):
        raise UserError("--no-simplify is --simplifier none: pass one of them")
    return "none" if no_simplify else simplifier or defaults.SIMPLIFIER


@command()
def export(
    variant: Variant = None,
    checkpoint: Checkpoint = None,
    pretrained: Pretrained = False,
    random_init: RandomInit = False,
    seed: Seed = defaults.SEED,
    ema: Ema = False,
    img_size: Annotated[str | None, typer.Option("--img-size", help="Input size, e.g. 384 or 512x640 (default: the "
                                                 "variant's); stage grids the windows do not tile are padded.")] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 13 up to the newest supported.")] = defaults.OPSET,
    max_batch: Annotated[int | None, typer.Option("--max-batch", help="Largest batch the artifact takes (its engine "
                                                  "profiles' and Triton's max).")] = None,
    static_batch: Annotated[bool, typer.Option("--static-batch", help="Fixed batch (--max-batch or 1).")] = False,
    simplifier: Annotated[str | None, typer.Option("--simplifier", help="onnxsim | onnxslim | onnxslim+onnxsim | none "
                                                   f"(default {defaults.SIMPLIFIER}).")] = None,
    no_simplify: Annotated[bool, typer.Option("--no-simplify", help="Same as --simplifier none.")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the onnxruntime-vs-PyTorch parity check.")] = False,
    dynamic_size: Annotated[bool, typer.Option("--dynamic-size", help="Any input H, W in a range (--min/--max-size).")] = False,
    min_size: Annotated[str | None, typer.Option("--min-size", help="H,W; default: smallest with full windows.")] = None,
    max_size: Annotated[str | None, typer.Option("--max-size", help="H,W; default: 2x max(default size, min size).")] = None,
    features: Annotated[bool, typer.Option("--features", help="Output the stage feature maps (NCHW), not logits.")] = False,
    input_format: Annotated[str, typer.Option("--input-format", help="float32 (normalised NCHW) | uint8 (raw pixels "
                                              "after resize/crop; normalisation folded into the graph).")] = "float32",
    channels_last: Annotated[bool, typer.Option("--channels-last", help="uint8 pixels as (B, H, W, 3).")] = False,
    export_format: Annotated[str | None, typer.Option("--format", help="onnx | openvino (an IR: .xml + .bin); default: "
                                                      "openvino for an -o ending in .xml, else onnx.")] = None,
    mean: Annotated[str | None, typer.Option("--mean", help="A fine-tune's normalisation mean, per channel or once, e.g. "
                                             "0.5,0.5,0.5 (default: the variant's or checkpoint config's).")] = None,
    std: Annotated[str | None, typer.Option("--std", help="Its normalisation std, like --mean.")] = None,
    interpolation: Annotated[str | None, typer.Option("--interpolation", help="Its resize filter: bicubic, bilinear, "
                                                      "nearest, lanczos, box or hamming.")] = None,
    crop_pct: Annotated[float | None, typer.Option("--crop-pct", help="Its eval crop: the short side is resized to "
                                                   "size / crop-pct, then center-cropped.")] = None,
    crop_mode: Annotated[str | None, typer.Option("--crop-mode", help="center (as --crop-pct says), squash (both sides "
                                                  "to the size, no crop) or border (timm's).")] = None,
    class_names: Annotated[Path | None, typer.Option("--class-names", help="A fine-tune's class names: a text file, "
                                                     "one per line in class-index order.")] = None,
    window_size: Annotated[int | None, typer.Option("--window-size", help="A fine-tune's window, where it is not the "
                                                    "variant's (default: what its training args or its tensors "
                                                    "say).")] = None,
    output: Output = None,
) -> None:
    """Export a native Swin model to ONNX (dynamic batch, opset-safe windows) and check parity.

    Weights: bundled for demo variants, else timm's pretrained unless --checkpoint or --random-init.
    """
    from swin_deploy import render
    from swin_deploy.export import ExportOptions, export_variant
    from swin_deploy.models import Preprocessing

    options = ExportOptions(opset=opset, static_batch=static_batch, max_batch=max_batch,
                            simplifier=_simplifier(simplifier, no_simplify), verify=not no_verify, features=features,
                            img_size=hw(img_size, "img_size"), dynamic_size=dynamic_size,
                            min_size=hw(min_size, "min_size"), max_size=hw(max_size, "max_size"),
                            input_format=input_format, channels_last=channels_last, format=export_format,
                            preprocessing=Preprocessing(parsed(parse_floats, mean, "mean"), parsed(parse_floats, std, "std"),
                                                        interpolation, crop_pct, crop_mode),
                            class_names=parsed(read_class_names, class_names, "class_names"), window_size=window_size)
    source = weights(checkpoint, pretrained, random_init, seed, ema)
    use_threads({"threads": None})  # PyTorch's threads: a CPU quota's CPUs where there is one, as verify's
    with render.steps(6) as on_step:
        result = export_variant(variant, source, output, options, on_step=on_step)
    render.export_summary(result)


@command()
@shared(RUNTIME_OPTIONS)
def verify(
    artifact: Annotated[Path, typer.Argument(help="The .onnx, .engine or OpenVINO .xml to check.")],
    checkpoint: Checkpoint = None,
    pretrained: Pretrained = False,
    random_init: RandomInit = False,
    seed: Seed = defaults.SEED,
    ema: Ema = False,
    reference: Annotated[Path | None, typer.Option("--reference", help="Gate against another artifact instead.")] = None,
    timm: Annotated[bool, typer.Option("--timm", help="Use timm's model (with --checkpoint) as the reference.")] = False,
    transformers: Annotated[bool, typer.Option("--transformers", help="Use transformers' model (with --checkpoint "
                                               "FOLDER) as the reference.")] = False,
    variant: OptVariant = None,
    data: Annotated[Path | None, typer.Option("--data", help="Image folder: class folders (or ImageNet synset "
                                              "folders) add accuracy.")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="CSV filename,label (index or synset) for a flat "
                                                "--data folder.")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help=f"Seeded synthetic inputs when no --data (default "
                                                f"{defaults.VERIFY_SAMPLES}; INT8 of trained weights needs --data, or "
                                                "--samples to run them anyway).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Use at most this many images from --data.")] = None,
    batch_sizes: batch_sizes_option(f"{_listed(defaults.VERIFY_BATCH_SIZES)}, or a static-batch artifact's own; "
                                     "accuracy over every input at the first, batch consistency on a subset at the "
                                     "others") = None,
    consistency_samples: Annotated[int | None, typer.Option(
        help=f"Inputs each further batch size (and a dynamic range's ends) is checked on (default "
             f"{defaults.CONSISTENCY_SAMPLES}).")] = None,
    reference_cache: Annotated[Path | None, typer.Option(help="Reference outputs saved here once, reused after "
                                                         "(refused if made for anything else).")] = None,
    reference_device: Annotated[str, typer.Option(help="PyTorch reference on auto | cpu | cuda.")] = "auto",
    workers: Workers = None,
    strict: Annotated[bool, typer.Option("--strict", help="An unreadable image fails the run (exit 2).")] = False,
    img_sizes: Annotated[str | None, typer.Option("--img-sizes", help="Dynamic-size artifacts: sizes to check, "
                                                  "each over every input, e.g. 224,256x320 (default: the artifact's "
                                                  "size, and its range's ends on the first --consistency-samples "
                                                  "inputs).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help=BACKEND_HELP)] = None,
    max_rel_delta: Gate = None,
    min_cosine: Gate = None,
    min_top1_agreement: Gate = None,
    min_top5_agreement: Gate = None,
    max_top1_drop: Gate = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write a JSON report to PATH (- for stdout).")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML.")] = None,
    **settings,
) -> None:
    """Gate an artifact's accuracy against the float32 PyTorch reference: exit 0 pass, 1 fail, 2 bad input."""
    from swin_deploy import render
    from swin_deploy.fileio import check_outputs
    from swin_deploy.verify.report import write_reports
    from swin_deploy.verify.run import VerifyOptions, verify_artifact

    check_outputs([artifact, *filter(None, [reference, checkpoint])], report=report, junit=junit)
    options = VerifyOptions(
        weights=weights(checkpoint, pretrained, random_init, seed, ema), timm=timm, transformers=transformers,
        reference=reference, variant=variant,
        data=data, labels=labels, samples=samples, limit=limit, seed=seed, batch_sizes=ints(batch_sizes, "batch_sizes"),
        consistency_samples=consistency_samples, img_sizes=parsed(parse_hw_list, img_sizes, "img_sizes"),
        backend=backend, openvino=openvino_options(settings), threads=use_threads(settings),
        reference_device=reference_device,
        reference_cache=reference_cache, workers=workers,
        strict=strict,
        thresholds=dict(max_rel_delta=max_rel_delta, min_cosine=min_cosine, min_top1_agreement=min_top1_agreement,
                        min_top5_agreement=min_top5_agreement, max_top1_drop=max_top1_drop))
    with render.rate_progress() as on_progress:
        result = verify_artifact(artifact, options, on_progress)
    stdout_json = str(report) == "-"  # stdout is then the report alone, for a pipe; the verdicts go to stderr
    if stdout_json:
        write_json(report, result.report())
    else:
        render.verify_table(result)
    write_reports(result, None if stdout_json else report, junit)
    for line in result.failures():
        render.failure("fail", line)
    # near-ties of random weights alone failed: the note says what to do, and no block of the INT8 is to blame
    if not result.passed and result.info.precision == Precision.INT8 and not result.float16_overflowed \
            and not result.random_near_ties:
        # an INT8 another tool made (no swin-deploy metadata, so no weights hash): its own quantizer's blocks are not
        # the ones --sensitivity would find in swin-deploy's INT8
        made_here = bool(result.info.weights_sha256)
        render.warn("what to do: `swin-deploy quantize` of the fp32 ONNX " + (
            "with --sensitivity names the blocks an INT8 loses its accuracy in, and with --auto-exclude keeps them in "
            "float" if made_here else "(with --variant) writes swin-deploy's INT8 of it, with --auto-exclude keeping "
            "in float the blocks it would lose its accuracy in") + " (docs/precision.md)")
    if not result.passed:
        raise GateFailed(f"{artifact.name} failed {len(result.failures())} check(s)")
    if not stdout_json:
        render.passed(f"{artifact.name}: {len(result.batches)} run(s) (batch size x input size), all gates met")


@command()
@shared(CALIBRATION_OPTIONS, INT8_OPTIONS)
def quantize(
    model: Annotated[Path, typer.Argument(help="An fp32 ONNX from swin-deploy export.")],
    precision: Annotated[str, typer.Option("--precision", help="fp16 | int8.")],
    output: Output = None,
    target: Annotated[str, typer.Option("--target", help="INT8 for tensorrt (symmetric int8) | onnxruntime (U8S8).")] =
    Int8Options.target,
    sensitivity: Annotated[bool, typer.Option("--sensitivity", help=(
        "INT8: rank the blocks by how far each alone in INT8 moves the output (vs float32, on images of the "
        "calibration folder or --compare-data), to pick --exclude; writes no model."))] = False,
    json_path: Json = None,
    **settings,
) -> None:
    """Decide precision in the ONNX: FP16 with an FP32 block list, or INT8 Q/DQ from calibration images."""
    from calibration import quantize as convert
    from swin_deploy import render
    from swin_deploy.fileio import check_outputs

    options = QuantizeOptions.of(precision, target=target, **conversion_settings(settings))
    if json_path is not None and not sensitivity:
        raise UserError("--json writes the --sensitivity ranking: add --sensitivity (quantize writes the model itself)")
    if sensitivity:
        from calibration.convert import sensitivity as rank_blocks

        if output is not None:
            raise UserError("--sensitivity writes no model: drop --output (then quantize with --exclude)")
        check_outputs([model], json=json_path)
        with render.image_progress("sensitivity") as on_progress:
            ranking = rank_blocks(model, options, on_progress=on_progress)
        write_json(json_path, ranking.as_dict())
        if str(json_path) != "-":
            render.sensitivity_table(ranking)
        return
    with render.image_progress(precision) as on_progress:
        result = convert(model, output, options, on_progress)
    render.quantize_summary(model.name, result)


@command()
@shared(RUNTIME_OPTIONS)
def predict(
    artifact: Annotated[Path, typer.Argument(help="An .onnx (any precision), .engine or OpenVINO .xml.")],
    images: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes shown per image.")] = 5,
    json_path: Json = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", help="Default 8 (or the image count, if fewer), or a static batch.")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help=BACKEND_HELP)] = None,
    workers: Workers = None,
    variant: OptVariant = None,
    img_size: ImgSize = None,
    **settings,
) -> None:
    """What the artifact sees: top-k classes with names per image (unreadable images are listed and skipped)."""
    from swin_deploy import render
    from swin_deploy.data import image_files
    from swin_deploy.fileio import check_outputs
    from swin_deploy.predict import predict as run_predict

    check_outputs([artifact, *images], json=json_path)
    if json_path is not None and str(json_path) != "-":  # an image found in a folder is an input too
        check_outputs(image_files(images), json=json_path)
    with render.rate_progress() as on_progress:
        result = run_predict(artifact, images, top_k, batch_size, backend, workers, on_progress,
                             openvino=openvino_options(settings), threads=use_threads(settings), variant=variant,
                             img_size=hw(img_size, "img_size"))
    for path, why in zip(result.skipped, result.skip_reasons):
        render.warn(f"skipped {path}: {why}")
    render.notes(result.notes)
    write_json(json_path, result.as_dict())
    if str(json_path) != "-":
        render.predictions(result)


@command()
def triton(
    artifact: Annotated[Path | None, typer.Argument(help="An .onnx, .engine or OpenVINO .xml to serve.")] = None,
    repo: Annotated[Path | None, typer.Option("--repo", help="The model repository folder to write into.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Model name (default: from the file name).")] = None,
    version: Annotated[int, typer.Option("--version", help="Version folder.")] = 1,
    max_batch: Annotated[int | None, typer.Option("--max-batch", help="max_batch_size (default: the engine profile's "
                                                  "or the export's max, else 32).")] = None,
    instances: Annotated[int, typer.Option("--instances", help="Model instances.")] = 1,
    kind: Annotated[str | None, typer.Option("--kind", help=(
        "gpu | cpu | auto (default: cpu for OpenVINO; gpu for an engine or with --ort-tensorrt; else auto, the "
        "server's GPUs or its CPU where it has none)."))] = None,
    runtime: Annotated[str | None, typer.Option("--runtime", help="For an ONNX: onnxruntime (default) | openvino "
                                                "(Triton's OpenVINO backend, CPU).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="OpenVINO: INFERENCE_NUM_THREADS.")] = None,
    streams: Annotated[int | None, typer.Option("--streams", help="OpenVINO: NUM_STREAMS (default 1).")] = None,
    performance_hint: Annotated[str | None, typer.Option("--performance-hint", help="OpenVINO: latency | throughput.")]
    = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="OpenVINO: HINT_BF16.")] = False,
    static_batch: Annotated[bool, typer.Option("--static-batch", help="OpenVINO: compile for the max batch alone, "
                                               "padding smaller batches (faster per batch on a busy server).")] = False,
    dynamic_batching: Annotated[bool | None, typer.Option("--dynamic-batching/--no-dynamic-batching",
                                                          help="Server-side batching (default: on if it can).")] = None,
    preferred_batch: Annotated[str | None, typer.Option("--preferred-batch", help="e.g. 8,16.")] = None,
    max_queue_delay_us: Annotated[int, typer.Option("--max-queue-delay-us", help="Dynamic batching delay.")] = \
    defaults.TRITON_MAX_QUEUE_DELAY_US,
    ort_tensorrt: Annotated[str | None, typer.Option("--ort-tensorrt", help="fp16 | int8: onnxruntime's TensorRT "
                                                     "accelerator for an ONNX on GPU.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing model folder.")] = False,
    check: Annotated[Path | None, typer.Option("--check", help="Validate an existing model folder DIR/NAME, or each "
                                                                 "model of a repository DIR, instead.")]
    = None,
    variant: OptVariant = None,
) -> None:
    """Write a Triton Inference Server model folder (config.pbtxt, labels, version/model) and validate it."""
    from swin_deploy import render
    from swin_deploy.serve.triton import TritonOptions, check_repository, write_model

    if check is not None:
        if artifact is not None or repo is not None:
            raise UserError("--check FOLDER validates an existing model: drop ARTIFACT and --repo")
        checked = check_repository(check, variant)
        for folder, why in checked.skipped.items():
            render.skipped(str(folder), why)
        for folder, findings in checked.findings.items():
            render.findings(f"triton check {folder}", findings)
        raise typer.Exit(1 if any(checked.findings.values()) else 0)
    if artifact is None or repo is None:
        raise UserError("pass ARTIFACT and --repo DIR (or --check DIR/NAME to validate a model folder)")
    options = TritonOptions(name=name, version=version, max_batch=max_batch, instances=instances, kind=kind,
                            runtime=runtime, threads=threads, streams=streams, performance_hint=performance_hint, bf16=bf16,
                            static_batch=static_batch, dynamic_batching=dynamic_batching,
                            preferred_batch=parsed(parse_ints, preferred_batch, "preferred_batch") or [],
                            max_queue_delay_us=max_queue_delay_us, ort_tensorrt=ort_tensorrt, overwrite=overwrite,
                            variant=variant)
    render.triton_summary(write_model(artifact, repo, options))


@command()
def check(
    artifact: Annotated[Path, typer.Argument(help="The ONNX to lint.")],
    target: Annotated[str, typer.Option("--target", help="The runtime whose rules apply: tensorrt.")] = "tensorrt",
    tensorrt: Annotated[int, typer.Option("--tensorrt", help="TensorRT major version: 10 or 11.")] = \
    defaults.TENSORRT_VERSION,
) -> None:
    """Lint an ONNX against TensorRT's ONNX parser rules (ops and types, Q/DQ, strong typing, build-time shapes):
    exit 0 clean, 1 with findings (one line each)."""
    from swin_deploy import render
    from swin_deploy.lint.tensorrt import check_onnx

    if target != "tensorrt":
        raise UserError(f"unknown --target '{target}': the lint knows tensorrt")
    findings = check_onnx(artifact, tensorrt)
    render.findings(f"{artifact.name} against TensorRT {tensorrt}'s ONNX parser rules", [str(f) for f in findings])
    raise typer.Exit(1 if findings else 0)


@command("inspect")
def inspect_artifact(
    artifact: Annotated[Path, typer.Argument(help="An ONNX, OpenVINO IR or TensorRT engine.")],
    variant: OptVariant = None,
    json_path: Json = None,
) -> None:
    """What an artifact is: model, precision, input, outputs, classes, preprocessing, how it was made (no runtime)."""
    from swin_deploy import render
    from swin_deploy.describe import describe_artifact
    from swin_deploy.fileio import check_outputs

    check_outputs([artifact], json=json_path)
    doc = describe_artifact(artifact, variant)
    if str(json_path) != "-":
        render.artifact_description(doc)
    write_json(json_path, doc)


@command()
def convert(
    model: Annotated[Path, typer.Argument(help="An ONNX of any precision (another tool's with --variant).")],
    target_format: Annotated[str, typer.Option("--format", help="openvino: an IR (.xml + .bin).")] = "openvino",
    variant: OptVariant = None,
    output: Output = None,
) -> None:
    """Convert an ONNX to an OpenVINO IR, metadata carried, checked against the ONNX."""
    from swin_deploy import render
    from swin_deploy.enums import ExportFormat
    from swin_deploy.export.openvino_ir import to_openvino

    if ExportFormat.parse(target_format, "format") != ExportFormat.OPENVINO:
        raise UserError("the ONNX is already ONNX: `format` openvino converts it to an IR")
    render.ir_summary(model.name, to_openvino(model, output, variant=variant))


@command("demo-data")
def demo_data(folder: Annotated[Path, typer.Argument(help="Where to write calib/ and val/.")]) -> None:
    """Write the demo models' dataset (scikit-learn digits) as PNG files in ImageFolder layout."""
    from swin_deploy import render
    from swin_deploy.demo import write_digits

    counts = write_digits(folder)
    render.summary("demo data", {"folder": folder, "calib images": counts["calib"], "val images (held out)": counts["val"]})


@command()
@shared(RUNTIME_OPTIONS)
def bench(
    artifacts: Annotated[list[Path] | None, typer.Argument(help="ONNX files, OpenVINO IRs and/or TensorRT engines.")] = None,
    torch_variant: Annotated[str | None, typer.Option("--torch", help="Add the PyTorch model of this variant.")] = None,
    checkpoint: Checkpoint = None,
    pretrained: Pretrained = False,
    random_init: RandomInit = False,
    seed: Seed = defaults.SEED,
    ema: Ema = False,
    backend: Annotated[str | None, typer.Option("--backend", help="Comma-separated: each ONNX runs on each. "
                                                  + BACKEND_HELP)] = None,
    batch_sizes: batch_sizes_option(f"{_listed(defaults.BENCH_BATCH_SIZES)} and any static-batch artifact's own") = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed runs per batch size.")] = defaults.BENCH_WARMUP,
    iterations: Annotated[int | None, typer.Option("--iterations", help="Timed runs per batch size "
                                                   f"(default {defaults.BENCH_ITERATIONS}).")] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", help="Or: time budget per batch size.")] = None,
    json_path: Json = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="Write a plot (.png, .svg or .pdf).")] = None,
    min_speedup: Annotated[float | None, typer.Option("--min-speedup", help="Gate: each artifact at least this many "
                                                      "times faster than the reference (95% CI).")] = None,
    against: Annotated[Path | None, typer.Option("--against", help="The reference for speed gates: this artifact "
                                                 "(default: the --torch model).")] = None,
    baseline: Annotated[Path | None, typer.Option("--baseline", help="Gate against an earlier run's --json.")] = None,
    max_slowdown: Annotated[str | None, typer.Option("--max-slowdown", help="With --baseline: allowed slowdown "
                                                     "relative to the reference, e.g. 10%.")] = None,
    gate_batch: Annotated[str | None, typer.Option("--gate-batch", help="Gate only these batch sizes (comma-separated).")]
    = None,
    max_rss: Annotated[str | None, typer.Option("--max-rss", help="Gate: host memory a runner may add, e.g. 2GiB.")]
    = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write the gates as JUnit XML.")] = None,
    memory: Annotated[bool, typer.Option("--memory", help="Measure each runner's peak host memory, in a fresh process "
                                         "(implied by --max-rss).")] = False,
    variant: OptVariant = None,
    img_size: ImgSize = None,
    **settings,
) -> None:
    """Latency (p50 with its 95% CI, p90, p99) and throughput side by side; gates on speedup, slowdown vs a baseline
    and memory: exit 0 pass, 1 a gate failed, 2 bad input."""
    from swin_deploy import render
    from swin_deploy.bench import BenchOptions, bench_artifacts, plot, plot_format
    from swin_deploy.bench_gates import SpeedGates, junit_report
    from swin_deploy.fileio import check_outputs, write_text_atomic

    check_outputs([*(artifacts or []), *filter(None, [against, checkpoint])], json=json_path, junit=junit,
                  plot=plot_path)
    if plot_path:
        plot_format(plot_path)
    threads = use_threads(settings)
    options = BenchOptions(torch_variant=torch_variant, weights=weights(checkpoint, pretrained, random_init, seed, ema),
                           backends=commas(backend), hints=commas(settings["performance_hint"]),
                           openvino=openvino_options({**settings, "performance_hint": None}),
                           batch_sizes=ints(batch_sizes, "batch_sizes"), warmup=warmup, iterations=iterations,
                           seconds=seconds, threads=threads, seed=seed,
                           gates=SpeedGates(min_speedup=min_speedup, against=against, baseline=baseline,
                                            max_slowdown=parsed(parse_fraction, max_slowdown, "max_slowdown"),
                                            batch_sizes=ints(gate_batch, "gate_batch"),
                                            max_rss=parsed(parse_bytes, max_rss, "max_rss")),
                           memory=memory, variant=variant, img_size=hw(img_size, "img_size"))
    if junit and not options.gates.any:  # a report of no test cases reads as a pass to CI
        raise UserError("--junit records the gates' verdicts: pass a gate (--min-speedup, --max-slowdown or --max-rss)")
    with render.ticker("loading") as on_tick:
        report = bench_artifacts(artifacts or [], options, on_tick)
    stdout_json = str(json_path) == "-"  # stdout is then the JSON alone, for a pipe; the verdicts go to stderr
    if not stdout_json:
        render.bench_table(report)
    write_json(json_path, report.as_dict())
    if junit:
        write_text_atomic(junit, junit_report(report.gates, report.runners))
    if plot_path:
        plot(report.results, plot_path)
    for gate in report.gates:
        if gate.passed and gate.note:  # a regression gate the rounds could not decide
            render.warn(gate.describe())
    for gate in report.failures():
        render.failure("fail", gate.describe())
    if not report.passed:
        raise GateFailed(f"{len(report.failures())} of {len(report.gates)} gate(s) failed")
    if report.gates and not stdout_json:
        render.passed(f"{len(report.gates)} gate(s) met")


@command("build-engine")
@shared(CALIBRATION_OPTIONS, INT8_OPTIONS)
def build_engine(
    model: Annotated[Path, typer.Argument(help="ONNX from export (fp32) or quantize (fp16/int8).")],
    fp16: Annotated[bool, typer.Option("--fp16", help="Convert an fp32 ONNX to FP16 first.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="Calibrate an fp32 ONNX to INT8 Q/DQ first.")] = False,
    min_batch: Annotated[int | None, typer.Option(
        "--min-batch", help=f"Default {defaults.ENGINE_MIN_BATCH}, or a static batch.")] = None,
    opt_batch: Annotated[int | None, typer.Option(
        "--opt-batch", help=f"Default {defaults.ENGINE_OPT_BATCH} (at most the max), or a static batch.")] = None,
    max_batch: Annotated[int | None, typer.Option(
        "--max-batch", help=f"Default {defaults.ENGINE_MAX_BATCH} (at most the ONNX's own max batch), or a static "
                            "batch.")] = None,
    min_size: Annotated[str | None, typer.Option("--min-size", help="H,W for a --dynamic-size ONNX.")] = None,
    opt_size: Annotated[str | None, typer.Option("--opt-size", help="H,W for a --dynamic-size ONNX.")] = None,
    max_size: Annotated[str | None, typer.Option("--max-size", help="H,W for a --dynamic-size ONNX.")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="Builder workspace, e.g. 8GiB (default "
                                                  f"{defaults.WORKSPACE_BYTES >> 30}GiB).")] = None,
    timing_cache: Annotated[Path | None, typer.Option("--timing-cache", help="Loaded if present, saved after.")] = None,
    opt_level: Annotated[int | None, typer.Option("--builder-optimization-level", min=0, max=5)] = None,
    no_check: Annotated[bool, typer.Option("--no-check", help="Build even if `swin-deploy check` has findings.")]
    = False,
    output: Output = None,
    **settings,
) -> None:
    """Build a strongly typed TensorRT engine (TensorRT 10 and 11); precision comes from the ONNX."""
    from calibration.engine import quantize_and_build
    from calibration.options import conversion
    from swin_deploy import render
    from swin_deploy.backends.tensorrt.loader import BuildOptions

    if fp16 and int8:
        raise UserError("choose `fp16` or `int8`, not both")
    build = BuildOptions(min_batch, opt_batch, max_batch, hw(min_size, "min_size"), hw(opt_size, "opt_size"),
                         hw(max_size, "max_size"),
                         parsed(parse_bytes, workspace, "workspace") or defaults.WORKSPACE_BYTES, timing_cache,
                         opt_level)
    convert = conversion("fp16" if fp16 else "int8" if int8 else None, **conversion_settings(settings))
    with render.image_progress("build-engine") as on_progress:
        result = quantize_and_build(model, output, build, convert, on_progress, lambda step: on_progress(step, 0, 0),
                                    lint=not no_check, variant=settings["variant"])
    if result.quantized:
        render.quantize_summary(model.name, result.quantized)
    render.engine_summary(result)


@contextlib.contextmanager
def _sigterm_unwinds():
    """CI cancellations, `timeout` and container stops send SIGTERM, whose default action ends the process where it
    stands: unwinding as Ctrl-C does lets the atomic writers remove their partial files (exit 128 + 15, as a shell
    reports it). Signal handlers belong to the main thread; elsewhere SIGTERM keeps its default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum: int, frame) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    """Console entry point: map library errors and click's usage errors to exit codes and one-line messages.

    Outside click's standalone mode its usage errors (a missing argument, an unknown option, a value of the wrong
    type) come here to be said in one line as the library's are, not in typer's multi-line panel; typer's own exits
    (--help, `typer.Exit`, Ctrl-C as 130) come back as the return value.
    """
    from swin_deploy import render

    debug = os.environ.get("SWIN_DEPLOY_DEBUG") == "1"
    # PIL warns of each image above 89 megapixels and reads it all the same (one above twice that is skipped and
    # listed with the reason): the warning would only break up the progress bar. Matched by text: no PIL import here.
    warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit")
    try:
        with _sigterm_unwinds():
            code = app(prog_name="swin-deploy", standalone_mode=False)
    except UsageErrors as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # typer has shown the help
            sys.exit(2)
        ctx = getattr(e, "ctx", None)
        render.failure("error:", e.format_message() + (f" (see {ctx.command_path} --help)" if ctx else ""))
        sys.exit(e.exit_code)
    except SwinDeployError as e:
        if debug:
            raise
        render.failure("error:" if isinstance(e, UserError) else "FAILED:", e.render(render.flag))
        sys.exit(e.exit_code)
    except Exception as e:
        if debug:
            raise
        if (full := out_of_space(e)) is not None:  # a full disk met outside an output's own writer (a temp folder)
            render.failure("error:", full.render(render.flag))
            sys.exit(full.exit_code)
        if isinstance(e, typer.Abort) and e.__cause__ is not None:
            e = e.__cause__  # typer turns an EOFError from anywhere (a truncated pickle) into click's Abort
        render.failure("internal error:", f"{type(e).__name__}: {e} (rerun with SWIN_DEPLOY_DEBUG=1 for the traceback)")
        sys.exit(3)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
