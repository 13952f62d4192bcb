"""The JSON written beside every engine (`model.engine.json`): what it was built from, by which TensorRT, for
which GPU, with which profile. Read and validated here only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ...artifact import ArtifactInfo
from ...errors import UserError


@dataclass
class EngineInfo:
    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    profile: dict[str, list[int]]  # min/opt/max input shapes
    source_onnx_sha256: str
    swin_deploy: str
    build_seconds: float
    artifact: dict[str, str]  # the source ONNX's swin-deploy metadata

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
        info.max_batch = self.profile["max"][0]
        return info

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
        meta = EngineInfo(**{f.name: raw[f.name] for f in fields(EngineInfo)})
        if not all(k in meta.profile and len(meta.profile[k]) == 4 for k in ("min", "opt", "max")):
            raise ValueError("profile")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is unreadable ({type(e).__name__}): rebuild the engine with swin-deploy build-engine") from e
    return meta


def engine_artifact_info(engine: Path) -> ArtifactInfo:
    return read_sidecar(engine).artifact_info()
