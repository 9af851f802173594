#!/usr/bin/env bash
# Run every benchmark in scripts/bench/ and write docs/benchmarks.md (ratios with targets,
# machine description). Under 10 minutes on a 2-core machine. Needs the dev install
# (scripts/test.sh sets it up: .venv, redis-server, npm ci for the Hardhat node).
# The benchmarks: siwe_verify, verify_token, contract_wallet_login, login_load, gateway and
# withdrawal (server CPU per withdrawal approval next to a login's; reported, no target), and
# hsm_login (server CPU per login, [signing] backend pkcs11 on SoftHSM2 / sealed; needs the
# softhsm2 package, which scripts/test.sh installs).
#
#   scripts/bench/run_all.sh            # full run
#   scripts/bench/run_all.sh --quick    # shortened runs, a smoke test of the pipeline
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" scripts/bench/collect.py "$@"
