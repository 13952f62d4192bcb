"""The PyTorch reference: the native model (or any nn.Module, e.g. timm's) in float32 eval.

A module returning a tuple (stage feature maps) is named by `output_names`. The runner leaves torch's
process-wide thread count alone: that is the application's to set (the command line's --threads).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Runner


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' where torch sees a GPU, else 'cpu'; 'cuda' without one is a UserError."""
    from ..errors import UserError

    device = str(device).lower()  # as backends and variants are read in any case
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown device '{device}': choose auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device here: use `reference_device` cpu (or auto)")
    return device


class TorchRunner(Runner):
    def __init__(self, model: torch.nn.Module, name: str = "pytorch", output_names: tuple[str, ...] = ("logits",),
                 device: str = "cpu"):
        super().__init__()
        self.model, self.name, self.output_names = model, name, tuple(output_names)
        self.device = resolve_device(device)

    def _activate(self) -> None:
        self.model.eval().to(self.device)

    def _infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x).to(self.device))
        outs = out if isinstance(out, tuple | list) else (out,)
        return {name: t.float().cpu().numpy() for name, t in zip(self.output_names, outs)}

    def describe(self) -> dict:
        return {"backend": self.name, "torch": torch.__version__, "device": self.device,
                "threads": torch.get_num_threads()}
