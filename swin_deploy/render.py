"""What the command line shows: rich tables on stdout, progress and messages on stderr.

The presentation layer of cli.py (only it imports this module); the library itself never prints.
Text goes to rich as `Text`, never as markup: paths, labels and class names may hold brackets ("exp[lr=0.1]/m.onnx"),
which rich would read as styles (or fail on, "[/b]"); the few styled words are built as styled `Text`.
Piped output (CI logs) is laid out at PIPED_WIDTH columns instead of rich's 80, so tables do not
wrap artifact names over two lines.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from . import defaults
from .enums import Precision
from .errors import spell_params
from .parsing import format_bytes
from .tolerances import thresholds_for

PIPED_WIDTH = 200


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    return console


out = _console()
err = _console(stderr=True)


def progress_bar(counted: bool = True) -> Progress:
    """The one rich progress line every long command shows on stderr (with a bar and count if `counted`)."""
    columns = [SpinnerColumn(), TextColumn("{task.description}", markup=False)]
    columns += [BarColumn(), MofNCompleteColumn()] if counted else []
    return _progress(*columns, TimeElapsedColumn())


def _progress(*columns: ProgressColumn | str) -> Progress:
    return Progress(*columns, console=err, transient=True) if err.is_terminal else _LoggedProgress()


class _LoggedProgress(Progress):
    """Progress where stderr is no terminal (CI logs, pipes): rich draws nothing live there (and its transient
    display still ends with an empty line, which opened every error with a blank line), so the tasks are tracked
    undrawn and a plain line says where they are, at most every defaults.LOG_PROGRESS_EVERY_S."""

    def __init__(self) -> None:
        super().__init__(console=err, disable=True)
        self._logged = time.monotonic()

    def stop(self) -> None:
        # nothing was drawn, so nothing ends; rich before 14.3 printed an empty line here even when disabled
        self.live.stop()

    def update(self, task_id: TaskID, **changes) -> None:
        super().update(task_id, **changes)
        self._log()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log()

    def _log(self) -> None:
        if time.monotonic() - self._logged < defaults.LOG_PROGRESS_EVERY_S:
            return
        self._logged = time.monotonic()
        for task in self.tasks:
            if not task.finished:
                done = f": {task.completed:.0f}/{task.total:.0f}" if task.total else ""
                err.print(Text(f"{task.description}{done} ({timedelta(seconds=round(task.elapsed or 0))})"),
                          highlight=False, soft_wrap=True)


@contextmanager
def steps(total: int) -> Iterator[Callable[[str], None]]:
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


@contextmanager
def image_progress(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """Progress over images: yields on_progress(step, images done in this call, total images or 0)."""
    with progress_bar() as progress:
        task = progress.add_task(f"{label}: converting", total=None)
        last = [""]  # the step reported last

        def on_progress(step: str, n: int, total: int) -> None:
            # a new step counts from zero (the images calibrated are not the blocks quantized after them)
            restart = {"completed": 0} if step != last[0] else {}
            last[0] = step
            progress.update(task, description=f"{label}: {step}", total=total or None, **restart)
            progress.advance(task, n)

        yield on_progress


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} img/s" if task.speed else "", style="progress.data.speed")


@contextmanager
def rate_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Progress over a stream of inputs with images/s and ETA: yields on_progress(what, done in this call, total)."""
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with _progress(*columns) as progress:
        tasks: dict[str, int] = {}

        def on_progress(what: str, n: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.advance(tasks[what], n)

        yield on_progress


@contextmanager
def ticker(first: str) -> Iterator[Callable[[str], None]]:
    """A spinner whose text the callback replaces (no count)."""
    with progress_bar(counted=False) as progress:
        task = progress.add_task(first, total=None)
        yield lambda msg: progress.update(task, description=msg)


def _plain(value: object) -> Text:
    return value if isinstance(value, Text) else Text(str(value))


def summary(title: str, rows: dict[str, object]) -> None:
    t = Table(title=_plain(title), show_header=False, title_justify="left", min_width=min(len(title), out.width))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in rows.items():
        t.add_row(_plain(k), _plain(v))
    out.print(t)


def columns(title: str, headers: list[str], rows: list[list[object]], left: tuple[str, ...] = (),
            wrapped: tuple[str, ...] = ()) -> None:
    """A table with a header row; `left` columns are left-aligned and never wrapped (names), `wrapped` ones
    left-aligned and wrapped (lists), the rest numbers."""
    t = Table(title=_plain(title), min_width=min(len(title), out.width))  # a title wraps at the table's width
    for h in headers:
        t.add_column(_plain(h), justify="left" if h in left + wrapped else "right", no_wrap=h in left)
    for row in rows:
        t.add_row(*map(_plain, row))
    out.print(t)


def message(text: str) -> None:
    out.print(Text(text), highlight=False)


def passed(text: str) -> None:
    """A gate's or a check's success line: a green PASS, then `text`."""
    out.print(Text.assemble(("PASS", "green"), " ", text), highlight=False)


def flag(param: str) -> str:
    """How the command line spells a library parameter: `calib_data` -> --calib-data."""
    return "--" + param.replace("_", "-")


def warn(text: str) -> None:
    err.print(Text(text), highlight=False)


def failure(label: str, text: str) -> None:
    err.print(Text.assemble((label, "red"), " ", text), highlight=False, soft_wrap=True)


# ---- one renderer per command result -------------------------------------------------------------------------
def variants_table(configs) -> None:
    rows = [[c.name, c.timm_name or "-", c.version, "x".join(map(str, c.img_size)), c.window_size,
             f"{c.params / 1e6:.2f}", f"{c.gmacs():.2f}"] for c in configs]
    columns("Swin variants", ["name", "timm name", "V", "input", "window", "params (M)", "GMACs"], rows,
            left=("name", "timm name", "V", "input"))


def artifact_description(doc: dict) -> None:
    """`swin-deploy inspect`: one row per fact, nested facts (outputs, preprocessing, precision details) on theirs."""
    def shown(value) -> str:
        if isinstance(value, dict):
            return "; ".join(f"{k}: {shown(v)}" for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return ", ".join(map(shown, value))
        return "-" if value is None else spell_params(str(value), flag)

    rows = {("size" if k == "bytes" else k.replace("_", " ")): format_bytes(v) if k == "bytes" else shown(v)
            for k, v in doc.items() if k != "artifact"}
    summary(Path(doc["artifact"]).name, rows)


def export_summary(result) -> None:
    summary(f"exported {result.path.stem}", {
        "path": result.path, "size": f"{result.size_bytes / 1e6:.1f} MB", "opset": result.opset, "nodes": result.nodes,
        "LayerNorm": "fused (LayerNormalization)" if result.layernorm_fused else "decomposed (opset < 17)",
        "parity": "skipped" if result.parity_delta is None else f"{result.parity_delta:.1e} x max|output|",
        "exporter": result.exporter, "seconds": f"{result.seconds:.1f}", "outputs": ", ".join(result.outputs),
        "input size": result.input_size, **({"IR weights": result.ir_weights} if result.ir_weights else {}),
        **({"note": spell_params(result.note, flag)} if result.note else {})})


def ir_summary(source: str, result) -> None:
    summary(f"converted {source}", {"path": result.path, "weights": result.weights,
                                    "vs the ONNX": f"{result.max_rel_delta:.1e} x max|output| (OpenVINO f32)",
                                    **({"note": spell_params(result.note, flag)} if result.note else {})})


def _ran_on(described: dict) -> str:
    """A runner's runtime, and what it computed in where it chooses (OpenVINO): "openvino, computing in bf16"."""
    ran = described.get("backend", "")
    return f"{ran}, computing in {described['execution_precision']}" if described.get("execution_precision") else ran


def verify_table(result) -> None:
    sizes = {b.img_size for b in result.batches}
    headers = ["metric", *[f"batch {b.batch_size}" + (f" @{b.img_size[0]}x{b.img_size[1]}" if len(sizes) > 1 else "")
                           for b in result.batches], "threshold"]
    limits = result.limits()
    rows = [[m, *[f"{b.metrics[m]:.4g}" if m in b.metrics else "-" for b in result.batches], limits.get(m, "")]
            for m in result.shown_metrics()]
    ran = _ran_on(result.candidate)
    against = result.reference["backend"]
    if result.reference.get("execution_precision"):
        against += f" (computing in {result.reference['execution_precision']})"
    columns(f"verify {result.artifact.name} ({result.info.precision} on {ran}) vs {against} on {result.inputs}",
            headers, rows, left=("metric",))
    full = [b for b in result.batches if b.role == "accuracy"]
    consistency = [b for b in result.batches if b.role == "consistency"]
    ends = [b for b in result.batches if b.role == "range end"]
    cache = result.cache and (" (reference from cache)" if result.cache["hit"] else " (reference cache written)")
    each = f" at each of {len(full)} sizes" if len(full) > 1 else ""
    said = [f"accuracy and deltas over {full[0].images} input(s) at batch {full[0].batch_size}{each}{cache or ''}"]
    if consistency:
        said.append(f"batch consistency at {', '.join(map(str, dict.fromkeys(b.batch_size for b in consistency)))} "
                    f"over the {consistency[0].scope}")
    if ends:
        said.append(f"the size range's end{'s' * (len(ends) > 1)} "
                    f"{', '.join(f'{b.img_size[0]}x{b.img_size[1]}' for b in ends)} over the {ends[0].scope}")
    gated = "output" if result.info.headless else "logit"
    message("; ".join(said) + (f" ({gated} gates only)" if consistency or ends else "")
            + (f"; {flag('img_sizes')} gates chosen sizes in full" if ends else "")
            + (f"; float16 tensors read out as a GPU stores them over the first {result.float16_inputs}"
               if result.float16_inputs else ""))
    if result.info.headless:
        message(f"top-k agreement and accuracy: not applicable ({', '.join(result.info.outputs)} out, no class scores)")
    if result.skipped_images:
        examples = ", ".join(result.skipped_examples)
        warn(f"skipped {result.skipped_images} unreadable image(s): {examples}{', ...' * (result.skipped_images > 5)}")
    notes(result.notes)


def notes(found: list[str]) -> None:
    """What a result cannot show but the user should know, one line each on stderr."""
    for note in found:
        warn("note: " + spell_params(note, flag))


def quantize_summary(source_name: str, result) -> None:
    rows = {"path": result.path, "precision": result.precision, "quantized / converted nodes": result.quantized_nodes,
            "nodes kept in float": result.float_nodes, **result.details}
    if result.skipped_images:
        rows["unreadable images skipped"] = result.skipped_images
    if result.cache_path:
        rows["calibration cache"] = result.cache_path
    rows["seconds"] = f"{result.seconds:.1f}"
    summary(f"quantized {source_name}", rows)
    notes(result.notes)


def sensitivity_table(result) -> None:
    """`quantize --sensitivity`: the blocks, worst first, under the whole INT8; the whole INT8 again with the worst kept
    in float one more at a time, then with each kept block back in INT8 in turn; then the `--exclude` that brings it
    within the gates."""
    classifier = result.whole.top1_agreement is not None

    def row(name: str, b) -> list:
        return [name, b.nodes, f"{b.max_rel_delta:.4g}", f"{b.min_cosine:.6f}",
                *([f"{b.top1_agreement:.3f}"] if classifier else []), ", ".join(b.outside) or "-"]

    headers = ["block", "Q/DQ nodes", "max rel delta", "min cosine", *(["top-1 agreement"] if classifier else []),
               "outside the gates"]
    columns(f"INT8 of one block at a time against float32: {result.model.name} on {result.describe_images()}; ranges "
            f"from {result.calib_images}", headers,
            [row("every block (what quantize writes)", result.whole), *(row(b.block, b) for b in result.blocks)],
            left=("block", "outside the gates"))
    if result.search:
        columns("the whole INT8, keeping the worst blocks in float one more at a time",
                ["also in float", *headers[1:]], [row(b.block, b) for b in result.search],
                left=("also in float", "outside the gates"))
    if result.back:
        columns("the whole INT8, putting each kept block back into INT8 in turn (within the gates: it stays there)",
                ["back in INT8", *headers[1:]], [row(b.block, b) for b in result.back],
                left=("back in INT8", "outside the gates"))
    alone = len(result.breaking())
    limits, default = result.limits.as_dict(), thresholds_for(Precision.INT8).as_dict()
    given = {name: value for name, value in limits.items() if value != default[name]}
    gates_given = [f"{flag(name)} {value:g}" for name, value in given.items()]
    gates = f"the INT8 gates given ({', '.join(gates_given)})" if given else "verify's INT8 gates"
    alone_text = (f"no block alone breaks {gates}" if not alone else
                  f"{alone} block{'s' if alone > 1 else ''} alone break{'' if alone > 1 else 's'} {gates}")
    if result.whole.within:
        message(f"{alone_text}; the whole INT8 is within them")
    elif result.found:
        excludes = " ".join(f"{flag('exclude')} '{b}'" for b in result.keep_float)
        message(f"{alone_text}; the whole INT8 does, and is within them with {len(result.keep_float)} kept in float: "
                f"quantize with {excludes} (or with {flag('auto-exclude')} and these options), then verify again")
    else:
        message(f"{alone_text}; the whole INT8 does, and still does with all but one block kept in float: try "
                f"{flag('method')} percentile or entropy")


def bench_table(report) -> None:
    device = report.device_timed
    speedups = any(r.speedup is not None for r in report.results)
    size_of = {label: runner.get("input_size", "-") for label, runner in report.runners.items()}
    sizes = set(size_of.values())  # one input size goes in the title, several in a column
    headers = ["artifact", "backend", *(["input"] if len(sizes) > 1 else []), "batch", "p50 [95% CI]", "p90", "p99",
               "img/s", *(["speedup [95% CI]"] if speedups else []), *(["compute p50"] if device else [])]
    rows = [[r.label, r.backend, *([size_of.get(r.label, "-")] if len(sizes) > 1 else []), r.batch_size,
             f"{r.p50_ms:.2f} [{r.p50_ci[0]:.2f}, {r.p50_ci[1]:.2f}]",
             f"{r.p90_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.throughput:.1f}",
             *([_interval(r.speedup) if r.speedup else "-"] if speedups else []),
             *(["-" if r.compute_p50_ms is None else f"{r.compute_p50_ms:.2f}"] if device else [])]
            for r in report.results]
    refs = sorted(set(report.references.values()))
    at = f" at {next(iter(sizes))}" if len(sizes) == 1 else ""
    title = (f"latency (ms, host to host) and throughput{at} on {report.machine['cpu']} ({report.machine['vector_isa']})"
             + (f"; speedup vs {', '.join(refs)}" if speedups else ""))
    columns(title, headers, rows, left=("artifact", "backend"))
    for f in report.fastest():
        first, second = _runner_name(f.label, f.backend), _runner_name(f.next_label, f.next_backend)
        message(f"fastest at batch {f.batch_size}: {first}, {_interval(f.lead)} as fast as the next, {second}"
                if f.decided else f"fastest at batch {f.batch_size}: {first}, tied within the noise with {second} "
                f"({_interval(f.lead)})")
    memory = any(r.get("peak_rss_mib") for r in report.runners.values())
    loaded = [[label, r.get("load_ms", "-"),
               *([r.get("runner_peak_mib", "-"), r.get("peak_rss_mib", "-")] if memory else [])]
              for label, r in report.runners.items()]
    columns("start-up" + " and peak host memory (a fresh process per runner)" * memory,
            ["runner", "load ms", *(["runner MiB", "process MiB"] if memory else [])], loaded, left=("runner",))
    notes(report.notes)
    if report.gates:
        columns("gates", ["runner", "batch", "gate", "value [95% CI]", "threshold", "verdict"],
                [[g.label, g.batch_size or "-", g.gate, _gate_value(g), _gate_threshold(g), _verdict(g)]
                 for g in report.gates], left=("runner", "gate"))


def _runner_name(label: str, backend: str) -> str:
    """A runner as a sentence names it: its label with its backend, the runtime said once ("pytorch swin_t",
    "m.onnx [openvino] (f32, 2 streams)", "m.onnx (onnxruntime-cpu)")."""
    runtime, _, rest = backend.partition(" ")
    if runtime.rstrip(",") in re.split(r"[\s\[\],]+", label):
        return label + (f" ({rest})" if rest else "")
    return f"{label} ({backend})"


def _interval(iv) -> str:
    return f"{iv.estimate:.2f}x [{iv.low:.2f}, {iv.high:.2f}]"


def _gate_value(g) -> str:
    return format_bytes(g.value.estimate) if g.gate == "max_rss" else _interval(g.value)


def _gate_threshold(g) -> str:
    if g.gate == "max_rss":
        return f"<= {format_bytes(g.threshold)}"
    return f">= {g.threshold:g}x" if g.gate == "min_speedup" else f"<= {1 + g.threshold:g}x"


def _verdict(g) -> Text:
    return {"pass": Text("pass", "green"), "fail": Text("FAIL", "red")}.get(str(g.verdict),
                                                                         Text("inconclusive", "yellow"))


def engine_summary(result) -> None:
    meta = result.engine
    profile = meta.profile
    summary(f"engine {result.path.name}", {
        "path": result.path, "built from": result.onnx, "precision": meta.precision, "TensorRT": meta.tensorrt,
        "GPU": f"{meta.gpu} (sm {meta.compute_capability})",
        "profile (batch)": f"{profile['min'][0]} / {profile['opt'][0]} / {profile['max'][0]}",
        "seconds": meta.build_seconds})


def predictions(result) -> None:
    """One image: its ranked classes. Several: a row each, the best class first (a folder's worth of per-image tables
    is ten lines an image to scroll through; --json has every score)."""
    ran = _ran_on(result.runner)
    if len(result.predictions) == 1:
        p = result.predictions[0]
        columns(f"{p.image} on {ran}", ["rank", "class", "label", "probability"],
                [[i + 1, t["index"], t["label"], f"{t['probability']:.4f}"] for i, t in enumerate(p.top)],
                left=("label",))
        return
    k = max((len(p.top) for p in result.predictions), default=0)
    rows = [[p.image, p.top[0]["label"], f"{p.top[0]['probability']:.4f}",
             *(["; ".join(f"{t['label']} ({t['probability']:.4f})" for t in p.top[1:])] if k > 1 else [])]
            for p in result.predictions]
    columns(f"{result.artifact.name} on {ran}: top-{k} of {len(rows)} images", ["image", "label", "probability",
                                                                       *(["next"] if k > 1 else [])],
            rows, left=("image",), wrapped=("label", "next"))


def findings(title: str, found: list[str]) -> None:
    """A lint's result: one line per finding, then PASS/FAIL."""
    for f in found:
        out.print(Text(f"- {spell_params(f, flag)}"), highlight=False, soft_wrap=True)
    if found:
        failure("FAIL", f"{title}: {len(found)} finding(s)")
    else:
        passed(f"{title}: no findings")


def skipped(title: str, why: str) -> None:
    """Something a check left out, and why (a repository's model of another runtime)."""
    message(f"skipped {title}: {spell_params(why, flag)}")


def triton_summary(result) -> None:
    summary(f"triton model {result.folder.name}", {
        "folder": result.folder, "model": result.model_file, "labels": result.labels or "-",
        "check": "passed (ModelConfig protobuf + artifact checks)",
        **({"precision": result.precision_note} if result.precision_note else {})})
    message(result.config_text.rstrip())
