"""Images from disk, preprocessed exactly as an artifact's metadata says (timm.data transforms), streamed.

Label layouts:
  * ImageFolder: one subfolder per class, labels by sorted folder order (as torchvision's ImageFolder), or by
    name where the folders are named after the model's classes (its id2label);
    ImageNet synset folders (n01440764, ...) map to timm's ImageNet-1k class indices instead (offline:
    timm ships the synset list);
  * flat: a folder of images, unlabelled, or labelled by a CSV file `filename,label` (label an index, a synset or
    a class name).
`stream_batches` decodes with a small pool of workers and holds a bounded number of batches in flight, so
memory does not grow with the number of images; unreadable files are skipped and counted (or, strict, refused).
"""

from __future__ import annotations

import csv
import os
import random
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import defaults
from .errors import UserError, require_at_least, require_file
from .fileio import path_list
from .machine import usable_cpus

# torchvision ImageFolder's suffixes, and what browsers and phones also save (GIF: its first frame, JFIF, AVIF)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".webp", ".avif", ".gif", ".tif", ".tiff", ".ppm", ".pgm",
                  ".pbm", ".pnm", ".npy"}
ARRAY_SUFFIX = ".npy"  # an input array as the artifact takes it, already preprocessed (any channel count)
IMAGE_MODES = {1: "L", 3: "RGB"}  # how an image file is read for a model with this many input channels
SYNSET = re.compile(r"^n\d{8}$")
ORIENTATION = 0x0112  # the EXIF tag saying how to turn the stored pixels upright
SKIPPED_EXAMPLES = 5  # unreadable paths a report lists by name


@dataclass(frozen=True)
class Unreadable:
    """Why a file was not read, and what to do about it."""
    reason: str = "not a readable image"
    fix: str = "remove it"

    def __str__(self) -> str:  # as a skipped file is listed: the fix only where it is not the obvious one
        return self.reason if self == UNREADABLE else f"{self.reason}: {self.fix}"


UNREADABLE = Unreadable()
EMPTY = Unreadable("empty (0 bytes)", "copy it again, or remove it")  # a copy or download that never finished


def default_workers() -> int:
    """Decode workers: the machine's cores, at most 8 (decoding overlaps inference, which wants cores too)."""
    return max(1, min(8, os.cpu_count() or 1))


def checked_workers(workers: int | None) -> int:
    """`workers` as given (None: default_workers()), refused unless at least 1 and at most a few per CPU (decoding
    may wait on storage, so more than the CPUs can help; a slip like 100000 would start a thread per image)."""
    require_at_least("workers", workers, 1)
    top = defaults.WORKERS_PER_CPU * len(usable_cpus())
    if workers is not None and workers > top:
        raise UserError(f"`workers` {workers} is more than {defaults.WORKERS_PER_CPU} per CPU this process may use: "
                        f"pass at most {top}")
    return default_workers() if workers is None else workers


@dataclass
class ImageSet:
    files: list[Path]
    labels: list[int] | None  # None when unlabelled
    classes: list[str] = field(default_factory=list)
    skipped: int = 0  # unreadable files met while streaming
    skipped_paths: list[Path] = field(default_factory=list)  # all of them (reports list the first few)
    skip_reasons: dict[Path, Unreadable] = field(default_factory=dict)  # why, where it is not UNREADABLE
    label_source: str = "none"  # "folders", "folder indices", "class names", "imagenet synsets", "labels file", "none"
    unlabelled: int = 0  # images beside a labels file's that it does not name (left out of the set)

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, limit: int, seed: int) -> ImageSet:
        """`limit` of the images, drawn by `seed`, in their listed order; all of them where there are no more."""
        if limit >= len(self.files):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self.files)), limit))
        return replace(self, files=[self.files[i] for i in keep],
                       labels=None if self.labels is None else [self.labels[i] for i in keep])

    def skip(self, path: Path, why: Unreadable = UNREADABLE) -> None:
        self.skipped += 1
        self.skipped_paths.append(path)
        if why != UNREADABLE:
            self.skip_reasons[path] = why

    def skips(self, limit: int | None = None) -> list[tuple[Path, Unreadable]]:
        """The skipped files (the first `limit`), each with why."""
        return [(p, self.skip_reasons.get(p, UNREADABLE)) for p in self.skipped_paths[:limit]]

    def skipped_examples(self) -> list[str]:
        """The first few skipped files as a report lists them: the path, and why where it is not the usual."""
        return [str(p) if why == UNREADABLE else f"{p} ({why})" for p, why in self.skips(SKIPPED_EXAMPLES)]

    def none_readable(self, what: str = "images") -> UserError:
        """The error for a set of which not one file could be read: how many, and the first one with why."""
        if len(self) == 1 and self.skipped_paths:
            (path, why), = self.skips(1)
            return UserError(f"the {what.removesuffix('s')} {path} could not be read ({why}): point it at a readable "
                             "image file")
        first = "".join(f" ({path}: {why})" for path, why in self.skips(1))
        return UserError(f"none of the {len(self)} {what} could be read{first}: point it at readable image files")


def _imagenet_synsets() -> dict[str, int]:
    from timm.data import ImageNetInfo

    return {name: i for i, name in enumerate(ImageNetInfo("imagenet-1k").label_names())}


def _label(text: str, synsets: Callable[[], dict[str, int]], num_classes: int | None, where: str,
           class_names: tuple[str, ...] | None = None) -> int:
    text = text.strip()
    if SYNSET.match(text):
        if text not in synsets():
            raise UserError(f"{where}: '{text}' is not an ImageNet-1k synset")
        return synsets()[text]
    if class_names and text in class_names:
        return _class_index(text, class_names, where)
    try:
        value = int(text)
    except ValueError:
        kinds = "a class index, one of the model's class names" if class_names else "a class index"
        raise UserError(f"{where}: label '{text}' is neither {kinds} nor an ImageNet synset") from None
    if value < 0 or (num_classes is not None and value >= num_classes):
        raise UserError(f"{where}: class index {value} is outside the model's {num_classes} classes")
    return value


def list_images(folder: str | Path, limit: int | None = None, seed: int = 0, labels_file: str | Path | None = None,
                num_classes: int | None = None, class_names: tuple[str, ...] | None = None) -> ImageSet:
    """The images under `folder` with their labels (see the module doc); `limit` samples that many
    deterministically (by `seed`). `num_classes` (the model's) checks that the labels can mean its classes;
    `class_names` (the model's, where it has them) map folders and labels named after them."""
    require_at_least("limit", limit, 1)
    folder = Path(folder)
    if not folder.is_dir():
        state = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UserError(f"image folder {folder} {state}: pass a folder of images (ImageFolder layout or flat)")
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    synset_table: dict[str, int] = {}

    def synsets() -> dict[str, int]:
        if not synset_table:
            synset_table.update(_imagenet_synsets())
        return synset_table

    classes: list[str] = []
    labels: list[int] | None = None
    source, unlabelled = "none", 0
    if labels_file is not None:
        if subdirs:
            raise UserError(f"`labels` goes with a flat folder of images; {folder} has class folders")
        files, labels = _read_labels_file(Path(labels_file), folder, synsets, num_classes, class_names)
        source = "labels file"
        named = {f.resolve() for f in files}
        unlabelled = sum(f.resolve() not in named for f in _images_under(folder) if f.parent == folder)
    elif subdirs:
        classes = [d.name for d in subdirs]
        if any(SYNSET.match(c) for c in classes):
            if num_classes is not None and num_classes != 1000:
                raise UserError(f"{folder} has ImageNet synset folders but the model has {num_classes} classes, not 1000")
            unmapped = next((c for c in classes if c not in synsets()), None)
            if unmapped is not None:
                raise UserError(f"class folder '{unmapped}' in {folder} is not an ImageNet-1k synset: use class folders "
                                "in the model's class order, or a flat folder with `labels`")
            index = {c: synsets()[c] for c in classes}
            source = "imagenet synsets"
        elif (named := _by_class_name(classes, class_names, folder)) is not None:
            index, source = named, "class names"
        elif num_classes is not None and len(classes) > num_classes:
            raise UserError(f"{folder} has {len(classes)} class folders but the model has {num_classes} classes")
        elif num_classes is not None and len(classes) < num_classes:
            # ImageFolder's sorted order numbers a model's classes only when every class has its folder; a subset's
            # folders are class indices or nothing
            if not all(c.isdigit() and int(c) < num_classes for c in classes):
                names = " or the model's class names" if class_names else ""
                raise UserError(f"{folder} has {len(classes)} class folders for the model's {num_classes} classes, so "
                                "their sorted order cannot say which classes they are: name each folder after its class "
                                f"index{names}, or use a flat folder with `labels`")
            index, source = {c: int(c) for c in classes}, "folder indices"
        else:
            index = {c: i for i, c in enumerate(classes)}
            source = "folders"
        pairs = [(f, index[d.name]) for d in subdirs for f in _images_under(d)]
        files, labels = [p[0] for p in pairs], [p[1] for p in pairs]
    else:
        files = [f for f in _images_under(folder) if f.parent == folder]
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {folder}")
    images = ImageSet(files, labels, classes, label_source=source, unlabelled=unlabelled)
    return images if limit is None else images.sample(limit, seed)


def _by_class_name(folders: list[str], class_names: tuple[str, ...] | None, where: Path) -> dict[str, int] | None:
    """Folders named after the model's classes, mapped by name: a fine-tune's id2label need not be in sorted order,
    which ImageFolder's indices are. None where no folder is a class name (then: sorted order)."""
    if not class_names or not any(f in class_names for f in folders):
        return None
    stray = next((f for f in folders if f not in class_names), None)
    if stray is not None:
        shown = ", ".join(class_names[:4]) + (", ..." if len(class_names) > 4 else "")
        raise UserError(f"class folder '{stray}' in {where} is not one of the model's classes ({shown}) where others "
                        "are: name every folder after a class, or use a flat folder with `labels`")
    return {f: _class_index(f, class_names, f"class folder {where / f}",
                            "use a flat folder with `labels` giving class indices") for f in folders}


def _class_index(name: str, class_names: tuple[str, ...], where: str,
                 fix: str = "label these images by class index") -> int:
    """The index of the class called `name`, refused where two classes share it (ImageNet's two "crane"s and
    "maillot"s in the usual class-name lists): the first was taken silently."""
    found = [i for i, n in enumerate(class_names) if n == name]
    if len(found) > 1:
        raise UserError(f"{where}: '{name}' names classes {found[0]} and {found[1]}: {fix}")
    return found[0]


def _images_under(folder: Path) -> list[Path]:
    """The image files in `folder` and its subfolders, sorted, leaving out hidden ones: macOS's `._name.jpg` resource
    forks and Jupyter's `.ipynb_checkpoints` copies are not images of the set (they were read as unreadable images or
    as duplicates)."""
    return sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
                  and not any(part.startswith(".") for part in f.relative_to(folder).parts))


def image_files(paths: list[str | Path] | str | Path) -> list[Path]:
    """Image files named directly or found (recursively, sorted) in the folders named (one path, or a list)."""
    paths = path_list(paths)
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += _images_under(p)
        elif p.is_file():
            found.append(p)
        else:
            raise UserError(f"{p} does not exist: pass image files or folders of images")
    if not found:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {', '.join(map(str, paths))}")
    return found


# the column names a labels file's header row gives (as tools and datasets spell them, Kaggle's ImageNet
# LOC_val_solution.csv among them); a first row so named that is no file is the header
FILENAME_HEADERS = ("filename", "file", "file_name", "path", "image", "image_path", "imageid", "image_id")
LABEL_HEADERS = ("label", "labels", "class", "class_id", "class_name", "target", "category", "predictionstring")


def _labelled_file(folder: Path, name: str) -> Path:
    """`name` in `folder`, or the image whose name is `name` and an image suffix (Kaggle's ImageNet ids have none)."""
    exact = folder / name
    if exact.is_file() or exact.suffix:
        return exact
    return next((folder / f"{name}{ext}" for ext in (".JPEG", ".jpg", ".jpeg", ".png", ".JPG", ".PNG")
                 if (folder / f"{name}{ext}").is_file()), exact)


def _label_text(field: str) -> str:
    """A label field's label: its first word where that is a synset (Kaggle's ImageNet PredictionString holds the
    synset followed by its boxes), else the field (a class name may hold spaces)."""
    words = field.split()
    return words[0] if len(words) > 1 and SYNSET.match(words[0]) else field


def _read_labels_file(path: Path, folder: Path, synsets, num_classes: int | None,
                      class_names: tuple[str, ...] | None = None) -> tuple[list[Path], list[int]]:
    """CSV `filename,label` (a header row is allowed; tab- or semicolon-separated as a spreadsheet may save it);
    filenames relative to `folder`, with or without their suffix. Kaggle's ImageNet `LOC_val_solution.csv`
    (ImageId,PredictionString) reads as it is."""
    require_file(path, "pass a CSV of filename,label", what="labels file")
    files, labels = [], []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"labels file {path} is not UTF-8 text: save it as UTF-8 (or plain ASCII)") from None
    first = next((line for line in lines if line.strip() and not line.startswith("#")), "")
    delimiter = next((d for d in (",", "\t", ";") if d in first), ",")  # the first data line's, comma first
    for n, row in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        if not row or not "".join(row).strip() or row[0].startswith("#"):
            continue
        if len(row) < 2:
            raise UserError(f"{path.name} line {n}: expected filename,label (or tab- or semicolon-separated), "
                            f"not '{lines[n - 1].strip()}'")
        image = _labelled_file(folder, row[0].strip())
        named = row[0].strip().lower() in FILENAME_HEADERS or row[1].strip().lower() in LABEL_HEADERS
        if n == 1 and named and not image.is_file():
            continue
        if not image.is_file():
            raise UserError(f"{path.name} line {n}: {image} does not exist: correct the line or drop it")
        files.append(image)
        labels.append(_label(_label_text(row[1]), synsets, num_classes, f"{path.name} line {n}", class_names))
    if not files:  # else "no images found in FOLDER", of a folder that may hold thousands
        raise UserError(f"labels file {path} names no images: give one filename,label line per image")
    return files, labels


def preprocess_fn(img_size: tuple[int, int], mean, std, interpolation: str, crop_pct: float, crop_mode: str = "center"):
    """timm's eval transform: resize to size / crop_pct (the short side, or both sides for crop_mode "squash"),
    center crop, to tensor, normalize."""
    from timm.data import create_transform

    return create_transform(input_size=(len(mean), *img_size), is_training=False, interpolation=interpolation,
                            mean=tuple(mean), std=tuple(std), crop_pct=crop_pct, crop_mode=crop_mode)


class PixelTransform:
    """timm's eval transform up to the crop, then the uint8 pixels as an array: (3, H, W), or (H, W, 3) for
    channels_last. What a raw-pixel artifact takes (its normalisation is in the graph)."""

    def __init__(self, float_transform, channels_last: bool):
        from timm.data.transforms import MaybeToTensor, ToNumpy
        from torchvision.transforms import Normalize, ToTensor

        # timm has no "resize and crop only" eval transform, so its own one is cut before the tensor conversion
        # (same resize, interpolation and crop as the float path)
        tail = (MaybeToTensor, ToTensor, ToNumpy, Normalize)
        self.steps = [t for t in float_transform.transforms if not isinstance(t, tail)]
        self.channels_last = channels_last

    def __call__(self, img) -> np.ndarray:
        for step in self.steps:
            img = step(img)
        x = np.asarray(img, dtype=np.uint8)
        x = x[..., None] if x.ndim == 2 else x  # a grayscale image has no channel axis
        return x if self.channels_last else np.ascontiguousarray(x.transpose(2, 0, 1))


def _eight_bit(im):
    """A 16-bit grayscale image (PNG, TIFF: modes I;16*) scaled to 8 bits. PIL's convert() clips it instead, so all
    but the darkest pixels read as white (timm's and torchvision's loaders do the same)."""
    if not im.mode.startswith("I;16"):
        return im
    from PIL import Image

    x = np.asarray(im).astype(np.float32)
    return Image.fromarray(np.round(x / 257).astype(np.uint8), mode="L")


def _upright(im):
    """The image as viewers show it: a camera's EXIF orientation applied (phones store pixels as the sensor read them and
    say how to turn them), as transformers' `load_image` does; timm's and torchvision's loaders do not, and a sideways
    photo is a different input to a classifier. Images without the tag pass through uncopied."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(im) if im.getexif().get(ORIENTATION, 1) != 1 else im


class InputTransform:
    """An image file read in the model's mode (L for 1 channel, RGB for 3) and preprocessed, or a .npy array taken as
    the input itself (checked against the shape the artifact takes): models with other channel counts read only those."""

    def __init__(self, image_transform, in_chans: int, shape: tuple[int, ...], dtype):
        self.image_transform, self.mode = image_transform, IMAGE_MODES.get(in_chans)
        self.in_chans, self.shape, self.dtype = in_chans, tuple(shape), dtype

    def image(self, im) -> np.ndarray:
        if self.mode is None:
            raise UserError(f"a {self.in_chans}-channel model reads no image files: give .npy arrays of shape "
                            f"{self.shape} (preprocessed inputs), or no `data` for synthetic inputs")
        x = self.image_transform(_eight_bit(_upright(im)).convert(self.mode))
        return x if isinstance(x, np.ndarray) else x.numpy()

    def array(self, path: Path) -> np.ndarray:
        x = np.load(path, allow_pickle=False)
        if tuple(x.shape) != self.shape:
            raise UserError(f"{path.name} holds an array of shape {tuple(x.shape)}; this artifact takes {self.shape} "
                            "per input")
        return np.ascontiguousarray(x, dtype=self.dtype)


def transform_for(info, img_size: tuple[int, int] | None = None) -> InputTransform:
    """The preprocessing an artifact's metadata (`ArtifactInfo`) asks for, at `img_size` (default its own):
    an image -> float32 (C, H, W) normalised, or uint8 pixels for a raw-pixel artifact; a .npy array as it is."""
    size = tuple(img_size or info.img_size)
    transform = preprocess_fn(size, info.mean, info.std, info.interpolation, info.crop_pct, info.crop_mode)
    transform = PixelTransform(transform, info.channels_last) if info.pixels else transform
    return InputTransform(transform, info.in_chans, info.input_shape(1, size)[1:],
                          np.uint8 if info.pixels else np.float32)


@dataclass
class Batch:
    x: np.ndarray  # (n, C, H, W) float32, or the uint8 pixels a raw-pixel artifact takes
    labels: np.ndarray | None
    index: np.ndarray  # positions of these images in ImageSet.files


def _decode(path: Path, transform: InputTransform) -> np.ndarray | Unreadable:
    """The input of one file, or why it cannot be read (a file the model cannot take at all is a UserError)."""
    from PIL import Image

    try:
        if path.suffix.lower() == ARRAY_SUFFIX:
            return transform.array(path)
        with Image.open(path) as im:
            return transform.image(im)
    except UserError:
        raise
    except Image.DecompressionBombError:
        # PIL's guard against malicious files (its limit, not ours): the image is whole, only too large to decode
        limit = 2 * Image.MAX_IMAGE_PIXELS / 1e6
        return Unreadable(f"more than {limit:.3g} megapixels, PIL's decompression-bomb limit", "downscale it")
    except Exception:  # PIL and numpy raise many types for truncated or foreign files
        return EMPTY if _is_empty(path) else UNREADABLE


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def stream_batches(images: ImageSet, transform, batch_size: int, workers: int | None = None,
                   strict: bool = False) -> Iterator[Batch]:
    """Preprocessed batches in file order, decoded by `workers` threads with at most ~2 batches in flight.

    An unreadable file is skipped and counted in `images` (strict: a UserError naming it)."""
    workers = checked_workers(workers)
    window = max(2 * batch_size, 2 * workers)  # decodes in flight: bounds memory whatever the number of images
    xs, ys, idx = [], [], []
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        files = iter(enumerate(images.files))
        for i, path in files:
            pending.append((i, path, pool.submit(_decode, path, transform)))
            if len(pending) < window:
                continue
            yield from _drain(images, pending, 1, batch_size, strict, xs, ys, idx)
        yield from _drain(images, pending, len(pending), batch_size, strict, xs, ys, idx)
    if xs:
        yield _batch(images, xs, ys, idx)


def _drain(images: ImageSet, pending: deque, count: int, batch_size: int, strict: bool, xs, ys, idx) -> Iterator[Batch]:
    for _ in range(count):
        i, path, future = pending.popleft()
        x = future.result()
        if isinstance(x, Unreadable):
            if strict:
                raise UserError(f"{path} is {x.reason}: {x.fix}, or drop `strict` to skip unreadable files")
            images.skip(path, x)
            continue
        xs.append(x)
        idx.append(i)
        if images.labels is not None:
            ys.append(images.labels[i])
        if len(xs) == batch_size:
            yield _batch(images, xs, ys, idx)


def _batch(images: ImageSet, xs: list, ys: list, idx: list) -> Batch:
    batch = Batch(np.stack(xs), np.array(ys) if images.labels is not None else None, np.array(idx))
    xs.clear()
    ys.clear()
    idx.clear()
    return batch


def load_all(images: ImageSet, transform, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray | None]:
    """Every image in memory at once: for small sets only (demo training); verify and calibration stream."""
    parts = list(stream_batches(images, transform, batch_size))
    if not parts:
        raise images.none_readable()
    labels = np.concatenate([p.labels for p in parts]) if images.labels is not None else None
    return np.concatenate([p.x for p in parts]), labels
