"""Smoke test: the benchmark script runs end to end (no timing assertions)."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_bench_script_runs():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench" / "verify_token.py"),
            "--n",
            "20",
            "--warm",
            "50",
            "--rounds",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in ("ES256  cold", "ES256  warm", "EdDSA  cold", "EdDSA  warm", "ours/pyjwt"):
        assert needle in out, out
    assert "JWKS requests while timing: 0" in out
