#!/usr/bin/env bash
# Run THERE, on the lent GPU machine, as one prepared call (its device time is 15 minutes a
# session, start included): the `gpu` tests, then bench_speed.py on CUDA (the Fashion CNN and
# resnet18 in fp32 and bf16, and the small host-bound cases; no train.compile rows, which take
# minutes to compile), logs under $OUT.
# First, here: bash benchmarks/gpu_wheels.sh. Then the device tool's run, with carry [".whl"]:
#
#   bash benchmarks/gpu_check.sh                   # timeout_s 540: leaves time for a rerun
#
# Each part has its own time limit, so a hang in one still returns the others' logs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch, netspec; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
echo "== pytest -m gpu"
timeout 180 python3 -m pytest -p no:cacheprovider -m gpu tests 2>&1 | tee "$OUT/gpu_tests.log" | tail -15
echo "== bench_speed on CUDA"
timeout 330 python3 benchmarks/bench_speed.py --device cuda --models cnn,resnet18,mlp,png --skip-startup \
    --skip-compile --compile-modes "" 2>&1 | tee "$OUT/bench_speed.log" | tail -45
