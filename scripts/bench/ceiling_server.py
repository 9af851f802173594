"""The ceiling for did-auth's login throughput (benchmark reference, not a real server).

The same HTTP, Redis and JWT work as `baseline_server.py` (FastAPI, nonce SET + GETDEL, one
refresh-token record, PyJWT ES256) with no SIWE parsing and no signature check at all: the
nonce and address are cut out of the message text with two string searches. Whatever a
correct SIWE server costs beyond this is the price of its checks.

    .venv/bin/python scripts/bench/ceiling_server.py --port 8200 --redis-url redis://... \
        [--workers 1]
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, HTTPException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving import NONCE_TTL, NonceRequest, VerifyRequest, bench_issuer, issue_tokens, serve_main

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"



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
        return await issue_tokens(store, key, issuer, body, sub)

    return app


def main() -> int:
    return serve_main("ceiling_server:create_app", __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
