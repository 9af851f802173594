"""The ceiling for did-auth's login throughput (benchmark reference, not a real server).

The same HTTP, Redis and JWT work as `baseline_server.py` (FastAPI, nonce SET + GETDEL, one
refresh-token record, PyJWT ES256) with no SIWE parsing and no signature check at all: the
nonce and address are cut out of the message text with two string searches. Whatever a
correct SIWE server costs beyond this is the price of its checks.

    .venv/bin/python scripts/bench/ceiling_server.py --port 8200 --redis-url redis://... \
        [--workers 1]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import NONCE_TTL, bench_issuer, run_uvicorn

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class NonceRequest(BaseModel):
    client_id: str


class VerifyRequest(BaseModel):
    client_id: str
    message: str
    signature: str
    scope: str | None = None


def create_app() -> FastAPI:
    app = FastAPI()
    store = aioredis.from_url(os.environ["BENCH_REDIS_URL"])
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = bench_issuer()

    @app.post("/siwe/nonce")
    async def nonce(body: NonceRequest) -> dict[str, Any]:
        value = "".join(secrets.choice(_ALPHABET) for _ in range(17))
        await store.set(f"nonce:{value}", body.client_id, ex=NONCE_TTL)
        return {"nonce": value, "expires_in": NONCE_TTL}

    @app.post("/siwe/verify")
    async def verify(body: VerifyRequest) -> dict[str, Any]:
        # No parsing, no signature: only what is needed to find the nonce and the subject.
        nonce = body.message.partition("\nNonce: ")[2].partition("\n")[0]
        address = body.message.split("\n", 2)[1]
        stored = await store.getdel(f"nonce:{nonce}")
        if stored is None or stored.decode() != body.client_id:
            raise HTTPException(400, "unknown nonce")
        sub = f"did:pkh:eip155:1:{address}"
        refresh = secrets.token_urlsafe(32)
        await store.set(
            f"refresh:{hashlib.sha256(refresh.encode()).hexdigest()}", sub, ex=86400
        )
        now = int(time.time())
        token = jwt.encode(
            {"iss": issuer, "sub": sub, "aud": "trading-api", "iat": now, "exp": now + 300,
             "jti": secrets.token_urlsafe(16), "client_id": body.client_id,
             "scope": body.scope or "account:read"},
            key, algorithm="ES256", headers={"kid": "bench", "typ": "at+jwt"},
        )
        return {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                "refresh_token": refresh, "scope": body.scope or "account:read"}

    return app


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    return run_uvicorn("ceiling_server:create_app", args.port, args.workers, args.redis_url)


if __name__ == "__main__":
    raise SystemExit(main())
