#!/usr/bin/env bash
# Create .venv with gen, its dependencies, the experiment trackers and the test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# These exact releases install from this machine's disk (a CUDA build that also runs on CPU).
python -m pip install -q torch==2.14.1 torchvision==0.29.1
python -m pip install -q -e ".[dev,loggers,reference]"  # loggers: the trackers' libraries, which the tests read
# back; reference: the tools the measures are checked against (WeightWatcher, hessian-eigenthings)
