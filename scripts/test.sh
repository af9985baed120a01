#!/usr/bin/env bash
# Set up (scripts/setup.sh), place the real MNIST and Fashion-MNIST (gen.data.fetch), start the local
# SLURM cluster the cluster tests use, lint (scripts/lint.sh), run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
python -m gen.data.fetch || echo "real datasets not placed; tests/test_real_data.py will say why"
if [ -f scripts/slurm_cluster.sh ]; then
    bash scripts/slurm_cluster.sh start || echo "local SLURM cluster did not start; its tests will say why"
fi
bash scripts/lint.sh   # before the tests
python -m pytest -n "${GEN_TEST_WORKERS:-2}" "$@"   # pytest-xdist: one worker per core of the 2-core reference machine
