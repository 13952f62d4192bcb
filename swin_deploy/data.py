"""Images from disk, preprocessed exactly as an artifact's metadata says (timm.data transforms).

A folder is either ImageFolder layout (one subfolder per class: labels from the subfolder names, in
sorted order, as torchvision's ImageFolder) or flat (no labels).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}


@dataclass
class ImageSet:
    files: list[Path]
    labels: list[int] | None  # None for a flat folder
    classes: list[str] = field(default_factory=list)
    skipped: int = 0  # unreadable files met while loading

    def __len__(self) -> int:
        return len(self.files)


def list_images(folder: str | Path, limit: int | None = None, seed: int = 0) -> ImageSet:
    """The images under `folder`; `limit` samples that many deterministically (by `seed`)."""
    if limit is not None and limit < 1:
        raise UserError(f"the image limit must be at least 1, not {limit}")
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder {folder} does not exist: pass a folder of images (ImageFolder layout or flat)")
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    files: list[Path]
    labels: list[int] | None
    if subdirs:
        classes = [d.name for d in subdirs]
        pairs = [(f, i) for i, d in enumerate(subdirs) for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
        files, labels = [p[0] for p in pairs], [p[1] for p in pairs]
    else:
        classes = []
        files, labels = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES), None
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {folder}")
    if limit is not None and limit < len(files):
        keep = sorted(random.Random(seed).sample(range(len(files)), limit))
        files = [files[i] for i in keep]
        labels = [labels[i] for i in keep] if labels is not None else None
    return ImageSet(files, labels, classes)


def preprocess_fn(img_size: tuple[int, int], mean, std, interpolation: str, crop_pct: float):
    """timm's eval transform: resize to size / crop_pct, center crop, to tensor, normalize."""
    from timm.data import create_transform

    return create_transform(input_size=(3, *img_size), is_training=False, interpolation=interpolation,
                            mean=tuple(mean), std=tuple(std), crop_pct=crop_pct, crop_mode="center")


def iter_batches(images: ImageSet, transform, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(float32 NCHW batch, labels or None); unreadable files are skipped and counted in images.skipped."""
    from PIL import Image

    xs, ys = [], []
    for i, path in enumerate(images.files):
        try:
            with Image.open(path) as im:
                x = transform(im.convert("RGB")).numpy()
        except Exception:  # PIL raises many types for truncated or foreign files
            images.skipped += 1
            continue
        xs.append(x)
        if images.labels is not None:
            ys.append(images.labels[i])
        if len(xs) == batch_size:
            yield np.stack(xs), (np.array(ys) if images.labels is not None else None)
            xs, ys = [], []
    if xs:
        yield np.stack(xs), (np.array(ys) if images.labels is not None else None)


def load_all(images: ImageSet, transform, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    xs, ys = [], []
    for x, y in iter_batches(images, transform, batch_size):
        xs.append(x)
        if y is not None:
            ys.append(y)
    if not xs:
        raise UserError(f"none of the {len(images)} images could be read")
    return np.concatenate(xs), (np.concatenate(ys) if ys else None)
