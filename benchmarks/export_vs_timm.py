"""swin-deploy's ONNX export vs timm's own ONNX export of the same weights, in onnxruntime CPU.

Both graphs: torch.onnx.export (TorchScript path, opset 17, dynamic batch), then onnxslim.
Default onnxruntime session options. Median of --runs timed runs after --warmup runs, the two
models interleaved run by run so machine drift hits both alike. Prints node counts, latencies,
ratios and swin-deploy's export time. Goal (issue 3): <= 0.5x timm's nodes, >= 1.15x faster.

    python benchmarks/export_vs_timm.py --variants swin_t swinv2_t --batch-sizes 1 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.export.onnx_export import simplify
from swin_deploy.models import Weights, build_model, get_config


def timm_export(name: str, state_dict: dict, path: Path) -> int:
    import timm

    model = timm.create_model(get_config(name).timm_name, pretrained=False).eval()
    model.load_state_dict(state_dict)
    cfg = get_config(name)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, *cfg.img_size),), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = simplify(onnx.load(str(path)))
    onnx.save(proto, str(path))
    return len(proto.graph.node)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["swin_t", "swinv2_t"])
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, {args.runs} runs after {args.warmup} warm-up")
    print(f"{'variant':10} {'batch':>5} {'timm nodes':>10} {'ours nodes':>10} {'node ratio':>10} "
          f"{'timm ms':>9} {'ours ms':>9} {'speedup':>8}")
    for name in args.variants:
        model, sha = build_model(get_config(name), Weights("random"))
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        t0 = time.perf_counter()
        ours = export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions())
        export_s = time.perf_counter() - t0
        timm_nodes = timm_export(name, sd, tmp / f"{name}.timm.onnx")
        sessions = [ort.InferenceSession(str(tmp / f"{name}.timm.onnx"), providers=["CPUExecutionProvider"]),
                    ort.InferenceSession(str(ours.path), providers=["CPUExecutionProvider"])]
        for b in args.batch_sizes:
            x = np.random.default_rng(0).standard_normal((b, 3, *model.cfg.img_size), dtype=np.float32)
            outs = [s.run(None, {"input": x})[0] for s in sessions]
            assert np.abs(outs[0] - outs[1]).max() <= 1e-4 * np.abs(outs[0]).max(), "timm and ours disagree"
            for _ in range(args.warmup):
                for s in sessions:
                    s.run(None, {"input": x})
            times: list[list[float]] = [[], []]
            for _ in range(args.runs):
                for i, s in enumerate(sessions):
                    t = time.perf_counter()
                    s.run(None, {"input": x})
                    times[i].append(time.perf_counter() - t)
            timm_ms, ours_ms = (1000 * float(np.median(t)) for t in times)
            print(f"{name:10} {b:>5} {timm_nodes:>10} {ours.nodes:>10} {ours.nodes / timm_nodes:>10.2f} "
                  f"{timm_ms:>9.1f} {ours_ms:>9.1f} {timm_ms / ours_ms:>7.2f}x")
        print(f"{name}: swin-deploy export took {export_s:.1f} s (export, simplify, check, parity)")


if __name__ == "__main__":
    main()
