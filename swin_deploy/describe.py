"""What an artifact is, for `swin-deploy inspect`: its model, precision, input and outputs, how it was made, and what
identifies it, read from the artifact alone (its metadata; no runtime, no GPU for an engine).

An ONNX or IR another tool wrote has no swin-deploy metadata: what its graph says (inputs, outputs, opset, the
precision its operators and weights show) is described instead, or the registry's view of `variant` where given.
"""

from __future__ import annotations

from pathlib import Path

from .artifact import (
    KINDS,
    ArtifactInfo,
    EngineInfo,
    artifact_files,
    artifact_info,
    graph_precision,
    has_metadata,
    ir_precision,
    ir_root,
    kind_of,
    load_onnx,
    read_sidecar,
)
from .errors import require_file
from .fileio import sha256_files
from .precision.graph import opset_of
from .predict import class_names

SHOWN_LABELS = 5  # class names listed before "..."


def classes_of(info: ArtifactInfo) -> str:
    """The class count and the names predict and Triton will show, with where they come from."""
    names, source = class_names(info)
    if source == "indices":
        return f"{info.num_classes} (no names recorded: predict and Triton show indices)"
    # timm's ImageNet descriptions hold commas ("tench, Tinca tinca"): ';' keeps one class from reading as two
    sep = ", " if source == "metadata" else "; "
    shown = sep.join(names[:SHOWN_LABELS]) + (f"{sep}..." if len(names) > SHOWN_LABELS else "")
    return f"{info.num_classes}: {shown}" + ("" if source == "metadata" else f" (names from {source})")


def describe_artifact(path: str | Path, variant: str | None = None) -> dict:
    """The description of the artifact at `path` as a JSON-ready dict, in the order a person reads it: what it is
    (kind, files, model, precision), what it takes and gives (input, sizes, batch, outputs, classes, preprocessing),
    and its provenance (swin-deploy version, hashes; an engine's TensorRT build)."""
    path = Path(path)
    kind = kind_of(path)
    if kind == "engine":
        require_file(path, "pass the path of a TensorRT engine (swin-deploy build-engine writes one)")
    described = has_metadata(path)  # also the checks that the artifact is there and whole
    files = artifact_files(path)
    doc: dict = {"artifact": str(path), "kind": KINDS[kind][0].split(" ", 1)[1], "files": [f.name for f in files],
                 "bytes": sum(f.stat().st_size for f in files)}
    info = artifact_info(path, variant) if described or variant is not None else None
    if info is None:
        doc.update(_foreign(path, kind))
    else:
        doc.update(_described(info, kind))
        if not described:
            doc["metadata"] = f"none: described as {variant} (`variant`), as verify, bench and predict will take it"
    sidecar = read_sidecar(path) if kind == "engine" else None
    doc["runs_on"] = _runtimes(kind, info, sidecar)
    doc["sha256"] = sha256_files(files)
    if sidecar is not None:
        doc["engine"] = {"sidecar": EngineInfo.path_for(path).name, "tensorrt": sidecar.tensorrt, "gpu": sidecar.gpu,
                         "compute_capability": sidecar.compute_capability, "profile": sidecar.profile,
                         "built_by": f"swin-deploy {sidecar.swin_deploy}", "source_onnx_sha256": sidecar.source_onnx_sha256}
    return doc


def _runtimes(kind: str, info: ArtifactInfo | None, sidecar: EngineInfo | None) -> list[str]:
    """Where the artifact runs: an IR on OpenVINO, an engine on the TensorRT and GPU kind it was built for, an ONNX on
    onnxruntime and OpenVINO, and on TensorRT through build-engine unless it is INT8 made for onnxruntime."""
    if kind == "ir":
        return ["openvino"]
    if sidecar is not None:
        return [f"tensorrt {sidecar.tensorrt} on {sidecar.gpu} (sm {sidecar.compute_capability})"]
    ort_only = info is not None and info.onnxruntime_only
    return ["onnxruntime", "openvino", *([] if ort_only else ["tensorrt (build-engine)"])]


def _described(info: ArtifactInfo, kind: str) -> dict:
    doc: dict = {"metadata": f"swin-deploy {info.version}",
                 "model": info.variant + (f" ({info.timm_name})" if info.timm_name else ""),
                 "precision": str(info.precision)}
    if info.int8_target is not None:
        doc["int8_target"] = str(info.int8_target)
    if info.calib_method is not None:
        doc["calibration"] = str(info.calib_method)
    if info.details:
        doc["precision_details"] = dict(info.details)
    layout = "NHWC" if info.channels_last else "NCHW"
    dtype = "uint8 pixels (normalisation in the graph)" if info.pixels else "float32, normalised"
    shape = info.input_shape(1)
    h, w = ("H", "W") if info.dynamic_size else info.img_size
    b = str(info.fixed_batch) if info.fixed_batch else "B"
    dims = [b, h, w, shape[3]] if info.channels_last else [b, shape[1], h, w]
    doc["input"] = f"({', '.join(map(str, dims))}) {layout}, {dtype}"
    if info.dynamic_size:
        lo_h, lo_w, hi_h, hi_w = info.dynamic_size
        doc["input_sizes"] = (f"{lo_h}x{lo_w} to {hi_h}x{hi_w}, multiples of {info.config().stride} (default "
                              f"{info.img_size[0]}x{info.img_size[1]})")
    else:
        doc["input_sizes"] = f"{info.img_size[0]}x{info.img_size[1]}"
    doc["batch"] = (f"{info.fixed_batch} only (static)" if info.fixed_batch else
                    f"1 to {info.max_batch}" if info.max_batch else "any (dynamic)")
    doc["outputs"] = {name: "(" + ", ".join([b, *("H/W" if d == -1 else str(d) for d in dims)]) + ")"
                      for name, dims in info.output_dims().items()}
    if not info.headless:
        doc["classes"] = classes_of(info)
    doc["preprocessing"] = info.preprocessing
    if kind == "onnx":  # an IR or engine records its source ONNX's, which says nothing of it
        doc["opset"] = info.opset
    doc["weights_sha256"] = info.weights_sha256 or None
    if info.source_sha256:
        doc["source_sha256"] = info.source_sha256
    return doc


def _foreign(path: Path, kind: str) -> dict:
    """What an ONNX or IR without swin-deploy metadata says of itself: its inputs and outputs, the precision its
    operators and weights show, its opset and producer."""
    doc: dict = {"metadata": "none: pass `variant` NAME to run it (verify, bench, predict and triton take it as that "
                 "model)"}
    if kind == "ir":
        layers = ir_root(path).findall("layers/layer")
        shapes = {layer.get("name"): "(" + ", ".join((layer.find("data").get("shape") or "").split(",")) + ")"
                  for layer in layers if layer.get("type") == "Parameter" and layer.find("data") is not None}
        return {**doc, "precision": str(ir_precision(layers)), "inputs": shapes}
    model = load_onnx(path, load_weights=False)

    def shape(value) -> str:
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim]
        return "(" + ", ".join(map(str, dims)) + ")"

    initializers = {i.name for i in model.graph.initializer}
    return {**doc, "precision": str(graph_precision(model)),
            "inputs": {i.name: shape(i) for i in model.graph.input if i.name not in initializers},
            "outputs": {o.name: shape(o) for o in model.graph.output}, "opset": opset_of(model),
            "producer": " ".join(filter(None, [model.producer_name, model.producer_version])) or None}
