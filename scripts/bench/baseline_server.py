"""The login server a team would typically write instead of did-auth (benchmark baseline).

FastAPI + the `siwe` package (installed as `signinwithethereum`, import name `siwe`):
`SiweMessage.from_message()` / `.verify()`, PyJWT for the ES256 access token, and a redis-py
nonce store. Same HTTP shape as did-auth (`POST /siwe/nonce`, `POST /siwe/verify`), same
Redis work as `ceiling_server.py` (nonce SET, GETDEL, one refresh-token record), same JWT.

    .venv/bin/python scripts/bench/baseline_server.py --port 8100 --redis-url redis://... \
        [--workers 1]

Only `scripts/bench/login_load.py` starts it; it is not part of did-auth.
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
from siwe import SiweMessage, generate_nonce

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import NONCE_TTL, bench_issuer, run_uvicorn

DOMAIN = "localhost:3000"


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
        value = generate_nonce()
        await store.set(f"nonce:{value}", body.client_id, ex=NONCE_TTL)
        return {"nonce": value, "expires_in": NONCE_TTL}

    @app.post("/siwe/verify")
    async def verify(body: VerifyRequest) -> dict[str, Any]:
        try:
            message = SiweMessage.from_message(body.message)
        except Exception as exc:
            raise HTTPException(400, "malformed message") from exc
        stored = await store.getdel(f"nonce:{message.nonce}")
        if stored is None or stored.decode() != body.client_id:
            raise HTTPException(400, "unknown nonce")
        try:
            message.verify(body.signature, domain=DOMAIN, nonce=message.nonce)
        except Exception as exc:
            raise HTTPException(400, "bad signature") from exc
        sub = f"did:pkh:eip155:{message.chain_id}:{message.address}"
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
    return run_uvicorn("baseline_server:create_app", args.port, args.workers, args.redis_url)


if __name__ == "__main__":
    raise SystemExit(main())
