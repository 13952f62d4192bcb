"""Real labelled images for the demo models: scikit-learn's handwritten digits written as image files.

1,797 8x8 grey-level scans (UCI optdigits, shipped inside scikit-learn) upscaled to 32x32 RGB PNGs,
in ImageFolder layout, split deterministically (stratified) into calib/ and a held-out val/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import missing_package
from .fileio import atomic_directory, make_folder

IMAGE_SIZE = 32
VAL_FRACTION = 0.2


def write_digits(folder: str | Path, seed: int = 0) -> dict[str, int]:
    """Write calib/<digit>/*.png and val/<digit>/*.png; returns the image count per split. Each split folder is
    written whole or not at all (an interrupted run leaves the previous one, or none), and replaces the one before."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise missing_package("scikit-learn", "demo") from e
    from PIL import Image

    digits = load_digits()
    rng = np.random.default_rng(seed)
    folder = make_folder(folder)
    splits: dict[str, list[tuple[int, np.ndarray]]] = {"calib": [], "val": []}
    for label in range(10):
        idx = np.flatnonzero(digits.target == label)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * VAL_FRACTION))
        splits["val"].append((label, idx[:n_val]))
        splits["calib"].append((label, idx[n_val:]))
    for split, parts in splits.items():
        with atomic_directory(folder / split) as staging:
            for label, part in parts:
                out = staging / str(label)
                out.mkdir()
                for i in part:
                    pixels = (digits.images[i] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
                    img = Image.fromarray(pixels, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
                    img.convert("RGB").save(out / f"{i:04d}.png")
    return {split: sum(len(part) for _, part in parts) for split, parts in splits.items()}
