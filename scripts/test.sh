#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs Python and npm dependencies and a
# redis-server where missing, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (Debian package)..." >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# Sentinel runs as `redis-server --sentinel` (same binary); nginx fronts the reference
# deployment in tests/deploy.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (Debian package, for the reference deployment tests)..." >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package, for the browser tests)..." >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# SoftHSM2: a PKCS#11 token in software, for the [signing] backend = "pkcs11" tests (tests/adapters/hsm).
if ! command -v softhsm2-util >/dev/null 2>&1 || [ ! -e /usr/lib/softhsm/libsofthsm2.so ]; then
  echo "installing softhsm2 (Debian package, for the PKCS#11 signing tests)..." >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq softhsm2 >/dev/null
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js 20 and npm are required (apt-get install nodejs npm)" >&2
  exit 1
fi

scripts/bootstrap.sh --dev
if [ -f package-lock.json ]; then
  lock_sum=$(sha256sum package-lock.json | cut -c1-16)
  if [ ! -f node_modules/.did-auth-lock ] || [ "$(cat node_modules/.did-auth-lock)" != "$lock_sum" ]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$lock_sum" > node_modules/.did-auth-lock
  fi
fi

# pytest caches each test module's assertion-rewritten bytecode in __pycache__ unless
# bytecode writing is off; with it off, every worker rewrites all 450 test files anew.
unset PYTHONDONTWRITEBYTECODE
# Two workers (pytest-xdist), each test file whole on one of them: the suite is largely
# waiting on servers, chains and browsers it starts, so two workers on two cores halve its
# wall time. Files start in collection order, the longest first (tests/fixtures/schedule.py),
# not xdist's default of the most tests first. Pass -n 0 to run in one process.
set +e
.venv/bin/python -m pytest -n "${DID_AUTH_TEST_WORKERS:-2}" --dist loadfile \
  --no-loadscope-reorder "$@"
rc=$?
set -e
exit $rc
