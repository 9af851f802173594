"""Confidential and public OAuth clients for the client-authentication security tests.

`oauth_api` is an in-process did-auth (memory or Redis store, like `api`) configured with:

- `dapp`   public client (no credentials: `none`);
- `vault`  confidential, `client_secret_hash` (client_secret_basic or client_secret_post);
- `poster` confidential, `client_secret_post` only;
- `bot`    confidential, `private_key_jwt` with an ES256 and an EdDSA key (`jwks`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from did_auth.config.settings import Settings
from did_auth.core.did.jwt_proof import sign_proof
from did_auth.services import Services
from did_auth.verifier._jose import b64url_encode, json_dumps, public_jwk, sign_jws
from tests import siwe_text
from tests.fixtures.servers import CLIENT, running_app, settings_for

Api = tuple[httpx.AsyncClient, Services]
ISS = "http://testserver"
TOKEN = ISS + "/token"

# RFC 6749 §2.3.1 form-urlencodes the secret before Base64: spaces, '+', '/', ':' and
# non-ASCII all survive only if both sides follow it.
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def hash_secret(secret: str) -> str:
    """The configured `client_secret_hash` form: sha256:<hex>."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


SECRET = "s3cret with spaces+plus/slash:colon%25 ü"
POST_SECRET = secrets.token_urlsafe(24)
ES_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str) -> dict[str, str]:
    _, jwk = public_jwk(key.public_key())
    return {**jwk, "kid": kid, "use": "sig"}


VAULT = {**CLIENT, "client_id": "vault", "client_secret_hash": hash_secret(SECRET)}
POSTER = {
    **CLIENT,
    "client_id": "poster",
    "client_secret_hash": hash_secret(POST_SECRET),
    "token_endpoint_auth_method": "client_secret_post",
}
BOT = {
    **CLIENT,
    "client_id": "bot",
    "jwks": {"keys": [_jwk(ES_KEY, "es"), _jwk(ED_KEY, "ed")]},
}
CLIENTS = [CLIENT, VAULT, POSTER, BOT]


def settings(request: pytest.FixtureRequest, store_kind: str, **over: Any) -> Settings:
    over.setdefault("clients", CLIENTS)
    if store_kind == "redis":
        redis = request.getfixturevalue("redis_server")
        kek = request.getfixturevalue("session_kek")
        return settings_for(redis_url=redis.url, key_encryption_key_file=kek, **over)
    return settings_for(**over)


@pytest.fixture
async def oauth_api(store_kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    async with running_app(settings(request, store_kind)) as pair:
        yield pair


def basic(client_id: str, secret: str) -> dict[str, str]:
    """RFC 6749 §2.3.1: Base64(urlencode(id) ":" urlencode(secret)), as openid-client does."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def assertion(
    client_id: str = "bot",
    *,
    key: Any = ES_KEY,
    kid: str | None = "es",
    aud: object = TOKEN,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """An RFC 7523 client assertion (ES256 for P-256 keys, EdDSA for Ed25519 keys)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 60,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    head: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        head["kid"] = kid
    head.update(header or {})
    return sign_jws(key, head, body)


def unsigned_assertion(client_id: str = "bot", alg: str = "none", secret: bytes = b"") -> str:
    """`alg: none` (empty signature) or an HMAC (HS256) assertion: never accepted."""
    now = int(time.time())
    head = b64url_encode(json_dumps({"alg": alg, "typ": "JWT"}))
    body = b64url_encode(
        json_dumps(
            {
                "iss": client_id,
                "sub": client_id,
                "aud": TOKEN,
                "jti": secrets.token_urlsafe(16),
                "iat": now,
                "exp": now + 60,
            }
        )
    )
    signing_input = f"{head}.{body}".encode()
    sig = b"" if alg == "none" else hmac.digest(secret, signing_input, "sha256")
    return f"{head}.{body}.{b64url_encode(sig)}"


def jwt_auth(jwt: str) -> dict[str, str]:
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": jwt}


async def siwe_login(
    client: httpx.AsyncClient,
    client_id: str = "dapp",
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    account: tuple[str, bytes] | None = None,
) -> httpx.Response:
    """POST /siwe/verify for `client_id` (the JSON body may carry client credentials)."""
    address, key = account or siwe_text.new_account()
    r = await client.post("/siwe/nonce", json={"client_id": client_id})
    assert r.status_code == 200, r.text
    text = siwe_text.message(address, r.json()["nonce"])
    body = {"client_id": client_id, "message": text, "signature": siwe_text.sign(text, key)}
    return await client.post("/siwe/verify", json={**body, **(extra or {})}, headers=headers)


async def tokens_for(client: httpx.AsyncClient, client_id: str) -> dict[str, Any]:
    """A login for `client_id`, authenticated as that client requires."""
    extra: dict[str, Any] = {}
    headers: dict[str, str] | None = None
    if client_id == "vault":
        headers = basic("vault", SECRET)
    elif client_id == "poster":
        extra = {"client_secret": POST_SECRET}
    elif client_id == "bot":
        extra = jwt_auth(assertion(aud=ISS + "/siwe/verify"))
    r = await siwe_login(client, client_id, extra=extra, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


async def did_login(
    client: httpx.AsyncClient,
    client_id: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /did/verify with a fresh did:key (Ed25519) for `client_id`."""
    sk = ed25519.Ed25519PrivateKey.generate()
    raw = sk.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    did = "did:key:z" + _b58(b"\xed\x01" + pub)
    ch = await client.post("/did/challenge", json={"client_id": client_id, "did": did})
    assert ch.status_code == 200, ch.text
    c = ch.json()
    now = int(time.time())
    proof = sign_proof(
        {"iss": did, "aud": c["audience"], "nonce": c["challenge"], "iat": now, "exp": now + 60},
        alg="EdDSA",
        private_key=raw,
    )
    body = {"client_id": client_id, "proof": proof, **(extra or {})}
    return await client.post("/did/verify", json=body, headers=headers)


def refresh_form(refresh_token: str, client_id: str | None = None) -> dict[str, str]:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if client_id is not None:
        form["client_id"] = client_id
    return form
