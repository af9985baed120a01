#!/usr/bin/env bash
# Set up (scripts/setup.sh), start the local SLURM cluster the cluster tests use, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
if [ -f scripts/slurm_cluster.sh ]; then
    bash scripts/slurm_cluster.sh start || echo "local SLURM cluster did not start; its tests will say why"
fi
python -m pytest "$@"
