#!/usr/bin/env bash
# The main job, end to end and offline: export swin_t and swinv2_t (seeded random weights) to ONNX with
# parity checks, then measure them against timm's own export in onnxruntime CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
swin-deploy export --variant swin_t --random-init -o out/swin_t.onnx
swin-deploy export --variant swinv2_t --random-init -o out/swinv2_t.onnx
python benchmarks/export_vs_timm.py --variants swin_t swinv2_t --batch-sizes 1 8
