#!/usr/bin/env bash
# Regenerate the transaction-log fixtures of tests/test_reader_fixtures.py: small real logs
# written by the oldest supported wandb (the floor in pyproject.toml) and by the newest wandb
# (the one `make bootstrap` installs), into tests/data/wandb-logs/wandb-<version>/.
#
# Usage: scripts/make_reader_fixtures.sh [wandb version ...]   (default: the floor and the newest)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=tests/data/wandb-logs
floor=$(sed -n 's/^ *"wandb>=\([^,"]*\).*/\1/p' pyproject.toml | head -n 1)
versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  make bootstrap >/dev/null
  versions=("$floor" "$(.venv/bin/python -c 'import wandb; print(wandb.__version__)')")
fi
rm -rf "$OUT"
mkdir -p "$OUT"
for version in "${versions[@]}"; do
  venv=.venv-matrix/fixtures-wandb-$version
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "wandb==$version"
  fi
  timeout 300 "$venv/bin/python" scripts/reader_fixture.py "$OUT"
done
du -sh "$OUT"
