#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install everything
# the demo, the tests, the type checks and the docs need. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.bootstrap-stamp
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ "$0" -nt "$STAMP" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  # The CPU build of torch (for the end-to-end torchrun test of distributed training) is asked for
  # in the same command, so that flyteplugins-pytorch's plain "torch" requirement is met by it
  # instead of pulling a multi-gigabyte CUDA build.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[dev,docs,report]"
  touch "$STAMP"
fi
