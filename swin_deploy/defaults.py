"""Every numeric default swin-deploy uses, in one place (thresholds live beside it in tolerances.py).

Library functions, the command line, scripts and tests import these instead of restating them.
"""

from __future__ import annotations

# export
OPSET = 17  # first opset with LayerNormalization
MIN_OPSET = 13
EXPORT_PARITY_BATCH_SIZES = (1, 3)  # none past the --max-batch; a --static-batch runs at its own
SEED = 0
SIMPLIFIER = "onnxslim"  # see the README's export section for the measurements behind the choice

# calibration (FP16 hot-node detection and INT8 ranges)
CALIB_IMAGES = 512
CALIB_BATCH = 16
COMPARE_IMAGES = 32  # images an INT8 is compared with float32 on (quantize --sensitivity, --auto-exclude)
# onnxruntime's calibrators hold every intermediate of every image they are fed until they reduce it,
# so images are fed in chunks of this many
CALIB_CHUNK_IMAGES = 16
# share of the memory available that a run reading out a model's tensors may take (calibration, verify's float16
# probe): batches are cut smaller where one image's run needs more (a swinv2_b at 384x384: ~2.5 GiB per image in
# onnxruntime's calibrator), and a static batch, which cannot be cut, reads its tensors a group at a time
READOUT_MEMORY_SHARE = 0.25
PERCENTILE = 99.999
FP16_KEEP_ABOVE = 1e4  # float16 overflows past 65504; keep nodes in float32 whose activations exceed this
FP16_MAX = 65504.0

# image decoding: workers allowed per usable CPU (decoding may wait on storage; more is a slip)
WORKERS_PER_CPU = 4

# verify
# the first runs every input (accuracy), the others a subset (consistency): every input at 8 costs the reference and
# the candidate less than at 1, on a CPU too (benchmarks/RESULTS.md, "Verify at scale"), and batch 1 is still gated
VERIFY_BATCH_SIZES = (8, 1, 3)
VERIFY_SAMPLES = 32  # seeded synthetic inputs when no images are given
CONSISTENCY_SAMPLES = 64  # inputs each batch size after the first is checked on
# inputs whose float16 tensors verify reads out as stored (at most: also within CONSISTENCY_SAMPLES), one at a
# time; each costs about a full run plus copying them out (swin_t INT8: 0.3 s on 2 cores)
FLOAT16_PROBE_INPUTS = 16

# predict
PREDICT_BATCH = 8  # or fewer, when fewer images are given

# a run of PyTorch or onnxruntime holds several of a model's largest activation (SwinConfig.activation_bytes) at once,
# above its baseline: verify (reference and candidate) 6-10 at batch 1 and 4 more per image, export 7-13 per image of its
# parity check's largest batch (benchmarks/RESULTS.md, "Peak memory of export and verify"). A run that would need more
# than the memory available at these lower bounds is refused at once (machine.check_memory): it would otherwise run
# until the kernel killed it, with no message
PEAK_ACTIVATIONS = 4
EXPORT_PEAK_ACTIVATIONS = 7

# OpenVINO: input shapes the runner compiles a static-shape copy of the model for (see openvino_runner)
OPENVINO_STATIC_SHAPES = 4

# bench
BENCH_BATCH_SIZES = (1, 8, 32)
BENCH_WARMUP = 3
# untimed pause after each timed run when runners take turns: a runtime's threads spin for a while after its run
# (PyTorch's OpenMP, OpenVINO's TBB), and the next runner paid for it: OpenVINO after PyTorch 20.2 ms against 16.7-16.9
# with a 10-20 ms pause (demo model, batch 32, AMD EPYC Zen 3)
BENCH_SETTLE_S = 0.02
BENCH_ITERATIONS = 20
BOOTSTRAP_RESAMPLES = 2000  # confidence intervals of medians and speedups (swin_deploy.latency)
GATE_EXTRA_TIME = 1.0  # an inconclusive speed gate may time for this many times the first pass's time again
GATE_MIN_ROUNDS = 10  # below this many rounds a speed gate's interval means little: the first pass takes at least this
# bench notes a busy machine when other processes (or, in a VM, the hypervisor's steal) kept at least this many of
# its usable cores busy on average while it ran: idle 2-core guests read 0.00-0.02, a process spinning on one core 0.7-1.0
BUSY_MACHINE_CORES = 0.2
# bench notes a CPU quota (a container's, a CI pod's) that stopped its group in at least this share of the scheduler
# periods while it ran: a swin_t bench with 2 threads under a 1-CPU quota read 0.97, one with 1 thread 0.01
THROTTLED_PERIODS = 0.1

# the command line's progress where stderr is no terminal (a CI log): a plain line at most this often, so long work
# shows it is alive (CircleCI stops a step after 10 minutes without output)
LOG_PROGRESS_EVERY_S = 60.0

# TensorRT engine build
ENGINE_MIN_BATCH, ENGINE_OPT_BATCH, ENGINE_MAX_BATCH = 1, 8, 32
WORKSPACE_BYTES = 4 << 30

# Triton model repositories
TRITON_MAX_BATCH = 32  # max_batch_size when the artifact records no limit
TRITON_MAX_QUEUE_DELAY_US = 100  # dynamic batching: how long a request may wait for others

# TensorRT's ONNX parser rules (`check`): the major version linted by default
TENSORRT_VERSION = 11
