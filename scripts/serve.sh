#!/usr/bin/env bash
# Start did-auth on embedded defaults (or pass serve's options, e.g. --config FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/did-auth serve "$@"
