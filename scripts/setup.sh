#!/usr/bin/env bash
# Create .venv with gen, its dependencies, the experiment trackers and the test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The releases gen is tested at (scripts/constraints.txt: torch, torchvision, the private APIs' providers).
# loggers: the trackers' libraries, which the tests read back; reference: the tools the measures are checked
# against (WeightWatcher, hessian-eigenthings)
python -m pip install -q -c scripts/constraints.txt -e ".[dev,loggers,reference]"
