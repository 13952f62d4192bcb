"""The PyTorch reference: the native model (or any nn.Module, e.g. timm's) in float32 eval.

A module returning a tuple (stage feature maps) is named by `output_names`. The runner leaves torch's
process-wide thread count alone: that is the application's to set (the command line's --threads).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Runner


class TorchRunner(Runner):
    def __init__(self, model: torch.nn.Module, name: str = "pytorch", output_names: tuple[str, ...] = ("logits",)):
        super().__init__()
        self.model, self.name, self.output_names = model, name, tuple(output_names)

    def _activate(self) -> None:
        self.model.eval()

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x))
        outs = out if isinstance(out, tuple | list) else (out,)
        return {name: t.float().numpy() for name, t in zip(self.output_names, outs)}

    def describe(self) -> dict:
        return {"backend": self.name, "torch": torch.__version__, "threads": torch.get_num_threads()}
