"""Train the demo models (swin_digits, swinv2_digits) on scikit-learn's handwritten digits, seeded.

    python scripts/train_demo.py                  # both models, writes swin_deploy/weights/*.safetensors
    python scripts/train_demo.py --variants swin_digits --epochs 5

Trains on the calib/ split that `swin-deploy demo-data` writes and reports top-1 on the held-out val/
split, reading the PNG files through the same preprocessing as every other command. A few minutes on
2 CPU cores. The weights are committed so tests and the demo never train.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.transforms import v2

from swin_deploy.data import InputTransform, list_images, load_all, preprocess_fn
from swin_deploy.demo import write_digits
from swin_deploy.models import SwinTransformer, get_config
from swin_deploy.models.registry import WEIGHTS_DIR


def train(name: str, data: Path, epochs: int, seed: int) -> float:
    cfg = get_config(name)
    torch.manual_seed(seed)
    preprocess = preprocess_fn(cfg.img_size, cfg.mean, cfg.std, cfg.interpolation, cfg.crop_pct, cfg.crop_mode)
    transform = InputTransform(preprocess, cfg.in_chans, (cfg.in_chans, *cfg.img_size), np.float32)
    x_train, y_train = (torch.from_numpy(a) for a in load_all(list_images(data / "calib"), transform))
    x_val, y_val = (torch.from_numpy(a) for a in load_all(list_images(data / "val"), transform))
    augment = v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), fill=-1.0)
    model = SwinTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    steps = epochs * ((len(x_train) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        t0, total = time.perf_counter(), 0.0
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            xb = torch.stack([augment(x) for x in x_train[idx]])
            loss = F.cross_entropy(model(xb), y_train[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            acc = (model(x_val).argmax(1) == y_val).float().mean().item() * 100
        print(f"{name} epoch {epoch + 1:2d}/{epochs} loss {total / len(x_train):.3f} val top-1 {acc:.2f}% "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(WEIGHTS_DIR / cfg.bundled_weights))
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["swin_digits", "swinv2_digits"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        write_digits(tmp)
        for name in args.variants:
            acc = train(name, Path(tmp), args.epochs, args.seed)
            print(f"{name}: held-out val top-1 {acc:.2f}% -> {WEIGHTS_DIR / get_config(name).bundled_weights}")


if __name__ == "__main__":
    main()
