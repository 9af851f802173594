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

import os
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, HTTPException
from siwe import SiweMessage, generate_nonce

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import NONCE_TTL, NonceRequest, VerifyRequest, bench_issuer, issue_tokens, serve_main

DOMAIN = "localhost:3000"



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
        return await issue_tokens(store, key, issuer, body, sub)

    return app


def main() -> int:
    return serve_main("baseline_server:create_app", __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
