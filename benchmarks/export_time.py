"""onnxslim inside `swin-deploy export`: with the large constants (weights, attention biases and masks) held out of it,
as the export runs it, against the whole model, as it ran before, on the same torch export, taking turns; that both give
the same graph; and the whole export's time either way (torch export, simplification, checks, parity).

    python benchmarks/export_time.py [--variants swin_t swinv2_t swin_b] [--runs 3]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxslim

from swin_deploy.export import ExportOptions, export_onnx, onnx_export
from swin_deploy.export.onnx_export import simplify
from swin_deploy.models import Weights, build_model, get_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, parser  # noqa: E402


def same_graph(a: onnx.ModelProto, b: onnx.ModelProto) -> bool:
    weights = {init.name: init for init in a.graph.initializer}
    return (a.graph.node == b.graph.node and list(a.graph.input) == list(b.graph.input)
            and a.graph.output == b.graph.output and a.graph.value_info == b.graph.value_info
            and len(weights) == len(b.graph.initializer) and all(weights.get(i.name) == i for i in b.graph.initializer))


def main() -> None:
    ap = parser(__doc__, variants=("swin_t", "swinv2_t", "swin_b"), batch_sizes=None, runs=3, warmup=0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(machine(), f"onnx {onnx.__version__}, onnxslim {onnxslim.__version__}", flush=True)
    print("| model | constants MB | onnxslim whole s | held out s | speedup | same graph | export s, whole | held out |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for name in args.variants:
        model, sha = build_model(get_config(name), Weights("random"))
        raw_path = export_onnx(model, sha, tmp / f"{name}.raw.onnx", ExportOptions(simplifier="none", verify=False)).path
        raw = onnx.load(str(raw_path))
        seconds: dict[str, list[float]] = {"whole": [], "held": []}
        for _ in range(args.runs):
            for label, run in (("whole", onnxslim.slim), ("held", simplify)):
                copy = onnx.ModelProto()
                copy.CopyFrom(raw)
                start = time.perf_counter()
                result = run(copy)
                seconds[label].append(time.perf_counter() - start)
                if label == "whole":
                    whole = result
        same = same_graph(result, whole)
        export = {}
        held_out = onnx_export._slim_with_constants_held_out
        for label, slim in (("whole", onnxslim.slim), ("held", held_out)):
            onnx_export._slim_with_constants_held_out = slim
            start = time.perf_counter()
            export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions())
            export[label] = time.perf_counter() - start
        onnx_export._slim_with_constants_held_out = held_out
        w, h = (float(np.median(seconds[k])) for k in ("whole", "held"))
        constants = [*raw.graph.initializer, *(n.attribute[0].t for n in raw.graph.node if n.op_type == "Constant")]
        mb = sum(len(t.raw_data) for t in constants) / 2**20
        print(f"| {name} | {mb:.0f} | {w:.2f} | {h:.2f} | {w / h:.2f}x | {'yes' if same else 'NO'} "
              f"| {export['whole']:.1f} | {export['held']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
