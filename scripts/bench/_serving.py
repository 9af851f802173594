"""Shared by the benchmark's reference servers (baseline and ceiling): the request models,
the token issuance both do after their nonce check (refresh record + ES256 access token), and
uvicorn started exactly as `did-auth serve` starts it, so only the checks differ."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel

NONCE_TTL = 300


class NonceRequest(BaseModel):
    client_id: str


class VerifyRequest(BaseModel):
    client_id: str
    message: str
    signature: str
    scope: str | None = None


async def issue_tokens(
    store: Any, key: ec.EllipticCurvePrivateKey, issuer: str, body: VerifyRequest, sub: str
) -> dict[str, Any]:
    """One hashed refresh-token record in Redis and an ES256 access token, as did-auth does."""
    refresh = secrets.token_urlsafe(32)
    await store.set(f"refresh:{hashlib.sha256(refresh.encode()).hexdigest()}", sub, ex=86400)
    now = int(time.time())
    scope = body.scope or "account:read"
    token = jwt.encode(
        {"iss": issuer, "sub": sub, "aud": "trading-api", "iat": now, "exp": now + 300,
         "jti": secrets.token_urlsafe(16), "client_id": body.client_id, "scope": scope},
        key, algorithm="ES256", headers={"kid": "bench", "typ": "at+jwt"},
    )
    return {"access_token": token, "token_type": "Bearer", "expires_in": 300,
            "refresh_token": refresh, "scope": scope}


def serve_main(app: str, description: str) -> int:
    """The reference servers' command line: --port, --redis-url, --workers."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    return run_uvicorn(app, args.port, args.workers, args.redis_url)


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
