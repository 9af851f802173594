"""Shared by the benchmark's reference servers: uvicorn started exactly as `did-auth serve`
starts it (same loop and HTTP parser choice, same log level), so only the app differs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

NONCE_TTL = 300


def bench_issuer() -> str:
    return os.environ.get("BENCH_ISSUER", "http://127.0.0.1")


def uvicorn_speedups() -> dict[str, Any]:
    """uvloop / httptools when installed, no proxy-header rewriting: exactly the options
    did-auth's `serve` passes (did_auth.cli._uvicorn_options)."""
    opts: dict[str, Any] = {"proxy_headers": False}
    if importlib.util.find_spec("uvloop") is not None:
        opts["loop"] = "uvloop"
    if importlib.util.find_spec("httptools") is not None:
        opts["http"] = "httptools"
    return opts


def run_uvicorn(app: str, port: int, workers: int, redis_url: str) -> int:
    import uvicorn

    os.environ["BENCH_REDIS_URL"] = redis_url
    os.environ["BENCH_ISSUER"] = f"http://127.0.0.1:{port}"
    uvicorn.run(
        app, factory=True, host="127.0.0.1", port=port, workers=workers, log_level="warning",
        app_dir=str(Path(__file__).resolve().parent), **uvicorn_speedups(),
    )
    return 0
