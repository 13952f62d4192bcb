"""Running a candidate and its reference over the same inputs, streamed, and gating the result.

Every image goes through the reference once per input size: the accuracy metrics cover the whole input set at the
first batch size (or the artifact's static batch); every other batch size checks batch consistency on the first
`consistency_samples` inputs, and so does each end of a dynamic-size artifact's range unless `img_sizes` names the
sizes. Images are decoded by a pool of workers while the models run, a bounded number of batches at a time, so
memory does not grow with the size of the set. With a reference cache the reference's outputs are read from disk
instead of computed (see cache.py).
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import defaults, machine
from ..artifact import ArtifactInfo, artifact_info, artifact_sha256, kind_of
from ..backends import checked_backend, default_backend, run_batched, run_padded, runner_for
from ..backends.base import Runner, pad_batch
from ..backends.openvino_runner import OpenVinoOptions
from ..compare import Check, Comparison, gate, named_as
from ..data import Batch, ImageSet, checked_workers, list_images, stream_batches, transform_for
from ..enums import Precision, WeightsSource
from ..errors import UserError, require_at_least
from ..fileio import check_outputs
from ..models import Weights
from ..parsing import as_hw, one_or_many
from ..precision.fp16 import Float16Probe
from ..tolerances import NEAR_TIE_MEAN_DELTAS, Thresholds, thresholds_for
from .cache import CacheReader, CacheWriter
from .reference import Reference, reference_for


@dataclass
class VerifyOptions:
    """What `verify_artifact` checks against what, on which inputs. None means the artifact's own default."""

    weights: Weights = field(default_factory=Weights)  # the native reference's weights (or timm's checkpoint)
    timm: bool = False  # timm's model as the reference
    transformers: bool = False  # transformers' model (from a save_pretrained folder in `weights`) as the reference
    reference: Path | None = None  # another artifact as the reference
    variant: str | None = None  # for an ONNX without swin-deploy metadata
    data: Path | None = None  # image folder; None: seeded synthetic inputs
    labels: Path | None = None  # CSV filename,label for a flat `data` folder
    samples: int | None = None  # synthetic inputs without `data` (None: VERIFY_SAMPLES, refused where meaningless)
    limit: int | None = None
    seed: int = defaults.SEED
    batch_sizes: list[int] | None = None
    consistency_samples: int | None = None  # None: CONSISTENCY_SAMPLES (refused where there is no consistency run)
    img_sizes: list[tuple[int, int]] | None = None  # dynamic-size artifacts
    backend: str | None = None
    reference_device: str = "auto"  # PyTorch references: cuda where available, else cpu
    reference_cache: Path | None = None
    workers: int | None = None  # image decode workers (default: by the machine)
    strict: bool = False  # an unreadable image is an error instead of skipped
    thresholds: dict[str, float | None] = field(default_factory=dict)  # overrides of the precision's defaults
    openvino: OpenVinoOptions | None = None  # with `backend` openvino (or an IR): inference precision, hint, cache;
    # the hint also with onnxruntime-cpu
    threads: int | None = None  # the candidate runtime's CPU threads (None: its choice)

    def __post_init__(self) -> None:
        self.backend = checked_backend(self.backend)
        require_at_least("seed", self.seed, 0)
        if self.img_sizes is not None:  # each a side or (H, W): (64, 96) is two sizes, as --img-sizes 64,96 is
            self.img_sizes = [as_hw(size, "img_sizes") for size in one_or_many(self.img_sizes)]
        if self.batch_sizes is not None:
            self.batch_sizes = list(one_or_many(self.batch_sizes))


class InputSet:
    """The inputs of one pass: an image folder preprocessed per the artifact's metadata at `img_size`, or
    `samples` seeded N(0, 1) inputs; streamed in batches of any size, always in the same order."""

    def __init__(self, info: ArtifactInfo, options: VerifyOptions, img_size: tuple[int, int]):
        self.img_size, self.options, self.info = tuple(img_size), options, info
        self.images: ImageSet | None = None
        self.samples = defaults.VERIFY_SAMPLES if options.samples is None else options.samples
        if options.data is not None:
            if options.samples is not None:
                raise UserError("`samples` sets how many synthetic inputs run without `data`: with images, `limit` "
                                "caps how many")
            self.images = list_images(options.data, options.limit, options.seed, options.labels,
                                      None if info.headless else info.num_classes, info.labels)
            self.transform = transform_for(info, self.img_size)
        elif options.labels is not None:
            raise UserError("`labels` needs `data`: the folder the labelled files are in")
        elif options.limit is not None:
            raise UserError("`limit` caps the images of `data`: without them, `samples` sets how many synthetic inputs")
        elif options.strict:
            raise UserError("`strict` makes an unreadable image of `data` an error: it goes with `data`")
        else:
            require_at_least("samples", self.samples, 1)
        checked_workers(options.workers)  # refused with or without images, not only once decoding starts
        self.key = self._key(info)

    @property
    def total(self) -> int:
        return len(self.images) if self.images is not None else self.samples

    def describe(self) -> str:
        if self.images is None:
            kind = "uniform uint8 pixel" if self.info.pixels else "N(0,1)"
            return f"{self.samples} seeded {kind} inputs (seed {self.options.seed})"
        return str(self.options.data)

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[Batch]:
        """Batches in order; `limit` stops after that many inputs (the last batch may be short)."""
        taken = 0
        for batch in self._batches(batch_size):
            if limit is not None and taken + len(batch.x) > limit:
                keep = limit - taken
                batch = Batch(batch.x[:keep], None if batch.labels is None else batch.labels[:keep], batch.index[:keep])
            taken += len(batch.x)
            if len(batch.x):
                yield batch
            if limit is not None and taken >= limit:
                return

    def _batches(self, batch_size: int) -> Iterator[Batch]:
        if self.images is not None:
            yield from stream_batches(self.images, self.transform, batch_size, self.options.workers, self.options.strict)
            return
        rng = np.random.default_rng(self.options.seed)  # chunked draws give the same values as one big draw
        for start in range(0, self.samples, batch_size):
            n = min(batch_size, self.samples - start)
            yield Batch(self.info.example_input(rng, n, self.img_size), None, np.arange(start, start + n))

    def _key(self, info: ArtifactInfo) -> dict:
        """What a reference cache for these inputs is valid for."""
        if self.images is None:
            kind = "uint8 pixels" if info.pixels else "N(0,1)"
            inputs = f"synthetic {kind}: seed {self.options.seed}, {self.samples} samples"
        else:
            h = hashlib.sha256()
            root = Path(self.options.data)
            for i, f in enumerate(self.images.files):
                label = "" if self.images.labels is None else self.images.labels[i]
                h.update(f"{f.relative_to(root)}\0{f.stat().st_size}\0{label}\n".encode())
            inputs = f"{len(self.images)} images, sha256 {h.hexdigest()}"
        return {"variant": info.variant, "input_size": list(self.img_size), "preprocessing": info.preprocessing,
                "image_list": inputs, "outputs": list(info.outputs)}


@dataclass
class BatchResult:
    batch_size: int
    metrics: dict[str, float]
    checks: list[Check]
    img_size: tuple[int, int] = (0, 0)
    images: int = 0  # how many inputs these metrics are over
    scope: str = "all"  # "all" inputs, or "first N" (batch consistency, range ends)
    role: str = "accuracy"  # "accuracy" (the full pass), "consistency" (another batch size) or "range end"

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def describe(self) -> str:
        """Which run this is: "batch 8 at 224x224"."""
        return f"batch {self.batch_size} at {_sizes(self.img_size)}"


@dataclass
class VerifyResult:
    artifact: Path
    info: ArtifactInfo
    candidate: dict
    reference: dict
    inputs: str
    thresholds: Thresholds
    batches: list[BatchResult] = field(default_factory=list)
    total_images: int = 0  # inputs listed (per input size)
    skipped_images: int = 0
    skipped_examples: list[str] = field(default_factory=list)
    labels: str = "none"
    cache: dict | None = None  # {"path", "hit"} with a reference cache
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the gate cannot see but the user should know
    float16_inputs: int = 0  # inputs whose float16 tensors were read out as stored (0: none were)
    random_near_ties: bool = False  # top-1 failed only by near-ties of a random-weights PyTorch reference

    @property
    def passed(self) -> bool:
        return all(b.passed for b in self.batches)

    @property
    def float16_overflowed(self) -> bool:
        """A float16 tensor overflowed (the notes say what to do): what went wrong, whatever else failed with it."""
        return any(c.metric == "float16_finite" and not c.passed for b in self.batches for c in b.checks)

    def shown_metrics(self) -> list[str]:
        """The metrics a summary shows, in order: deltas, every gated metric, then accuracies."""
        first = self.batches[0]
        return [*[m for m in ("max_abs_delta", "mean_abs_delta") if m in first.metrics], *[c.metric for c in first.checks],
                *[m for m in ("ref_top1", "cand_top1", "ref_top5", "cand_top5") if m in first.metrics]]

    def near_tie_failure(self) -> BatchResult | None:
        """The first failed run, when every failed run failed top-1 agreement alone and would pass it with the
        reference's near-ties (tolerances.NEAR_TIE_MEAN_DELTAS) counted as agreeing; else None."""
        def by_ties(b: BatchResult) -> bool:
            failed = [c for c in b.checks if not c.passed]
            if [c.metric for c in failed] != ["top1_agreement"]:
                return False
            beyond = b.metrics["top1_disagreements"] - b.metrics["top1_near_ties"]
            return (b.images - beyond) / max(b.images, 1) >= failed[0].threshold

        failed = [b for b in self.batches if not b.passed]
        return failed[0] if failed and all(by_ties(b) for b in failed) else None

    def limits(self) -> dict[str, str]:
        return {c.metric: ("<= " if c.kind == "max" else ">= ") + f"{c.threshold:.6g}" for c in self.batches[0].checks}

    def failures(self) -> list[str]:
        return [f"{b.describe()}: {c.describe()}" for b in self.batches for c in b.checks if not c.passed]

    def report(self) -> dict:
        import onnxruntime
        import torch

        from .. import __version__

        return {
            "artifact": str(self.artifact), "sha256": artifact_sha256(self.artifact), "variant": self.info.variant,
            "precision": self.info.precision, "candidate": self.candidate, "reference": self.reference,
            "inputs": self.inputs, "skipped_images": self.skipped_images, "thresholds": self.thresholds.as_dict(),
            "passed": self.passed, "seconds": round(self.seconds, 2),
            "images": {"listed": self.total_images, "skipped": self.skipped_images,
                       "skipped_examples": self.skipped_examples, "labels": self.labels},
            "reference_cache": self.cache, "notes": self.notes, "float16_inputs": self.float16_inputs,
            # no class scores, so no top-k or accuracy: reported as such rather than gated or silently absent
            "not_applicable": ["top1_agreement", "top5_agreement", "accuracy"] if self.info.headless else [],
            "batches": [{"batch_size": b.batch_size, "img_size": list(b.img_size), "passed": b.passed,
                         "images": b.images, "scope": b.scope, "role": b.role, "metrics": b.metrics,
                         "checks": [c.as_dict() for c in b.checks]} for b in self.batches],
            "environment": {"swin_deploy": __version__, "python": platform.python_version(),
                            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                            "cpu": machine.cpu_name(), "vector_isa": machine.vector_isa(),
                            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        }


Progress = Callable[[str, int, int], None]  # (what, inputs done in this call, total inputs)


def verify_artifact(artifact: Path, options: VerifyOptions | None = None,
                    on_progress: Progress = lambda what, n, total: None) -> VerifyResult:
    """Gate `artifact` against its reference at every batch size and input size, thresholds by precision."""
    o = options or VerifyOptions()
    start = time.perf_counter()
    artifact = Path(artifact)
    info = artifact_info(artifact, o.variant)
    _check_inputs_fit(artifact, info, o)
    sizes = list(dict.fromkeys(o.batch_sizes or info.default_batch_sizes(defaults.VERIFY_BATCH_SIZES)))  # 1,1: once
    info.check_batch_sizes(sizes)
    require_at_least("consistency_samples", o.consistency_samples, 1)
    thresholds_for(info.precision).override(**o.thresholds)  # bad overrides fail before any model runs
    img_sizes = o.img_sizes or [tuple(info.img_size)]
    for size in img_sizes:
        info.check_size(size)
    # a dynamic-size artifact is gated at its size and, unless the sizes are chosen, at its range's ends
    ends = [] if o.img_sizes else info.range_ends()
    info.check_memory(max(sizes), img_sizes,
                      "choose smaller `batch_sizes`" + (" or `img_sizes`" if info.dynamic_size else ""))
    if ends:  # at the smallest batch size: what an end can break breaks every input alike, at any batch
        info.check_memory(min(sizes), ends, "gate sizes that fit with `img_sizes`" + (
            "" if min(sizes) == 1 else ", or add a smaller batch to `batch_sizes` (the range's ends run at the smallest)"))
    unchecked = []
    if o.reference is not None:  # the reference artifact runs at every size too
        other = artifact_info(o.reference, fallback_variant=info.variant)
        for size in img_sizes:
            try:
                other.check_size(size)
            except UserError as e:
                raise UserError(f"the reference {Path(o.reference).name}: {e}") from None
        unchecked = [s for s in ends if not other.accepts(s)]
        ends = [s for s in ends if other.accepts(s)]
    if o.consistency_samples is not None and len(sizes) == 1 and not ends:
        raise UserError("`consistency_samples` sets the inputs of the consistency runs at the batch sizes after the "
                        "first (and a dynamic-size range's ends): pass more than one in `batch_sizes`")
    o = replace(o, consistency_samples=o.consistency_samples or defaults.CONSISTENCY_SAMPLES)
    if o.reference_cache is not None and len(img_sizes) > 1:
        raise UserError("a reference cache holds one input size: run verify once per size of `img_sizes`")
    # the cache is read when there and written when not: a folder or one of the inputs is no place for it
    check_outputs([artifact, *filter(None, [o.reference])], reference_cache=o.reference_cache)
    candidate = runner_for(artifact, o.backend, o.threads, o.openvino, info.precision)
    probe = _float16_probe(artifact, o.backend or default_backend(artifact))
    reference = reference_for(info, o.weights, o.timm, o.reference, o.reference_device, o.transformers)
    # the reference runs on its default runtime: the same file there is a gate that cannot fail (the same file on
    # another runtime or OpenVINO precision is a runtime check, and allowed)
    if (o.reference is not None and o.openvino is None
            and (o.backend or default_backend(artifact)) == default_backend(o.reference)
            and artifact_sha256(o.reference) == artifact_sha256(artifact)):
        raise UserError(f"the reference {Path(o.reference).name} is the same file as {artifact.name}, run the same "
                        "way: a gate against itself cannot fail; pass another `reference`, run the artifact on "
                        "another `backend`, or leave `reference` out to gate against PyTorch")
    inputs = [InputSet(info, o, size) for size in img_sizes]
    result = VerifyResult(artifact, info, {}, {}, inputs[0].describe(), thresholds_for(info.precision),
                          total_images=inputs[0].total)
    cache_key = None
    if o.reference_cache is not None:
        cache_key = {"reference": reference.identity, **inputs[0].key}
        result.cache = {"path": str(o.reference_cache), "hit": Path(o.reference_cache).is_file()}
    with candidate:
        result.candidate = candidate.describe()
        # gate what actually runs: a runtime computing below the artifact's precision gets that precision's gate
        thresholds = thresholds_for(info.precision, result.candidate.get("execution_precision")).override(**o.thresholds)
        result.thresholds = thresholds
        result.notes = [n for n in [info.overflow_note(result.candidate.get("backend"))] if n]
        if unchecked:
            listed = ", ".join(map(_sizes, unchecked))
            result.notes.append((f"the size range's ends {listed} were" if len(unchecked) > 1 else
                                 f"the size range's end {listed} was") + " not gated, as the reference cannot run "
                                "there: gate it against the PyTorch model or a reference that takes that size")
        for inp in inputs:
            _gate_input_set(inp, sizes, candidate, reference, thresholds, o, cache_key, result, on_progress, probe)
        for size in ends:
            _gate_range_end(InputSet(info, o, size), min(sizes), candidate, reference, thresholds,
                            o.consistency_samples, result, on_progress)
    # described once it ran (what an OpenVINO reference computed in is known only then), or as the cache recorded it
    result.reference = result.reference or reference.runner.describe()
    if inputs[0].images is not None:
        images = inputs[0].images
        if images.unlabelled:  # the labels file decides the set; say what it leaves out, as an accuracy gate's scope
            result.notes.append(f"{images.unlabelled} image(s) in {o.data} have no row in {Path(o.labels).name} and "
                                "were not gated: add them to `labels` to include them")
        result.skipped_images = images.skipped
        result.skipped_examples = images.skipped_examples()
        result.labels = images.label_source
    if (tied := result.near_tie_failure()) is not None:
        result.random_near_ties = o.weights.source == WeightsSource.RANDOM and o.reference is None
        m, n = tied.metrics, tied.images
        differ, ties = int(m["top1_disagreements"]), int(m["top1_near_ties"])
        which = ("the one input whose top-1 differs is a near-tie" if differ == 1 else
                 f"all {differ} inputs whose top-1 differs are near-ties") if ties == differ else \
            f"{ties} of the {differ} inputs whose top-1 differs are near-ties"
        rest = "" if ties == differ else \
            f"; the others alone leave top-1 agreement at {(n - differ + ties) / n:.3g}, within the gate"
        result.notes.append(
            f"{tied.describe()}: {which} in the reference (its top-1 ahead of the artifact's pick by under "
            f"{NEAR_TIE_MEAN_DELTAS:g} x the artifact's mean |delta|, {NEAR_TIE_MEAN_DELTAS * m['mean_abs_delta']:.3g})"
            f"{rest}: not a larger error" + (
                "; random weights' logits are nearly flat: gate top-1 on trained weights (`checkpoint`) or set "
                "`min_top1_agreement`" if result.random_near_ties else ""))
    result.seconds = time.perf_counter() - start
    return result


def _check_inputs_fit(artifact: Path, info: ArtifactInfo, o: VerifyOptions) -> None:
    """An INT8 artifact's activation ranges were calibrated on images. Trained weights turn seeded noise into
    activations far outside them (the demo models' INT8 fails on N(0,1) inputs at cosine 0.5-0.9 and passes on
    held-out digits at 0.998), so without `data` the gate would fail an artifact that is fine: ask for images, unless
    the weights are random (no distribution to fall out of) or the user asked for `samples` knowingly."""
    if o.data is None and o.samples is None and info.precision == Precision.INT8 and \
            o.weights.source != WeightsSource.RANDOM:
        raise UserError(f"{artifact.name} is INT8 calibrated on images: gate it on held-out images with `data` DIR "
                        "(synthetic inputs fall outside its calibrated ranges; `samples` N runs them anyway)")


def _float16_probe(artifact: Path, backend: str) -> Float16Probe | None:
    """What reads out the float16 tensors of an ONNX run on a CPU runtime, or None. onnxruntime's CPU computes chains
    of float16 nodes in float32 and OpenVINO in f32 or bf16, so a float16 overflow a GPU has (inf past 65504) does
    not reach their outputs; a GPU runtime computes float16 itself, and its outputs show it."""
    if kind_of(artifact) != "onnx" or backend not in ("onnxruntime-cpu", "openvino"):
        return None
    import onnx

    probe = Float16Probe(onnx.load(str(artifact)))
    return probe if probe.writers else None


def _float16_check(probe: Float16Probe, x: np.ndarray, batch: int, info: ArtifactInfo, backend: str,
                   result: VerifyResult) -> Check:
    """The share of inputs `x` whose float16 tensors, as stored, hold no inf or NaN (run `batch` at a time: 1, or a
    static batch's own), gated at 1; a note names the first node that overflows and what to do."""
    parts = [x[start:start + batch] for start in range(0, len(x), batch)]
    nodes = probe.first_overflows([pad_batch(part, batch) for part in parts])
    overflowed = sum(len(part) for part, node in zip(parts, nodes) if node is not None)
    first = next((node for node in nodes if node is not None), None)
    value = 1.0 - overflowed / len(x)
    result.float16_inputs = len(x)
    if first is not None:
        # recorded where the peaks were measured: an FP16 made with images, an INT8 with float16 outside its Q/DQ
        keep_above = info.details.get("fp16_keep_above")
        if keep_above:
            fix = f"quantize it again with a lower `fp16_keep_above` (it was {keep_above}) or more `calib_data` images"
        else:
            fix = ("quantize the fp32 export with `calib_data` images (the nodes whose activations pass "
                   "`fp16_keep_above` on them stay float32)")
        if info.precision == Precision.INT8:
            fix += ", or with `high_precision` fp32 (float32 outside the Q/DQ)"
        result.notes.append(f"float16 overflows at {first} on {overflowed} of {len(x)} inputs: its float16 tensors, read "
                            f"out as a GPU stores them, hold inf there ({backend} computes them in float32 or bf16, so "
                            f"its outputs stayed finite): {fix}")
    return Check("float16_finite", value, 1.0, "min", value >= 1.0)


def _gate_input_set(inp: InputSet, sizes: list[int], candidate: Runner, ref_source: Reference, thresholds: Thresholds,
                    o: VerifyOptions, cache_key: dict | None, result: VerifyResult, on_progress: Progress,
                    probe: Float16Probe | None = None) -> None:
    """The full pass at the first batch size, then batch consistency on a subset at every other size; with `probe`,
    the float16 tensors of the first FLOAT16_PROBE_INPUTS inputs (at most `consistency_samples`) as stored."""
    main, others = sizes[0], sizes[1:]
    probed = min(o.consistency_samples, defaults.FLOAT16_PROBE_INPUTS) if probe is not None else 0
    keep = max(o.consistency_samples if others else 0, probed)
    cached = CacheReader(o.reference_cache, cache_key) if cache_key is not None and result.cache["hit"] else None
    writer = CacheWriter(o.reference_cache, cache_key) if cache_key is not None and cached is None else None
    comparison, subset = Comparison(), []
    reference = ref_source.runner
    if cached is None:
        reference.activate()
    try:
        label = f"{_sizes(inp.img_size)}, batch {main}"
        for batch in inp.batches(main):
            if cached is not None:
                ref = cached.outputs(batch.index)
            else:
                # under the names the candidate promises (a reference ONNX without metadata names its own)
                ref = named_as(run_padded(reference, ref_source.prepare(batch.x), main), inp.info.outputs)
            if writer is not None:
                writer.add(batch.index, ref)
            comparison.update(ref, run_padded(candidate, batch.x, main), batch.labels)
            if sum(len(s[0]) for s in subset) < keep:
                subset.append((batch.x, ref))
            on_progress(label, len(batch.x), inp.total)
        if comparison.samples == 0:
            raise inp.images.none_readable()  # synthetic inputs always run
        if cached is not None:
            result.reference = cached.described
        if writer is not None:
            writer.commit(reference.describe())
            writer = None
    finally:
        if writer is not None:
            writer.discard()
        reference.deactivate()
    metrics = comparison.metrics()
    checks = gate(metrics, thresholds)
    x = np.concatenate([s[0] for s in subset])[:keep] if subset else None
    if probe is not None:
        on_progress(f"{_sizes(inp.img_size)}, float16 tensors as stored", 0, inp.total)
        stored = _float16_check(probe, x[:probed], inp.info.fixed_batch or 1, inp.info,
                                result.candidate.get("backend", ""), result)
        metrics["float16_finite"] = stored.value
        checks.append(stored)
    result.batches.append(BatchResult(main, metrics, checks, inp.img_size, comparison.samples, "all"))
    if not others:
        return
    ref = {k: np.concatenate([s[1][k] for s in subset])[:keep] for k in subset[0][1]}
    for b in others:  # consistency: the same logit gates, no accuracy (that is over the whole set, above)
        on_progress(f"{_sizes(inp.img_size)}, batch {b} (consistency)", 0, inp.total)
        check = Comparison()
        check.update(ref, run_batched(candidate, x, b))
        metrics = check.metrics()
        result.batches.append(BatchResult(b, metrics, gate(metrics, thresholds), inp.img_size, len(x), f"first {len(x)}",
                                          "consistency"))


def _gate_range_end(inp: InputSet, batch_size: int, candidate: Runner, ref_source: Reference, thresholds: Thresholds,
                    limit: int, result: VerifyResult, on_progress: Progress) -> None:
    """One end of a dynamic-size artifact's range, on the first `limit` inputs at `batch_size` (the smallest asked
    for: the largest end can be 4x the pixels or more): the graph's shape-dependent parts (padding, shifts, masks, the
    window size) are what a size can break, and they break every input alike, so a subset shows it at a fraction of
    a full pass. The same logit gates as batch consistency; the reference is computed here, as a reference cache
    holds one size."""
    check, reference = Comparison(), ref_source.runner
    label = f"{_sizes(inp.img_size)}, batch {batch_size} (range end)"
    reference.activate()
    try:
        for batch in inp.batches(batch_size, limit):
            ref = named_as(run_padded(reference, ref_source.prepare(batch.x), batch_size), inp.info.outputs)
            check.update(ref, run_padded(candidate, batch.x, batch_size))
            on_progress(label, len(batch.x), min(limit, inp.total))
    finally:
        reference.deactivate()
    metrics = check.metrics()
    result.batches.append(BatchResult(batch_size, metrics, gate(metrics, thresholds), inp.img_size, check.samples,
                                      f"first {check.samples}", "range end"))


def _sizes(size) -> str:
    return f"{size[0]}x{size[1]}"

