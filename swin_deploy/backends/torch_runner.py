"""The PyTorch reference: the native model (or any nn.Module, e.g. timm's) in float32 eval."""

from __future__ import annotations

import numpy as np
import torch

from .base import Runner


class TorchRunner(Runner):
    def __init__(self, model: torch.nn.Module, name: str = "pytorch", threads: int | None = None):
        super().__init__()
        self.model, self.name, self.threads = model, name, threads

    def _activate(self) -> None:
        self.model.eval()
        if self.threads:
            torch.set_num_threads(self.threads)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).float().numpy()

    def describe(self) -> dict:
        return {"backend": self.name, "torch": torch.__version__, "threads": torch.get_num_threads()}
