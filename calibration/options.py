"""What quantize and build-engine are asked to do, validated on construction: the command line and a Python caller
get the same one-line errors, including for settings that do not apply to the precision asked for.

Light on purpose (no onnx/onnxruntime import), so the command line reads its defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from swin_deploy import defaults
from swin_deploy.enums import CalibMethod, HighPrecision, Int8Target, Precision, QdqPlacement
from swin_deploy.errors import UserError, require_at_least
from swin_deploy.parsing import as_hw, one_or_many
from swin_deploy.tolerances import Thresholds, thresholds_for

DEFAULT_HIGH_PRECISION = {Int8Target.TENSORRT: HighPrecision.FP16, Int8Target.ONNXRUNTIME: HighPrecision.FP32}
LINEAR_OPS = ("MatMul", "Conv", "Gemm")  # the ops INT8 quantizes


def check_percentile(percentile: float) -> None:
    if not 0 < percentile <= 100:
        raise UserError(f"`percentile` must be in (0, 100], not {percentile}")


@dataclass
class Int8Options:
    """How to place and write INT8 Q/DQ; validated (and strings turned into enums) on construction."""

    target: Int8Target = Int8Target.TENSORRT
    method: CalibMethod = CalibMethod.MINMAX
    percentile: float = defaults.PERCENTILE
    attention_matmuls: bool | None = None  # None: off (nvidia placement: on)
    quantize_head: bool = False
    exclude: list[str] = field(default_factory=list)
    high_precision: HighPrecision | None = None  # None: the target's default
    placement: QdqPlacement = QdqPlacement.LINEAR  # nvidia: + attention matmuls and residual adds
    # 7-bit weights ([-64, 64]): on x86 CPUs without VNNI (AVX2, AVX-512 before Cascade Lake) onnxruntime's and
    # OpenVINO's int8 matmuls add pairs of 8-bit products in saturating int16, which 8-bit weights can overflow
    reduce_range: bool = False
    # keep blocks in float, the worst of calibration.sensitivity's ranking first, one more at a time until the INT8 is
    # within the gates below against float32 on the images compared, then those it can do without back in INT8;
    # they add to `exclude`
    auto_exclude: bool = False
    # the gates `auto_exclude` and the sensitivity ranking measure against (None: verify's INT8 default); tighter ones
    # where verify will be run with tighter ones
    max_rel_delta: float | None = None
    min_cosine: float | None = None
    min_top1_agreement: float | None = None
    min_top5_agreement: float | None = None
    # images the comparisons run on: a max over more images is larger, so a tight `max_rel_delta` reached on a few may
    # be missed on a validation set; more images cost time in every pass
    compare_images: int = defaults.COMPARE_IMAGES
    # the images to compare on (a validation set); default: the calibration folder's that calibration did not read
    compare_data: Path | None = None

    def __post_init__(self) -> None:
        self.target = Int8Target.parse(self.target, "target")
        self.method = CalibMethod.parse(self.method, "method")
        self.placement = QdqPlacement.parse(self.placement, "placement")
        if self.placement == QdqPlacement.NVIDIA and self.attention_matmuls is False:
            raise UserError("`placement` nvidia quantizes the attention matmuls: drop `no_attention_matmuls`, "
                            "or use `placement` linear")
        if self.high_precision is not None:
            self.high_precision = HighPrecision.parse(self.high_precision, "high_precision")
        check_percentile(self.percentile)
        if self.percentile != defaults.PERCENTILE and self.method != CalibMethod.PERCENTILE:
            raise UserError("`percentile` goes with `method` percentile")
        self.exclude = list(one_or_many(self.exclude) or ())
        self.limits()  # refuses a gate out of its range
        require_at_least("compare_images", self.compare_images, 1)
        self.compare_data = None if self.compare_data is None else Path(self.compare_data)

    @property
    def comparison(self) -> list[str]:
        """The settings of comparing the INT8 with float32 that differ from their defaults."""
        return [name for name in GATES if getattr(self, name) is not None] + \
            (["compare_images"] if self.compare_images != defaults.COMPARE_IMAGES else []) + \
            (["compare_data"] if self.compare_data is not None else [])

    def limits(self) -> Thresholds:
        """What an INT8 with blocks kept in float must be within, against float32 on the images compared."""
        return thresholds_for(Precision.INT8).override(**{name: getattr(self, name) for name in GATES})

    def changed(self) -> list[str]:
        """The settings that differ from their defaults."""
        default = Int8Options()
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)]

    @property
    def high(self) -> HighPrecision:
        return self.high_precision or DEFAULT_HIGH_PRECISION[self.target]

    @property
    def attention(self) -> bool:
        # off by default for both targets: on onnxruntime CPU quantized attention matmuls were slower at the same
        # accuracy (benchmarks/RESULTS.md); TensorRT follows the same evidence until a GPU measures it
        return self.placement == QdqPlacement.NVIDIA or bool(self.attention_matmuls)

    @property
    def calibrated_ops(self) -> tuple[str, ...]:
        """The op types whose inputs and outputs calibration must measure for this placement."""
        return (*LINEAR_OPS, "Add") if self.placement == QdqPlacement.NVIDIA else LINEAR_OPS


GATES = ("max_rel_delta", "min_cosine", "min_top1_agreement", "min_top5_agreement")  # verify's, less accuracy (no labels)
INT8_SETTINGS = {f.name for f in fields(Int8Options)}
CALIBRATION_SETTINGS = ("calib_data", "calib_images", "calib_batch", "calib_size", "workers", "calib_cache",
                        "fp16_keep_above")
IMAGE_SETTINGS = ("calib_images", "calib_batch", "calib_size", "workers", "seed")  # how `calib_data` is read


@dataclass
class QuantizeOptions:
    precision: Precision
    calib_data: Path | None = None
    calib_images: int = defaults.CALIB_IMAGES
    calib_batch: int = defaults.CALIB_BATCH
    seed: int = defaults.SEED
    calib_cache: Path | None = None  # INT8: reuse the ranges of an earlier run
    fp16_keep_above: float = defaults.FP16_KEEP_ABOVE
    int8: Int8Options = field(default_factory=Int8Options)
    variant: str | None = None  # for an ONNX without metadata
    calib_size: tuple[int, int] | None = None  # dynamic-size models: calibrate at this size, not the default
    workers: int | None = None  # image decode workers (default: by the machine)

    def __post_init__(self) -> None:
        self.calib_size = as_hw(self.calib_size, "calib_size")
        self.calib_data, self.calib_cache = (None if p is None else Path(p) for p in (self.calib_data, self.calib_cache))
        require_at_least("seed", self.seed, 0)
        self.precision = Precision.parse(self.precision, "precision")
        if self.precision == Precision.FP32:
            raise UserError("`precision` fp32 is what export writes: choose fp16 or int8")
        if not self.fp16_keep_above > 0:
            raise UserError(f"`fp16_keep_above` must be positive (float16 overflows past {defaults.FP16_MAX:g}), "
                            f"not {self.fp16_keep_above}")
        require_at_least("calib_images", self.calib_images, 1)
        require_at_least("calib_batch", self.calib_batch, 1)
        from swin_deploy.data import checked_workers  # here: numpy stays out of the command line's start-up

        checked_workers(self.workers)
        if self.precision == Precision.FP16:
            unused = self.int8.changed() + (["calib_cache"] if self.calib_cache is not None else [])
            _reject(unused, "INT8 conversion")
        elif self.fp16_keep_above != defaults.FP16_KEEP_ABOVE and self.int8.high != HighPrecision.FP16:
            _reject(["fp16_keep_above"], "float16 nodes (`precision` fp16, or int8 with `high_precision` fp16)")
        # the settings of reading calibration images mean nothing where none are read
        default = {f.name: f.default for f in fields(self)}
        if self.calib_data is None:
            _reject([k for k in IMAGE_SETTINGS if getattr(self, k) != default[k]], "calibration images (`calib_data`)")
            if self.int8.auto_exclude and self.int8.compare_data is None:
                raise UserError("`auto_exclude` compares the INT8 with float32 on images: pass `calib_data` DIR (with "
                                "`calib_cache` too, its ranges are used) or `compare_data` DIR")

    def check_comparison(self, compared: bool) -> None:
        """Settings of comparing the INT8 with float32 (`auto_exclude`, or the sensitivity ranking when `compared`) mean
        nothing elsewhere: the gates to reach, and images beside a cache's ranges (they would be silently not read)."""
        cached = self.calib_cache is not None and self.calib_data is not None
        if compared or self.int8.auto_exclude:
            if cached and self.int8.compare_data is not None:
                raise UserError("`calib_data` is not read where `calib_cache` gives the ranges and `compare_data` the "
                                "images to compare on: drop `calib_data`")
            return
        _reject(self.int8.comparison, "`auto_exclude` and `sensitivity`")
        if cached:
            raise UserError("`calib_data` is not read where `calib_cache` gives the ranges (only `auto_exclude` and "
                            "`sensitivity` compare the INT8 on images then): drop one of them")

    @classmethod
    def of(cls, precision: Precision | str, **settings) -> QuantizeOptions:
        """From flat settings, as a command line has them: Int8Options' names go to `int8`."""
        int8 = {k: settings.pop(k) for k in list(settings) if k in INT8_SETTINGS}
        return cls(precision, int8=Int8Options(**int8), **settings)


def conversion(precision: Precision | str | None, **settings) -> QuantizeOptions | None:
    """What build-engine converts an fp32 ONNX to before building: None for no conversion, where any calibration or
    INT8 setting that differs from its default is a mistake to report, not to ignore."""
    if precision is not None:
        return QuantizeOptions.of(precision, **settings)
    default = QuantizeOptions(Precision.INT8)
    unused = [k for k in CALIBRATION_SETTINGS if settings.get(k, getattr(default, k)) != getattr(default, k)]
    unused += Int8Options(**{k: v for k, v in settings.items() if k in INT8_SETTINGS}).changed()
    _reject(unused, "a conversion (`fp16` or `int8`)")
    return None


def _reject(names: list[str], applies_to: str) -> None:
    if names:
        names = sorted(names)
        verb, pronoun = ("apply", "them") if len(names) > 1 else ("applies", "it")
        raise UserError(f"{', '.join(f'`{n}`' for n in names)} only {verb} to {applies_to}: drop {pronoun}")
