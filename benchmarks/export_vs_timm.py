"""swin-deploy's ONNX export vs timm's own ONNX export of the same weights, in onnxruntime CPU.

timm's graph: torch.onnx.export (TorchScript path, opset 17, dynamic batch), simplified two ways, by onnxslim
and by onnx-simplifier; swin-deploy's: `swin-deploy export` with its default simplifier. All run through
swin-deploy's onnxruntime runner (no spin-waiting), timed round-robin (median of --runs after --warmup) so
machine drift hits all alike. Goals, against the stronger timm baseline (fewer nodes / faster): <= 0.5x its
nodes, >= 1.15x faster at batch 1 and 8.

    python benchmarks/export_vs_timm.py --variants swin_t swinv2_t --batch-sizes 1 8 [--img-size 256]

`--img-size` exports both at another size (timm built with `img_size`): at sizes whose stage grids the windows
do not tile (swin_t at 256) both pad, and swin-deploy's export takes its spatial path.
"""

from __future__ import annotations

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
from swin_deploy.compare import max_rel_delta
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.export.onnx_export import simplify
from swin_deploy.models import Weights, build_model, get_config
from swin_deploy.tolerances import EXPORT_PARITY_REL
from swin_deploy.verify.timm_reference import timm_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_ms, parser  # noqa: E402


def timm_export(name: str, state_dict: dict, path: Path, simplifier: str = "onnxslim",
                img_size: tuple[int, int] | None = None) -> int:
    import timm

    cfg = get_config(name).at_size(img_size)
    # a registered variant as timm names it; a config timm has no name for (the demo models) from timm's classes
    model = timm.create_model(cfg.timm_name, pretrained=False, img_size=cfg.img_size).eval() if cfg.timm_name \
        else timm_model(cfg)
    model.load_state_dict(state_dict)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, *cfg.img_size),), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=defaults.OPSET, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = simplify(onnx.load(str(path)), simplifier)
    onnx.save(proto, str(path))
    return len(proto.graph.node)


def main() -> None:
    ap = parser(__doc__, runs=10)
    ap.add_argument("--img-size", type=int, nargs="+", help="H [W] (default: each variant's own)")
    args = ap.parse_args()
    size = None if not args.img_size else (args.img_size[0], args.img_size[-1])
    tmp = Path(tempfile.mkdtemp())
    print(f"{machine()}; median of {args.runs} runs after {args.warmup} warm-up", flush=True)
    print("| variant | batch | timm+onnxslim nodes | timm+onnxsim nodes | ours nodes | node ratio vs stronger "
          "| timm+onnxslim ms | timm+onnxsim ms | ours ms | speedup vs stronger |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.variants:
        model, sha = build_model(get_config(name).at_size(size), Weights("random"))
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        t0 = time.perf_counter()
        ours = export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions())
        export_s = time.perf_counter() - t0
        nodes = {s: timm_export(name, sd, tmp / f"{name}.timm.{s}.onnx", s, size) for s in ("onnxslim", "onnxsim")}
        runners = {s: OnnxRuntimeRunner(tmp / f"{name}.timm.{s}.onnx") for s in nodes}
        runners["ours"] = OnnxRuntimeRunner(ours.path)
        for r in runners.values():
            r.activate()
        for b in args.batch_sizes:
            x = np.random.default_rng(0).standard_normal((b, 3, *model.cfg.img_size), dtype=np.float32)
            ref = runners["onnxslim"].infer(x)["logits"]
            for label, r in runners.items():
                delta = max_rel_delta(ref, r.infer(x)["logits"])
                assert delta <= EXPORT_PARITY_REL, f"{label} disagrees with timm ({delta:.1e})"
            ms = median_ms({k: (r, x) for k, r in runners.items()}, args.warmup, args.runs)
            fewest, fastest = min(nodes.values()), min(ms["onnxslim"], ms["onnxsim"])
            row = f"{name} {'x'.join(map(str, model.cfg.img_size))}"
            print(f"| {row} | {b} | {nodes['onnxslim']} | {nodes['onnxsim']} | {ours.nodes} | {ours.nodes / fewest:.2f}x "
                  f"| {ms['onnxslim']:.1f} | {ms['onnxsim']:.1f} | {ms['ours']:.1f} | {fastest / ms['ours']:.2f}x |",
                  flush=True)
        for r in runners.values():
            r.deactivate()
        print(f"{name}: swin-deploy export took {export_s:.1f} s (export, simplify, check, parity)", flush=True)


if __name__ == "__main__":
    main()
