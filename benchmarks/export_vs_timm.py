"""swin-deploy's ONNX export vs timm's own ONNX export of the same weights, in onnxruntime CPU.

Both graphs: torch.onnx.export (TorchScript path, opset 17, dynamic batch), then onnxslim. Both run
through swin-deploy's onnxruntime runner (no spin-waiting), timed round-robin (median of --runs after
--warmup) so machine drift hits both alike. Prints node counts, latencies, ratios and swin-deploy's
export time. Goal: <= 0.5x timm's nodes, >= 1.15x faster.

    python benchmarks/export_vs_timm.py --variants swin_t swinv2_t --batch-sizes 1 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from swin_deploy import defaults
from swin_deploy.backends.onnxruntime_runner import OnnxRuntimeRunner
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.export.onnx_export import simplify
from swin_deploy.models import Weights, build_model, get_config
from swin_deploy.tolerances import EXPORT_PARITY_REL
from swin_deploy.verify.compare import max_rel_delta

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_ms  # noqa: E402


def timm_export(name: str, state_dict: dict, path: Path) -> int:
    import timm

    model = timm.create_model(get_config(name).timm_name, pretrained=False).eval()
    model.load_state_dict(state_dict)
    cfg = get_config(name)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, *cfg.img_size),), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=defaults.OPSET, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = simplify(onnx.load(str(path)))
    onnx.save(proto, str(path))
    return len(proto.graph.node)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["swin_t", "swinv2_t"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--warmup", type=int, default=defaults.BENCH_WARMUP)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(f"{machine()}; median of {args.runs} runs after {args.warmup} warm-up")
    print(f"{'variant':10} {'batch':>5} {'timm nodes':>10} {'ours nodes':>10} {'node ratio':>10} "
          f"{'timm ms':>9} {'ours ms':>9} {'speedup':>8}")
    for name in args.variants:
        model, sha = build_model(get_config(name), Weights("random"))
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        t0 = time.perf_counter()
        ours = export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions())
        export_s = time.perf_counter() - t0
        timm_nodes = timm_export(name, sd, tmp / f"{name}.timm.onnx")
        with OnnxRuntimeRunner(tmp / f"{name}.timm.onnx") as theirs, OnnxRuntimeRunner(ours.path) as mine:
            for b in args.batch_sizes:
                x = np.random.default_rng(0).standard_normal((b, 3, *model.cfg.img_size), dtype=np.float32)
                delta = max_rel_delta(theirs.infer(x)["logits"], mine.infer(x)["logits"])
                assert delta <= EXPORT_PARITY_REL, f"timm and ours disagree ({delta:.1e})"
                ms = median_ms({"timm": (theirs, x), "ours": (mine, x)}, args.warmup, args.runs)
                print(f"{name:10} {b:>5} {timm_nodes:>10} {ours.nodes:>10} {ours.nodes / timm_nodes:>10.2f} "
                      f"{ms['timm']:>9.1f} {ms['ours']:>9.1f} {ms['timm'] / ms['ours']:>7.2f}x", flush=True)
        print(f"{name}: swin-deploy export took {export_s:.1f} s (export, simplify, check, parity)")


if __name__ == "__main__":
    main()
