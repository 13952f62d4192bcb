"""The strongest CPU INT8 peer's accuracy on trained weights, gated as swin-deploy gates its own INT8.

    pip install -e '.[peers]'      # nncf
    python benchmarks/peer_accuracy.py [--variants swin_digits swinv2_digits] [--calib-images 64]

`cpu_peers.py` measures the peers' speed on seeded random weights, where only logit deltas mean something. This runs
the trained demo models instead: timm's own ONNX export of their weights (as `cpu_peers.py` makes it), quantized by
NNCF under its transformer preset (the peer `cpu_peers.py` times) and under its default settings, against
swin-deploy's INT8 of its own export (`--target tensorrt`, the one shipped to AVX-512 VNNI CPUs), all calibrated on the
same calibration-folder digits. Each is gated by `verify` on OpenVINO at its default precision on the 359 held-out
digits, with the INT8 gates (NNCF's IRs as foreign artifacts, `--variant`): top-1 there, and how far each moves the
logits from the float32 PyTorch model.

Prints the CPU model and vector ISA first: OpenVINO's kernels, and so the INT8 results, depend on them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from calibration import QuantizeOptions, quantize
from swin_deploy.artifact import read_info
from swin_deploy.data import list_images, load_all, transform_for
from swin_deploy.demo import write_digits
from swin_deploy.export import ExportOptions, export_onnx
from swin_deploy.models import Weights, build_model, get_config
from swin_deploy.verify.run import VerifyOptions, verify_artifact

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, parser  # noqa: E402
from cpu_peers import nncf_int8  # noqa: E402
from export_vs_timm import timm_export  # noqa: E402


def main() -> None:
    ap = parser(__doc__, variants=("swin_digits", "swinv2_digits"), batch_sizes=None, runs=None)
    ap.add_argument("--calib-images", type=int, default=64)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = tmp / "data"
    write_digits(data)
    print(f"{machine()}; INT8 calibrated on {args.calib_images} calibration-folder digits; verify on OpenVINO at its "
          "default precision, INT8 gates, held-out digits", flush=True)
    print("| model | artifact | top-1 % (float32: ref) | mean abs delta | max rel delta | min cosine | gates |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name in args.variants:
        model, sha = build_model(get_config(name), Weights())
        fp32 = export_onnx(model, sha, tmp / f"{name}.onnx", ExportOptions()).path
        calib, _ = load_all(list_images(data / "calib", limit=args.calib_images), transform_for(read_info(fp32)))
        timm = tmp / f"{name}.timm.onnx"
        timm_export(name, {k: v.clone() for k, v in model.state_dict().items()}, timm, "onnxsim")
        rows = {"timm + NNCF INT8 (transformer preset)": nncf_int8(timm, calib, tmp / f"{name}.nncf-t.xml"),
                "timm + NNCF INT8 (default settings)": nncf_int8(timm, calib, tmp / f"{name}.nncf-d.xml", False),
                "swin-deploy INT8 --target tensorrt": quantize(fp32, tmp / f"{name}.int8.onnx", QuantizeOptions(
                    "int8", calib_data=data / "calib", calib_images=args.calib_images)).path}
        for label, path in rows.items():
            foreign = None if path.suffix == ".onnx" else name
            result = verify_artifact(path, VerifyOptions(variant=foreign, data=data / "val", backend="openvino"))
            m = result.batches[0].metrics
            print(f"| {name} | {label} | {m['cand_top1']:.2f} ({m['ref_top1']:.2f}) | {m['mean_abs_delta']:.4f} | "
                  f"{m['max_rel_delta']:.3f} | {m['min_cosine']:.4f} | {'pass' if result.passed else 'FAIL'} |",
                  flush=True)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
