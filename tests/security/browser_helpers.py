"""Run a scenario of tests/security/browser_origins.mjs (headless Chromium via
playwright-core) against a live did-auth; returns its JSON facts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def run_browser(scenario: str, issuer: str) -> dict[str, Any]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (scripts/test.sh installs it)"
    env = {**os.environ, "E2E": json.dumps({"issuer": issuer}), "CHROMIUM": CHROMIUM}
    done = subprocess.run(
        ["node", "tests/security/browser_origins.mjs", scenario],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the browser run:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == 0 and result["ok"], f"{result.get('error')}\n{done.stderr}"
    return result
