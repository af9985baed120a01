#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the CUDA tests (tests/test_cuda.py, marker `cuda`) and the speed
# benchmark's CUDA section (ours against bare, fp32 and bf16; lockstep K=8 against alone), in under
# 8 minutes.  The figures land in benchmarks/results/<host>-<date>.json and on stdout; the README's
# CUDA figures come from here.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
. .venv/bin/activate
python -m gen.data.fetch mnist
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 300 python -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider
timeout 240 python benchmarks/speed.py --only cuda --repeats 2
