#!/usr/bin/env bash
# The version matrix of CI: the smoke suite (tests marked `smoke`: demo, links, run lifecycle,
# offline fallback, the transaction-log reader and its fixtures, codec, settings) in one virtual
# environment per leg under .venv-matrix/:
#
#   oldest    Python 3.11, the oldest supported wandb and flyte (the floors of pyproject.toml)
#   py3.10    Python 3.10.13, the newest wandb and flyte
#   py3.13    Python 3.13.0, the newest wandb and flyte
#
# The full suite on the newest versions is `make test` (run before this by .ci/run). The pyenv
# interpreters are installed with `pyenv install` when missing; without pyenv a missing
# interpreter fails the matrix (it never passes silently). No torch here: the smoke suite does
# not need it. The last line is the total, "N passed, N failed".
#
# Usage: scripts/matrix.sh [leg ...]      (default: all legs)
set -uo pipefail
cd "$(dirname "$0")/.."

PY310=3.10.13
PY313=3.13.0
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
MATRIX=.venv-matrix
# The floors, read from pyproject.toml so the matrix proves exactly what it declares.
floor() { sed -n "s/^ *\"$1>=\([^,\"]*\).*/\1/p" pyproject.toml | head -n 1; }
WANDB_MIN=$(floor wandb)
FLYTE_MIN=$(floor flyte)
SMOKE_DEPS=("pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout>=2.2")

log() { printf '[matrix] %s\n' "$*" >&2; }

interpreter() {
  # The python executable for a leg; installs a missing pyenv version, or fails clearly.
  local version=$1
  if [ "$version" = "system" ]; then
    command -v python3
    return
  fi
  local python="$PYENV_ROOT/versions/$version/bin/python"
  if [ ! -x "$python" ]; then
    if command -v pyenv >/dev/null 2>&1; then
      log "Python $version is missing: pyenv install $version"
      pyenv install -s "$version" >&2 || { log "FAILED: pyenv install $version"; return 1; }
    else
      log "FAILED: Python $version is not installed at $python and pyenv is not available"
      return 1
    fi
  fi
  [ -x "$python" ] || { log "FAILED: no $python after pyenv install"; return 1; }
  echo "$python"
}

pip_quiet() {
  # pip install into venv $1, without the notes about this machine's absent local indexes.
  local venv=$1
  shift
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 |
    grep -v "^WARNING: Location '.*' is ignored" >&2
  return "${PIPESTATUS[0]}"
}

prepare() {
  # prepare <leg> <python version> <pip requirement...>: (re)creates .venv-matrix/<leg> when
  # pyproject.toml, this script or the requirements changed.
  local leg=$1 version=$2
  shift 2
  local python venv=$MATRIX/$leg
  python=$(interpreter "$version") || return 1
  local want
  want="$("$python" --version 2>&1) $* $(cat pyproject.toml "$0" | cksum)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  log "$leg: creating $venv ($("$python" --version 2>&1); $*)"
  rm -rf "$venv"
  "$python" -m venv "$venv" || return 1
  pip_quiet "$venv" --upgrade pip || return 1
  pip_quiet "$venv" -e ".[report]" "${SMOKE_DEPS[@]}" "$@" || return 1
  echo "$want" >"$venv/.stamp"
}

PASSED=0
FAILED=0
STATUS=0

run_leg() {
  local leg=$1 version=$2
  shift 2
  local out=$MATRIX/$leg.log
  mkdir -p "$MATRIX"
  if ! prepare "$leg" "$version" "$@"; then
    log "$leg: FAILED to set up"
    FAILED=$((FAILED + 1))
    STATUS=1
    return
  fi
  local venv=$MATRIX/$leg
  log "$leg: $("$venv/bin/python" --version 2>&1), $("$venv/bin/python" -c \
    'import importlib.metadata as m; print("wandb", m.version("wandb"), "flyte", m.version("flyte"))')"
  local start=$SECONDS
  "$venv/bin/python" -m pytest -q -m smoke -p no:cacheprovider >"$out" 2>&1
  local rc=$?
  local summary
  summary=$(grep -E '^=*.*[0-9]+ (passed|failed|error)' "$out" | tail -n 1)
  log "$leg: ${summary:-no pytest summary, see $out} ($((SECONDS - start)) s)"
  local passed failed errors
  passed=$(sed -n 's/.* \([0-9][0-9]*\) passed.*/\1/p; s/^\([0-9][0-9]*\) passed.*/\1/p' <<<"$summary" | head -n 1)
  failed=$(sed -n 's/.* \([0-9][0-9]*\) failed.*/\1/p; s/^\([0-9][0-9]*\) failed.*/\1/p' <<<"$summary" | head -n 1)
  errors=$(sed -n 's/.* \([0-9][0-9]*\) errors\{0,1\}.*/\1/p' <<<"$summary" | head -n 1)
  PASSED=$((PASSED + ${passed:-0}))
  FAILED=$((FAILED + ${failed:-0} + ${errors:-0}))
  if [ $rc -ne 0 ]; then
    STATUS=1
    [ -n "${failed}${errors}" ] || FAILED=$((FAILED + 1))
    grep -E '^(FAILED|ERROR)' "$out" | head -n 20 >&2
  fi
}

LEGS=("$@")
[ ${#LEGS[@]} -gt 0 ] || LEGS=(oldest py3.10 py3.13)
for leg in "${LEGS[@]}"; do
  case $leg in
    oldest) run_leg oldest system "wandb==$WANDB_MIN" "flyte==$FLYTE_MIN" ;;
    py3.10) run_leg py3.10 "$PY310" ;;
    py3.13) run_leg py3.13 "$PY313" ;;
    *) log "unknown leg $leg (oldest, py3.10, py3.13)"; STATUS=1 ;;
  esac
done
echo "$PASSED passed, $FAILED failed"
exit $STATUS
