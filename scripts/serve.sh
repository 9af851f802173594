#!/usr/bin/env bash
# Start did-auth on embedded defaults (or pass serve's options, e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "did-auth: starting server" >&2
exec .venv/bin/did-auth serve "$@"
