"""What an artifact says about itself: the swin-deploy metadata every artifact carries, wherever it is stored.

    model.onnx                  ONNX `metadata_props` (swin_deploy.* keys)
    model.engine / model.plan   the sidecar JSON beside the engine (EngineInfo: the source ONNX's metadata + build facts)
    model.xml (OpenVINO IR)     the IR's rt_info, under `swin_deploy`

Export writes it; quantize, verify, bench, predict, triton and build-engine read it (`artifact_info`) instead of
asking the user again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import onnx

from .enums import CalibMethod, InputFormat, Int8Target, Precision
from .errors import NoMetadata, UserError, require_file
from .fileio import sha256_files
from .machine import check_memory, exact_int8_dot_products
from .models.registry import SwinConfig, get_config
from .precision.graph import opset_of

ENGINE_SUFFIXES = (".engine", ".plan")
IR_SUFFIX = ".xml"
ORT_ONLY_INT8 = ("this INT8 model targets onnxruntime (uint8 activations, com.microsoft ops), which TensorRT does not "
                 "take: quantize the fp32 ONNX again with `target` tensorrt")
# what quantize records as the `int8_weights` detail; the one detail code reads (verify, on CPUs without VNNI)
INT8_WEIGHTS_7BIT = "7-bit [-64, 64] per channel"
INT8_WEIGHTS_8BIT = "8-bit per channel"
# metadata keys with a typed field of their own; every other swin_deploy.* key is a detail for people
_TYPED = {"variant", "timm_name", "input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode", "num_classes",
          "weights_sha256", "precision", "opset", "version", "max_batch", "static_batch", "outputs", "dynamic_size",
          "architecture", "labels", "input_format", "channels_last", "target", "method", "source_sha256"}


@dataclass(frozen=True)
class ArtifactInfo:
    variant: str
    timm_name: str | None
    img_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    crop_pct: float
    num_classes: int
    weights_sha256: str
    precision: Precision = Precision.FP32
    opset: int = 17
    version: str = ""
    max_batch: int | None = None
    static_batch: bool = False
    outputs: tuple[str, ...] = ("logits",)  # ("stage1", ..., "stageN") for a --features export
    dynamic_size: tuple[int, int, int, int] | None = None  # min H, min W, max H, max W
    architecture: dict | None = None  # SwinConfig.architecture(): rebuilds models not in the registry (fine-tunes)
    labels: tuple[str, ...] | None = None  # class names (id2label of a transformers fine-tune, the demo digits)
    input_format: InputFormat = InputFormat.FLOAT32  # uint8: raw pixels, normalisation folded into the graph
    channels_last: bool = False  # uint8 input as (B, H, W, 3)
    int8_target: Int8Target | None = None  # INT8: who runs the Q/DQ graph (TensorRT, or onnxruntime only)
    calib_method: CalibMethod | None = None  # INT8: how the ranges were calibrated
    source_sha256: str | None = None  # quantized artifacts: the fp32 ONNX they came from
    details: dict[str, str] = field(default_factory=dict)  # how the precision was decided, for people (counts, options)
    in_chans: int = 3  # input channels (recorded as the first entry of input_size)
    crop_mode: str = "center"  # timm's eval crop mode: center, or squash (transformers' ViTImageProcessor)

    @property
    def onnxruntime_only(self) -> bool:
        """An INT8 graph quantized for onnxruntime (uint8 activations, FusedMatMul): TensorRT cannot take it."""
        return self.precision == Precision.INT8 and self.int8_target == Int8Target.ONNXRUNTIME

    @property
    def preprocessing(self) -> dict:
        """How its images are prepared: normalisation, resize filter and crop."""
        return {"mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation,
                "crop_pct": self.crop_pct, "crop_mode": self.crop_mode}

    @property
    def fixed_batch(self) -> int | None:
        """The only batch size a --static-batch artifact takes; None when the batch is dynamic."""
        return (self.max_batch or 1) if self.static_batch else None

    def accepts_batch(self, batch: int) -> bool:
        if self.fixed_batch is not None:
            return batch == self.fixed_batch
        return self.max_batch is None or batch <= self.max_batch

    def default_batch_sizes(self, defaults: tuple[int, ...]) -> list[int]:
        """`defaults`, or the one batch a static-batch artifact takes; those above a max batch give way to it, in
        their place (the first size is the one verify runs every input at)."""
        if self.fixed_batch:
            return [self.fixed_batch]
        return list(dict.fromkeys(b if self.accepts_batch(b) else self.max_batch for b in defaults))

    def check_batch_sizes(self, sizes: list[int]) -> None:
        """A UserError unless every size is one this artifact takes."""
        if not sizes or any(b < 1 for b in sizes):
            raise UserError("batch sizes must be positive integers, e.g. `batch_sizes` 1,3,8")
        if self.fixed_batch is not None and any(b != self.fixed_batch for b in sizes):
            raise UserError(f"this artifact has a static batch of {self.fixed_batch}: use `batch_sizes` {self.fixed_batch}")
        if self.max_batch and max(sizes) > self.max_batch:
            raise UserError(f"batch size {max(sizes)} exceeds the artifact's max batch {self.max_batch}: "
                            f"use sizes up to {self.max_batch} or re-export with a larger `max_batch`")

    @classmethod
    def for_config(cls, cfg: SwinConfig, weights_sha256: str, opset: int, max_batch: int | None,
                   static_batch: bool, **more) -> ArtifactInfo:
        """The metadata of an export of `cfg`; `more` sets the other fields (outputs, input format, ...)."""
        from . import __version__

        return cls(variant=cfg.name, timm_name=cfg.timm_name, img_size=tuple(cfg.img_size), mean=tuple(cfg.mean),
                   std=tuple(cfg.std), interpolation=cfg.interpolation, crop_pct=cfg.crop_pct, crop_mode=cfg.crop_mode,
                   num_classes=cfg.num_classes, weights_sha256=weights_sha256, opset=opset, version=__version__,
                   max_batch=max_batch, static_batch=static_batch, architecture=cfg.architecture(),
                   labels=tuple(cfg.labels) if cfg.labels else None, in_chans=cfg.in_chans, **more)

    def to_props(self) -> dict[str, str]:
        props = {
            "swin_deploy.variant": self.variant,
            "swin_deploy.timm_name": self.timm_name or "",
            "swin_deploy.input_size": json.dumps([self.in_chans, *self.img_size]),
            "swin_deploy.mean": json.dumps(list(self.mean)),
            "swin_deploy.std": json.dumps(list(self.std)),
            "swin_deploy.interpolation": self.interpolation,
            "swin_deploy.crop_pct": str(self.crop_pct),
            "swin_deploy.crop_mode": self.crop_mode,
            "swin_deploy.num_classes": str(self.num_classes),
            "swin_deploy.weights_sha256": self.weights_sha256,
            "swin_deploy.precision": str(self.precision),
            "swin_deploy.opset": str(self.opset),
            "swin_deploy.version": self.version,
            "swin_deploy.max_batch": "" if self.max_batch is None else str(self.max_batch),
            "swin_deploy.static_batch": str(self.static_batch).lower(),
            "swin_deploy.outputs": ",".join(self.outputs),
            "swin_deploy.dynamic_size": "" if self.dynamic_size is None else json.dumps(list(self.dynamic_size)),
            "swin_deploy.architecture": "" if self.architecture is None else json.dumps(self.architecture),
            "swin_deploy.labels": "" if self.labels is None else json.dumps(list(self.labels)),
            "swin_deploy.input_format": str(self.input_format),
            "swin_deploy.channels_last": str(self.channels_last).lower(),
        }
        typed = {"target": self.int8_target, "method": self.calib_method, "source_sha256": self.source_sha256}
        props.update({f"swin_deploy.{k}": str(v) for k, v in typed.items() if v is not None})
        props.update({f"swin_deploy.{k}": v for k, v in self.details.items()})
        return props

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ArtifactInfo | None:
        if "swin_deploy.variant" not in props:
            return None
        p = {k.removeprefix("swin_deploy."): v for k, v in props.items() if k.startswith("swin_deploy.")}
        return cls(variant=p["variant"], timm_name=p.get("timm_name") or None,
                   img_size=tuple(json.loads(p["input_size"])[1:]), in_chans=int(json.loads(p["input_size"])[0]),
                   mean=tuple(json.loads(p["mean"])),
                   std=tuple(json.loads(p["std"])), interpolation=p["interpolation"], crop_pct=float(p["crop_pct"]),
                   crop_mode=p.get("crop_mode") or "center",
                   num_classes=int(p["num_classes"]), weights_sha256=p["weights_sha256"],
                   precision=Precision.parse(p.get("precision", "fp32")), opset=int(p.get("opset", "17")),
                   version=p.get("version", ""),
                   max_batch=int(p["max_batch"]) if p.get("max_batch") else None,
                   static_batch=p.get("static_batch") == "true",
                   outputs=tuple(p.get("outputs", "logits").split(",")),
                   dynamic_size=tuple(json.loads(p["dynamic_size"])) if p.get("dynamic_size") else None,
                   architecture=json.loads(p["architecture"]) if p.get("architecture") else None,
                   labels=tuple(json.loads(p["labels"])) if p.get("labels") else None,
                   input_format=InputFormat.parse(p.get("input_format") or "float32"),
                   channels_last=p.get("channels_last") == "true",
                   int8_target=Int8Target.parse(p["target"]) if p.get("target") else None,
                   calib_method=CalibMethod.parse(p["method"]) if p.get("method") else None,
                   source_sha256=p.get("source_sha256") or None,
                   details={k: v for k, v in p.items() if k not in _TYPED})

    @property
    def seven_bit_weights(self) -> bool:
        """INT8 weights in [-64, 64] (`quantize` with `reduce_range`): exact on CPUs without VNNI."""
        return self.details.get("int8_weights") == INT8_WEIGHTS_7BIT

    def overflow_note(self, backend: str | None) -> str | None:
        """Why an INT8 artifact with 8-bit weights may fail its gates, or be wrong where they pass, on a CPU runtime
        of an x86 CPU without VNNI: its int8 matmuls add pairs of products in saturating int16 (docs/cpu.md). On
        OpenVINO that fails the INT8 gates outright (AMD Zen 3), on onnxruntime it often stays small enough that a gate
        over a few images passes. None where it cannot happen."""
        if (self.precision != Precision.INT8 or backend not in ("onnxruntime-cpu", "openvino")
                or self.seven_bit_weights or exact_int8_dot_products() is not False):
            return None
        return ("this CPU has no VNNI, so its int8 matmuls add pairs of products in saturating int16, which 8-bit "
                "weights can overflow: for CPUs like it quantize with `reduce_range` (7-bit weights; docs/cpu.md)")

    def speed_note(self, backend: str | None) -> str | None:
        """Why the TensorRT-target INT8 times slower than float on onnxruntime's CPU runner (swin_t: 1.8x-3.5x its fp32
        on an AMD EPYC Zen 4 with AVX-512 VNNI, benchmarks/RESULTS.md "CPU peers on AMD EPYC Zen 4"; as slow on every
        CPU measured), while OpenVINO runs the same file as the fastest CPU INT8 where the CPU has VNNI. None elsewhere."""
        if self.precision != Precision.INT8 or self.int8_target != Int8Target.TENSORRT or backend != "onnxruntime-cpu":
            return None
        return ("INT8 for TensorRT (symmetric int8, float16 between the Q/DQ), which onnxruntime's CPU runs slower than "
                "float: on a CPU run it with `backend` openvino, or quantize with `target` onnxruntime (docs/cpu.md)")

    @property
    def headless(self) -> bool:
        """Outputs no class scores: pooled features, or feature maps."""
        return self.outputs != ("logits",)

    @property
    def features(self) -> bool:
        """Outputs feature maps (a --features export, a transformers backbone)."""
        return self.headless and self.outputs != ("features",)

    @property
    def pixels(self) -> bool:
        """Takes raw uint8 pixels (normalisation inside the graph) rather than normalised float32."""
        return self.input_format == InputFormat.UINT8

    def input_shape(self, batch: int, size: tuple[int, int] | None = None) -> tuple[int, ...]:
        h, w = size or self.img_size
        return (batch, h, w, self.in_chans) if self.channels_last else (batch, self.in_chans, h, w)

    def example_input(self, rng: np.random.Generator, batch: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Seeded synthetic input the artifact takes: N(0, 1) float32, or uniform uint8 pixels."""
        shape = self.input_shape(batch, size)
        if self.pixels:
            return rng.integers(0, 256, shape, dtype=np.uint8)
        return rng.standard_normal(shape, dtype=np.float32)

    def normalized(self, x: np.ndarray) -> np.ndarray:
        """What a float32 model (the PyTorch reference) takes for input `x` of this artifact: x itself, or for
        pixels (B, C, H, W) float32 computed as timm's ToTensor + Normalize do, (p / 255 - mean) / std."""
        if not self.pixels:
            return x
        x = x.transpose(0, 3, 1, 2) if self.channels_last else x
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1, 1)
        return np.ascontiguousarray((x.astype(np.float32) / np.float32(255) - mean) / std)

    def config(self) -> SwinConfig:
        """The config this artifact was exported from (recorded, or the registry's for older artifacts), at the
        artifact's input size."""
        cfg = SwinConfig.from_architecture(self.architecture, self.labels) if self.architecture else get_config(self.variant)
        return cfg.at_size(tuple(self.img_size), dynamic=self.dynamic_size is not None)

    def output_dims(self) -> dict[str, tuple[int, ...]]:
        """Each output's dims without the batch: logits (classes,), pooled features (F,), or a stage map (C_i, H_i,
        W_i), -1 for a dynamic size ("stem" is the patch embedding's map, "stageN" stage N's)."""
        if not self.headless:
            return {"logits": (self.num_classes,)}
        cfg = self.config()
        if not self.features:
            return {"features": (cfg.embed_dim * 2 ** (len(cfg.depths) - 1),)}
        dims = {}
        for name in self.outputs:
            level = cfg.map_level(name)
            scale = cfg.patch_size * 2 ** level
            hw = (-1, -1) if self.dynamic_size else (self.img_size[0] // scale, self.img_size[1] // scale)
            dims[name] = (cfg.embed_dim * 2 ** level, *hw)
        return dims

    def range_ends(self) -> list[tuple[int, int]]:
        """A dynamic-size artifact's smallest and largest sizes, those that are not its default size."""
        if self.dynamic_size is None:
            return []
        lo_h, lo_w, hi_h, hi_w = self.dynamic_size
        return [s for s in dict.fromkeys([(lo_h, lo_w), (hi_h, hi_w)]) if s != tuple(self.img_size)]

    def accepts(self, size: tuple[int, int]) -> bool:
        try:
            self.check_size(size)
        except UserError:
            return False
        return True

    def check_memory(self, batch: int, sizes: list[tuple[int, int]], fix: str, name: str = "") -> None:
        """Refuse a run at `batch` whose activations at the largest of `sizes` cannot fit in memory
        (machine.check_memory); `name` says which artifact, where several run."""
        h, w = max(sizes, key=lambda hw: hw[0] * hw[1])
        check_memory(batch * self.config().activation_bytes((h, w)),
                     f"{name} at batch {batch} and {h}x{w}" if name else f"batch {batch} at {h}x{w}", fix)

    def check_size(self, size: tuple[int, int]) -> None:
        """A UserError unless this artifact accepts inputs of `size`."""
        if self.dynamic_size is None:
            if tuple(size) != tuple(self.img_size):
                raise UserError(f"this artifact takes {self.img_size[0]}x{self.img_size[1]} inputs only: "
                                "re-export with `dynamic_size` for other sizes")
            return
        lo_h, lo_w, hi_h, hi_w = self.dynamic_size
        stride = self.config().stride
        if not (lo_h <= size[0] <= hi_h and lo_w <= size[1] <= hi_w) or size[0] % stride or size[1] % stride:
            raise UserError(f"size {size[0]}x{size[1]} is outside this artifact's range {lo_h}x{lo_w} to {hi_h}x{hi_w} "
                            f"(multiples of {stride})")


def write_info(model: onnx.ModelProto, info: ArtifactInfo) -> None:
    props = {p.key: p.value for p in model.metadata_props if not p.key.startswith("swin_deploy.")}
    props.update(info.to_props())
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)


def write_described_copy(source: Path, target: Path, info: ArtifactInfo) -> None:
    """A copy of an ONNX or IR that carries `info` as its swin-deploy metadata, so that a model someone else exported
    (read with `variant`) describes itself wherever it is copied to. The IR's .bin is copied as it is."""
    if kind_of(source) == "ir":
        import xml.etree.ElementTree as ET

        tree = ET.parse(source)
        rt_info = tree.getroot().find("rt_info")
        if rt_info is None:
            rt_info = ET.SubElement(tree.getroot(), "rt_info")
        for old in rt_info.findall(IR_RT_INFO):
            rt_info.remove(old)
        section = ET.SubElement(rt_info, IR_RT_INFO)
        for key, value in info.to_props().items():
            ET.SubElement(section, key.removeprefix("swin_deploy."), value=value)
        tree.write(target, encoding="utf-8", xml_declaration=True)
        shutil.copyfile(ir_weights(source), ir_weights(target))
        return
    model = load_onnx(source)
    write_info(model, info)
    onnx.save(model, str(target))


def load_onnx(path: str | Path, load_weights: bool = True) -> onnx.ModelProto:
    """onnx.load with a one-line error for missing, corrupt or non-ONNX files."""
    path = Path(path)
    require_file(path, "pass the path of an ONNX file (swin-deploy export writes one)")
    if kind_of(path) == "ir":
        raise UserError(f"{path} is an OpenVINO IR: this takes the ONNX it was converted from")
    if path.suffix.lower() == ".bin" and path.with_suffix(IR_SUFFIX).is_file():
        xml = path.with_suffix(IR_SUFFIX).name
        raise UserError(f"{path} is the weights file of the OpenVINO IR {xml}, not a model: pass {xml}, or the ONNX "
                        "it was converted from")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise UserError(f"{path} is not a readable ONNX model ({type(e).__name__}): re-export it") from e
    if not model.graph.node:
        raise UserError(f"{path} is not a readable ONNX model (no graph): re-export it")
    beside = external_data_files(model)
    missing = [f for f in beside if not (path.parent / f).is_file()]
    if missing:
        raise UserError(f"{path} keeps its weights in {missing[0]}, which is not beside it: copy {missing[0]} into "
                        f"{path.parent}")
    if load_weights and beside:
        onnx.load_external_data_for_model(model, str(path.parent))
    return model


def artifact_files(path: str | Path) -> list[Path]:
    """The files an artifact is: itself, and the weights that live beside it (an IR's .bin, an ONNX's external data)."""
    path = Path(path)
    if kind_of(path) == "ir":
        return [path, ir_weights(path)]
    if kind_of(path) == "engine":
        return [path]
    return [path, *(path.parent / f for f in external_data_files(load_onnx(path, load_weights=False)))]


def artifact_sha256(path: str | Path) -> str:
    """What identifies an artifact's content: the file's sha256, or for one whose weights live beside it the sha256 of
    all of them (artifact_files), as the same graph can carry other weights."""
    return sha256_files(artifact_files(path))


def external_data_files(model: onnx.ModelProto) -> list[str]:
    """The files, relative to the model's folder, in which an ONNX keeps its tensors as external data (those above
    protobuf's 2 GB limit, or any when an exporter chose to); empty for a self-contained file."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    def tensors(graph: onnx.GraphProto):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                yield from ([attr.t] if attr.HasField("t") else [])
                yield from attr.tensors
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    yield from tensors(sub)

    return list(dict.fromkeys(ExternalDataInfo(t).location for t in tensors(model.graph) if uses_external_data(t)))


def read_info(path: str | Path, variant: str | None = None, *, fallback_variant: str | None = None) -> ArtifactInfo:
    """The artifact's metadata; for a foreign ONNX, the registry's view of `variant` or `fallback_variant` (else a
    UserError). Beside metadata `variant` may only repeat its model (see artifact_info)."""
    model = load_onnx(path, load_weights=False)
    info = ArtifactInfo.from_props({p.key: p.value for p in model.metadata_props})
    if info is not None:
        return as_named(info, variant, Path(path))
    variant = variant or fallback_variant
    if variant is None:
        raise NoMetadata(f"{path} carries no swin-deploy metadata: pass `variant` NAME to say what model it is")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in model.graph.input[0].type.tensor_type.shape.dim]
    return _foreign_info(Path(path), variant, dims, opset_of(model), graph_precision(model))


def _foreign_info(path: Path, variant: str, dims: list[int | None], opset: int, precision: Precision) -> ArtifactInfo:
    """The registry's view of `variant` for a model swin-deploy did not write, once its input (dims; None where
    dynamic) is one the variant takes."""
    cfg = get_config(variant)
    expected = [None, cfg.in_chans, *cfg.img_size]
    if len(dims) != 4 or any(d is not None and d != e for d, e in zip(dims[1:], expected[1:])):
        shown = "x".join("?" if d is None else str(d) for d in dims)
        raise UserError(f"{path.name} takes {shown} inputs where {variant} takes ?x{cfg.in_chans}x"
                        f"{cfg.img_size[0]}x{cfg.img_size[1]}: pass the `variant` it was exported from")
    return ArtifactInfo.for_config(cfg, weights_sha256="", opset=opset, max_batch=dims[0],
                                   static_batch=dims[0] is not None, precision=precision)


# operators only a quantized graph has: Q/DQ pairs (TensorRT, NNCF, onnxruntime static) and onnxruntime's dynamic and
# operator-oriented forms
_QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv",
                  "MatMulInteger", "ConvInteger"}


def graph_precision(model) -> Precision:
    """What a foreign ONNX's graph says its precision is, so it gets that precision's gates: INT8 where it quantizes,
    FP16 where its weights are float16, else FP32."""
    if any(n.op_type in _QUANTIZED_OPS for n in model.graph.node):
        return Precision.INT8
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return Precision.FP16
    return Precision.FP32


# what a file is taken for, by its suffix: an OpenVINO IR, a TensorRT engine, else an ONNX
KINDS = {"onnx": ("an ONNX", ".onnx"), "ir": ("an OpenVINO IR", IR_SUFFIX), "engine": ("a TensorRT engine", ".engine")}


def kind_of(path: str | Path) -> str:
    """"engine", "ir" or "onnx", by the suffix in any case (model.XML is an IR, as OpenVINO reads it)."""
    suffix = Path(path).suffix.lower()
    return "engine" if suffix in ENGINE_SUFFIXES else "ir" if suffix == IR_SUFFIX else "onnx"


def check_artifact_name(path: str | Path, kind: str, option: str = "output") -> None:
    """A UserError where an output of `kind` would be taken for another kind when read back (kinds go by suffix,
    as `kind_of` tells them), before any work is done."""
    path = Path(path)
    taken_as = kind_of(path)
    if taken_as != kind:
        what, suffix = KINDS[kind]
        raise UserError(f"{path.name} would be read back as {KINDS[taken_as][0]}: name {what} "
                        f"{path.with_suffix(suffix).name} (`{option}`)")


def artifact_info(path: str | Path, variant: str | None = None, *, fallback_variant: str | None = None) -> ArtifactInfo:
    """Any artifact's metadata: an ONNX's own, a TensorRT engine's sidecar, or an OpenVINO IR's rt_info.

    `variant` (the user's) names the model of an artifact without metadata, and beside metadata may only repeat the
    model it names, never silently lose to it; `fallback_variant` names it without that check (a reference artifact
    taken as its candidate's model)."""
    path = Path(path)
    if kind_of(path) == "engine":
        return as_named(read_sidecar(path).artifact_info(), variant, path)
    read = read_ir_info if kind_of(path) == "ir" else read_info
    return read(path, variant, fallback_variant=fallback_variant)


def as_named(info: ArtifactInfo, variant: str | None, path: Path) -> ArtifactInfo:
    """`info`, read from `path`'s swin-deploy metadata, unless the user's `variant` names another model."""
    if variant is None or variant in (info.variant, info.timm_name):
        return info
    try:
        same = get_config(variant).name == info.variant
    except UserError:
        same = False
    if not same:
        raise UserError(f"{Path(path).name} is {info.variant} by its swin-deploy metadata, not {variant}: `variant` "
                        "names the model of an ONNX or IR without that metadata, so leave it out")
    return info


@dataclass
class EngineInfo:
    """The JSON written beside every engine (`model.engine.json`): what it was built from, by which TensorRT, for
    which GPU, with which profile. Read and validated here only."""

    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    profile: dict[str, list[int]]  # min/opt/max input shapes
    source_onnx_sha256: str
    swin_deploy: str
    build_seconds: float
    artifact: dict[str, str]  # the source ONNX's swin-deploy metadata
    # the engine's tensor names, the source ONNX's (TensorRT's parser keeps them): an ONNX from another exporter names
    # them as it likes; a sidecar written before these were recorded has swin-deploy's own
    inputs: list[str] = field(default_factory=lambda: ["input"])
    outputs: list[str] = field(default_factory=list)  # empty: the metadata's outputs

    @staticmethod
    def path_for(engine: Path) -> Path:
        return Path(engine).with_name(Path(engine).name + ".json")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def artifact_info(self) -> ArtifactInfo:
        """The source ONNX's metadata, with the batch limit the engine's profile sets."""
        info = ArtifactInfo.from_props(self.artifact)
        if info is None:
            raise UserError("the engine's sidecar carries no swin-deploy metadata: rebuild the engine")
        return replace(info, max_batch=self.profile["max"][0])

    def check_runtime(self, engine: Path, tensorrt_version: str, gpu: str, compute_capability: str) -> None:
        """A UserError unless this engine was built by this TensorRT for this kind of GPU (engines are not portable)."""
        if self.tensorrt != tensorrt_version or self.compute_capability != compute_capability:
            raise UserError(f"{Path(engine).name} was built with TensorRT {self.tensorrt} for {self.gpu} "
                            f"(sm {self.compute_capability}); this is TensorRT {tensorrt_version} on {gpu} "
                            f"(sm {compute_capability}): rebuild it with swin-deploy build-engine")


def read_sidecar(engine: Path) -> EngineInfo:
    """The sidecar of `engine`, or a UserError saying to rebuild (missing, unreadable, or from another schema)."""
    path = EngineInfo.path_for(engine)
    if not path.is_file():
        raise UserError(f"{engine} has no sidecar {path.name}: rebuild it with swin-deploy build-engine")
    try:
        raw = json.loads(path.read_text())
        meta = EngineInfo(**{f.name: raw[f.name] for f in fields(EngineInfo) if f.name in raw})
        if not all(k in meta.profile and len(meta.profile[k]) == 4 for k in ("min", "opt", "max")):
            raise ValueError("profile")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is unreadable ({type(e).__name__}): rebuild the engine with swin-deploy build-engine") from e
    return meta


IR_RT_INFO = "swin_deploy"  # the rt_info section of an OpenVINO IR that holds the metadata


def ir_weights(xml: Path) -> Path:
    return Path(xml).with_suffix(".bin")


def read_ir_info(xml: str | Path, variant: str | None = None, *, fallback_variant: str | None = None) -> ArtifactInfo:
    """An OpenVINO IR's metadata, read from its XML's rt_info (no OpenVINO needed): `<rt_info><swin_deploy><KEY
    value="..."/>...`, the layout `ov.Model.set_rt_info(value, ["swin_deploy", KEY])` writes. `variant` and
    `fallback_variant` as read_info takes them."""
    xml = Path(xml)
    root = ir_root(xml)
    info = ArtifactInfo.from_props(_ir_props(root))
    if info is not None:
        return as_named(info, variant, xml)
    variant = variant or fallback_variant
    if variant is None:
        raise NoMetadata(f"{xml} carries no swin-deploy metadata: pass `variant` NAME to say what model it is")
    layers = root.findall("layers/layer")
    parameter = next((layer.find("data") for layer in layers if layer.get("type") == "Parameter"), None)
    shape = (parameter.get("shape", "") if parameter is not None else "").split(",")
    dims = [int(d) if d.strip().isdigit() else None for d in shape] if shape != [""] else []
    return _foreign_info(xml, variant, dims, opset=0, precision=ir_precision(layers))


def ir_root(xml: Path):
    """The parsed XML of an OpenVINO IR (an ElementTree element), once it and its weights file are there."""
    import xml.etree.ElementTree as ET

    require_file(xml, "pass the .xml of an OpenVINO IR (swin-deploy export --format openvino)")
    if not ir_weights(xml).is_file():
        raise UserError(f"{xml.name} has no weights file {ir_weights(xml).name} beside it: copy the .bin with the .xml")
    try:
        return ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise UserError(f"{xml} is not a readable OpenVINO IR ({e}): convert it again") from e


def ir_weights_short(xml: Path) -> bool:
    """Whether an IR's .bin ends before the last weight its XML lists (a copy cut short, another model's .bin): read
    from the file sizes, as OpenVINO's words for it differ between its releases."""
    ends = (int(d.get("offset", 0)) + int(d.get("size", 0)) for layer in ir_root(xml).iterfind("layers/layer")
            if layer.get("type") == "Const" and (d := layer.find("data")) is not None)
    return max(ends, default=0) > ir_weights(xml).stat().st_size


def _ir_props(root) -> dict[str, str]:
    section = root.find(f"rt_info/{IR_RT_INFO}")
    return {} if section is None else {f"swin_deploy.{e.tag}": e.get("value", "") for e in section}


def has_metadata(path: str | Path) -> bool:
    """Whether an ONNX or IR carries swin-deploy metadata (an engine's sidecar always does, or is refused)."""
    path = Path(path)
    if kind_of(path) == "engine":
        return True
    if kind_of(path) == "ir":
        return "swin_deploy.variant" in _ir_props(ir_root(path))
    return any(p.key == "swin_deploy.variant" for p in load_onnx(path, load_weights=False).metadata_props)


def ir_precision(layers) -> Precision:
    """What a foreign IR's layers say its precision is, as graph_precision does for an ONNX: INT8 where it quantizes
    (FakeQuantize, or int8 weights as NNCF stores them), FP16 where its weights are float16 (what OpenVINO's
    converter stores by default), else FP32."""
    consts = [layer.find("data") for layer in layers if layer.get("type") == "Const"]
    types = {data.get("element_type") for data in consts if data is not None}
    if any(layer.get("type") == "FakeQuantize" for layer in layers) or types & {"i8", "u8", "i4", "u4"}:
        return Precision.INT8
    return Precision.FP16 if "f16" in types else Precision.FP32
