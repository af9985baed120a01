#!/usr/bin/env bash
# Set up (scripts/setup.sh), place the real MNIST and Fashion-MNIST (gen.data.fetch), start the local
# SLURM cluster the cluster tests use, lint (scripts/lint.sh), run the tests: all of them (CI), or with --quick
# the quick tier (pytest -m "not slow": no cluster test, no test of several launches; no cluster, no lint) for
# the edit-test loop.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=false
if [ "${1:-}" = "--quick" ]; then
    quick=true
    shift
fi
bash scripts/setup.sh
. .venv/bin/activate
workers=(-n "${GEN_TEST_WORKERS:-2}")   # pytest-xdist: one worker per core of the 2-core reference machine
python -m gen.data.fetch || echo "real datasets not placed; tests/test_real_data.py will say why"
if $quick; then
    exec python -m pytest "${workers[@]}" -m "not slow" "$@"
fi
if [ -f scripts/slurm_cluster.sh ]; then
    bash scripts/slurm_cluster.sh start || echo "local SLURM cluster did not start; its tests will say why"
fi
bash scripts/lint.sh   # before the tests
python -m pytest "${workers[@]}" "$@"
