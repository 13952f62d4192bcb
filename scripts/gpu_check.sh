#!/usr/bin/env bash
# The whole GPU path, for the first machine with an NVIDIA GPU and TensorRT (10 or 11):
# export swin_t and swinv2_t, FP16 and INT8 engines, verify gates against PyTorch, bench table.
# Exits non-zero on any failure. Random weights keep it offline; INT8 calibrates on the demo digits
# (a speed and plumbing check for the 224/256 models; accuracy gates use synthetic inputs).
#   pip install -e '.[dev,gpu,tensorrt]' && bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/gpu_check
mkdir -p "$out"
swin-deploy demo-data "$out/data"
for v in swin_t swinv2_t; do
  swin-deploy export --variant "$v" --random-init --max-batch 32 -o "$out/$v.onnx"
  swin-deploy build-engine "$out/$v.onnx" --fp16 -o "$out/$v.fp16.engine"
  swin-deploy build-engine "$out/$v.onnx" --int8 --calib-data "$out/data/calib" --calib-images 256 -o "$out/$v.int8.engine"
  for p in fp16 int8; do
    swin-deploy verify "$out/$v.$p.engine" --random-init --batch-sizes 1,8,32 --samples 64 \
      --report "$out/$v.$p.verify.json"
  done
  swin-deploy verify "$out/$v.onnx" --backend onnxruntime-tensorrt --random-init --batch-sizes 1,8 --samples 32
  swin-deploy bench "$out/$v.fp16.engine" "$out/$v.int8.engine" --torch "$v" --random-init \
    --batch-sizes 1,8,32 --iterations 50 --json "$out/$v.bench.json" --plot "$out/$v.bench.png"
done
echo "gpu_check: all steps passed; reports in $out"
