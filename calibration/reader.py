"""Calibration images as an onnxruntime CalibrationDataReader."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from swin_deploy.artifact import ArtifactInfo
from swin_deploy.data import ImageSet, stream_batches, transform_for
from swin_deploy.errors import UserError


class ImageReader(CalibrationDataReader):
    """Feeds preprocessed batches of the calibration images; counts unreadable files.

    A static-batch model takes only its own batch size: that replaces `batch_size`, and images left over
    after the last full batch are not used (`used` counts the ones that were).
    """

    def __init__(self, images: ImageSet, info: ArtifactInfo, batch_size: int,
                 on_batch: Callable[[int], None] = lambda n: None, img_size: tuple[int, int] | None = None,
                 workers: int | None = None, input_name: str = "input"):
        """`img_size` (a dynamic-size model only) calibrates at another size than the model's default;
        `workers` decode images in parallel (default: by the machine); `input_name`: the graph's input."""
        self.fixed = info.fixed_batch
        self.images, self.batch_size, self.on_batch = images, self.fixed or batch_size, on_batch
        self.transform = transform_for(info, img_size)
        self.workers, self.input_name = workers, input_name
        self.used = 0
        self._it = None

    def batches(self):
        for batch in stream_batches(self.images, self.transform, self.batch_size, self.workers):
            x = batch.x
            if self.fixed and len(x) < self.fixed:
                break
            self.used += len(x)
            self.on_batch(len(x))
            yield x
        if self.used == 0:
            if self.fixed and len(self.images) - self.images.skipped > 0:
                raise UserError(f"this model has a static batch of {self.fixed}: give it at least {self.fixed} "
                                "readable calibration images (`calib_images`)")
            raise self.images.none_readable("calibration images")

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self.batches()
        x = next(self._it, None)
        return None if x is None else {self.input_name: x}
