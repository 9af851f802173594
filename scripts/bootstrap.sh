#!/usr/bin/env bash
# Creates .venv and installs did-auth with what it needs. Idempotent; sourced by the
# serve and test scripts. Usage: scripts/bootstrap.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "did-auth needs Python >= 3.11 (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || {
    echo "python3 -m venv failed: install the venv module (apt-get install python3-venv)" >&2
    exit 1
  }
fi
stamp=.venv/.did-auth-installed
want="$(cat pyproject.toml verifier/pyproject.toml | sha256sum | cut -c1-16)${1:-}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # did-auth depends on did-auth-verifier (verifier/, its own distribution); naming both in
  # one pip call makes pip take that requirement from ./verifier, never from an index.
  if [ "${1:-}" = "--dev" ]; then
    .venv/bin/python -m pip install -q -e ./verifier -e '.[dev]'
  else
    .venv/bin/python -m pip install -q -e ./verifier -e .
  fi
  echo "$want" > "$stamp"
fi
