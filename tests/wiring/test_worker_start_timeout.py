"""`did-auth serve --workers N` gives each worker time to import and start on a busy host.

uvicorn's supervisor pings every worker and kills one that has not answered within
`timeout_worker_healthcheck` seconds (default 5), then starts another: on a loaded machine
a worker's imports alone take longer, so the workers were killed and respawned for ever
and the server never answered (seen with eight jobs on two cores)."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from did_auth import cli
from tests.fixtures.redis_server import RedisServer, free_port


def test_workers_get_a_start_up_budget_beyond_uvicorns_five_seconds(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, tmp_path: Path
) -> None:
    captured: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: captured.update(kw))
    cfg = tmp_path / "did-auth.toml"
    kek = base64.b64encode(secrets.token_bytes(32)).decode()
    cfg.write_text(
        'issuer = "http://127.0.0.1:8000"\n'
        f'redis_url = "{redis_server.own_db(9)}"\n'
        f'key_encryption_key = "{kek}"\n'
        f'audit_log = "{tmp_path / "audit.jsonl"}"\n'
    )
    before = dict(os.environ)
    try:
        rc = cli.main(["serve", "--config", str(cfg), "--workers", "2",
                       "--port", str(free_port())])
    finally:
        os.environ.clear()
        os.environ.update(before)
    assert rc == 0
    assert captured["workers"] == 2
    assert captured["timeout_worker_healthcheck"] >= 60
