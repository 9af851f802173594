#!/usr/bin/env bash
# Creates .venv and installs did-auth with what it needs. Idempotent; sourced by the
# serve and test scripts. Usage: scripts/bootstrap.sh [--dev]
# --dev also installs the test and development tools, and creates .venv-oracle: the test
# oracles that pin older libraries than the server (signinwithethereum: web3 < 8), in an
# environment of their own (tests/oracle/requirements.txt).
# One progress line per step on stderr; pip's own output goes to .venv/install.log and is
# shown only when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "did-auth: $*" >&2; }

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "did-auth needs Python >= 3.11 (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi

# new_venv DIR: python -m venv DIR, unless it exists already.
new_venv() {
  [ -x "$1/bin/python" ] && return 0
  say "creating $1"
  "$PY" -m venv "$1" 2>/dev/null || {
    echo "python3 -m venv failed: install the venv module (apt-get install python3-venv)" >&2
    exit 1
  }
}

# pip_step VENV MESSAGE PIP-ARGS...: one progress line, pip quiet into VENV/install.log.
pip_step() {
  local venv=$1 message=$2
  shift 2
  say "$message"
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check "$@" \
      >>"$venv/install.log" 2>&1; then
    echo "did-auth: pip failed; the end of $venv/install.log:" >&2
    tail -n 30 "$venv/install.log" >&2
    exit 1
  fi
}

new_venv .venv
stamp=.venv/.did-auth-installed
want="$(cat pyproject.toml verifier/pyproject.toml | sha256sum | cut -c1-16)${1:-}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  : > .venv/install.log
  pip_step .venv "updating pip" --upgrade pip
  # did-auth depends on did-auth-verifier (verifier/, its own distribution); naming both in
  # one pip call makes pip take that requirement from ./verifier, never from an index.
  if [ "${1:-}" = "--dev" ]; then
    pip_step .venv "installing did-auth with the test and development tools (about a minute)" \
      -e ./verifier -e '.[dev]'
  else
    pip_step .venv "installing did-auth (about a minute)" -e ./verifier -e .
  fi
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--dev" ]; then
  new_venv .venv-oracle
  stamp=.venv-oracle/.did-auth-installed
  want="$(sha256sum tests/oracle/requirements.txt | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    : > .venv-oracle/install.log
    pip_step .venv-oracle "installing the signinwithethereum test oracle into .venv-oracle" \
      -r tests/oracle/requirements.txt
    echo "$want" > "$stamp"
  fi
fi
