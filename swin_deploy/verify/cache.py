"""The reference cache: a reference's outputs for one input set, saved once and reused by later verify runs.

CI verifies every artifact of a model against the same float32 reference, and on CPU the reference is the slow
part. A cache records what it is valid for (the reference's identity and weights sha256, variant, preprocessing,
input size, the image list with file sizes and labels, or the synthetic inputs' seed and count); a cache made for
anything else is refused, never silently reused. Layout (read back with memory maps, so its size does not matter):

    MAGIC | header length (uint64) | header JSON | int64 image index[rows] | float32 outputs[rows, width]

Rows are the images the reference could read, in order; `width` is every output flattened and concatenated.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fileio import atomic_output

MAGIC = b"SWIN-DEPLOY-REFERENCE-CACHE 1\n"


class CacheWriter:
    """Collects reference outputs batch by batch in a temporary file; `commit` writes the cache atomically."""

    def __init__(self, path: Path, key: dict):
        self.path, self.key = Path(path), key
        self.shapes: dict[str, list[int]] | None = None
        self.index: list[int] = []
        self._tmp = tempfile.TemporaryFile()

    def add(self, index: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        if self.shapes is None:
            self.shapes = {k: list(v.shape[1:]) for k, v in outputs.items()}
        rows = np.concatenate([v.reshape(len(v), -1) for v in outputs.values()], axis=1).astype(np.float32)
        self._tmp.write(np.ascontiguousarray(rows).tobytes())
        self.index.extend(int(i) for i in index)

    def commit(self, described: dict | None = None) -> None:
        """`described`: the reference runner's description (its runtime, what it computed in), for the reports of
        runs that read the cache instead of running it."""
        header = json.dumps({"key": self.key, "outputs": self.shapes or {}, "rows": len(self.index),
                             "described": described or {}}).encode()
        self._tmp.seek(0)
        with atomic_output(self.path) as tmp, open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<Q", len(header)) + header)
            f.write(np.asarray(self.index, dtype=np.int64).tobytes())
            shutil.copyfileobj(self._tmp, f, 1 << 20)
        self._tmp.close()

    def discard(self) -> None:
        self._tmp.close()


class CacheReader:
    """A cache's rows by image index, checked against the key of the run that wants to use it."""

    def __init__(self, path: Path, key: dict):
        path = Path(path)
        try:
            with open(path, "rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    raise ValueError("not a reference cache")
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size))
            offset = len(MAGIC) + 8 + size
            rows = int(header["rows"])
            self.shapes = {k: tuple(v) for k, v in header["outputs"].items()}
            width = sum(int(np.prod(s)) for s in self.shapes.values())
            index = np.memmap(path, np.int64, "r", offset, (rows,)) if rows else np.zeros(0, np.int64)
            self.data = np.memmap(path, np.float32, "r", offset + 8 * rows, (rows, width)) if rows else None
        except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
            raise UserError(f"{path} is not a swin-deploy reference cache ({type(e).__name__}): delete it, or pass "
                            "another `reference_cache`") from e
        for field, wanted in key.items():
            if header["key"].get(field) != wanted:
                raise UserError(f"reference cache {path} was made for another {field.replace('_', ' ')}: delete it to "
                                "build it again, or pass another `reference_cache`")
        self.row_of = {int(i): r for r, i in enumerate(index)}
        self.described: dict = header.get("described") or {}  # the reference as it ran when the cache was written

    def outputs(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The reference outputs of these images (by position in the image list), as the runner gave them."""
        try:
            rows = self.data[[self.row_of[int(i)] for i in index]]
        except (KeyError, TypeError):
            raise UserError("the reference cache lacks an image this run read (a file changed?): delete the cache") from None
        out, start = {}, 0
        for name, shape in self.shapes.items():
            width = int(np.prod(shape))
            out[name] = np.array(rows[:, start:start + width]).reshape(len(rows), *shape)
            start += width
        return out
