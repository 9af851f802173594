"""The client package (clients/js, @did-auth/client) checked in Node against ethers
(Keccak-256, EIP-55) and the npm siwe package (EIP-4361 text); the messages it builds also
round-trip did-auth's strict parser."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from did_auth.core.siwe import SiweMessage

ROOT = Path(__file__).resolve().parents[3]


def test_client_module_against_ethers_and_npm_siwe() -> None:
    done = subprocess.run(
        ["node", "tests/edge/web/js_client_check.mjs"],
        cwd=ROOT,
        env={**os.environ, "NODE_OPTIONS": "--no-warnings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"]
    for text in result["messages"]:
        assert SiweMessage.from_text(text).to_text() == text
