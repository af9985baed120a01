#!/usr/bin/env bash
# The linter over the whole tree and the type checker over gen's public contract (both configured in
# pyproject.toml: [tool.ruff], [tool.mypy]); CI runs this before the tests (scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m ruff check .
"$PY" -m mypy
