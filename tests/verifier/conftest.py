"""Fixtures for the verifier tests: a fake issuer minting tokens with its own keys.

Tokens are minted here with `cryptography` keys (ES256 on P-256, EdDSA on Ed25519); the
JWKS reaches the verifier through an injected `fetch` (or a real loopback HTTP server in
the live tests). Time is a `FixedClock`.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import re
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from did_auth.core.clock import FixedClock  # noqa: E402
from did_auth.verifier import (  # noqa: E402
    DPoPVerifier,
    InMemoryReplayCache,
    JWKSCache,
    RevocationSet,
    TokenVerifier,
    jwk_thumbprint,
)
from did_auth.verifier._jose import b64url_encode, json_dumps, public_jwk, sign_jws  # noqa: E402

ISSUER = "https://issuer.example"
AUDIENCE = "trading-api"
JWKS_URL = ISSUER + "/.well-known/jwks.json"
API = "https://api.example"
T0 = 1_750_000_000.0
DROP = object()  # claim override meaning "remove this claim"

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class JwksDown(OSError):
    pass


class FakeIssuer:
    """Holds signing keys, publishes a JWKS through `fetch`, mints access tokens."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.keys: dict[str, PrivateKey] = {}
        self.published: list[str] = []
        self.fetches: list[str] = []
        self.down = False
        self.add_key("es-1", ec.generate_private_key(ec.SECP256R1()))
        self.add_key("ed-1", ed25519.Ed25519PrivateKey.generate())

    def add_key(self, kid: str, key: PrivateKey, *, publish: bool = True) -> None:
        self.keys[kid] = key
        if publish:
            self.published.append(kid)

    def jwk(self, kid: str) -> dict[str, Any]:
        alg, jwk = public_jwk(self.keys[kid].public_key())
        return {**jwk, "kid": kid, "alg": alg, "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk(kid) for kid in self.published]}

    def fetch(self, url: str) -> Any:
        self.fetches.append(url)
        if self.down:
            raise JwksDown("connection refused")
        assert url == JWKS_URL, url
        return self.jwks()

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "did:pkh:eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "aud": AUDIENCE,
            "exp": now + 300,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": "demo-dapp",
            "scope": "account:read trade:write",
            "sid": "0x" + secrets.token_hex(32),
            "auth_time": now,
            "amr": ["siwe"],
        }
        for name, value in overrides.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def header(self, kid: str, /, **overrides: Any) -> dict[str, Any]:
        alg = "ES256" if isinstance(self.keys[kid], ec.EllipticCurvePrivateKey) else "EdDSA"
        header: dict[str, Any] = {"alg": alg, "typ": "at+jwt", "kid": kid}
        for name, value in overrides.items():
            if value is DROP:
                header.pop(name, None)
            else:
                header[name] = value
        return header

    def mint(
        self,
        *,
        kid: str = "es-1",
        header: dict[str, Any] | None = None,
        key: PrivateKey | None = None,
        **claims: Any,
    ) -> str:
        hdr = self.header(kid, **(header or {}))
        return sign_jws(key or self.keys[kid], hdr, self.claims(**claims))


def unsigned_jwt(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return (
        b64url_encode(json_dumps(header))
        + "."
        + b64url_encode(json_dumps(claims))
        + "."
        + b64url_encode(signature)
    )


def hs256_jwt(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = b64url_encode(json_dumps(header)) + "." + b64url_encode(json_dumps(claims))
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url_encode(mac)


def thumbprint_of(key: PrivateKey) -> str:
    return jwk_thumbprint(public_jwk(key.public_key())[1])


_PARAM = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+)))?\s*,?'
)


def parse_challenges(header: str) -> dict[str, dict[str, str]]:
    """`WWW-Authenticate` value -> {scheme: {param: value}} (RFC 9110 §11.6.1 syntax)."""
    challenges: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    pos = 0
    while pos < len(header):
        match = _PARAM.match(header, pos)
        assert match and match.end() > pos, f"unparsable challenge: {header!r}"
        name, quoted, bare = match.groups()
        if quoted is None and bare is None:
            current = challenges.setdefault(name, {})
        else:
            assert current is not None, header
            current[name] = quoted if quoted is not None else bare
        pos = match.end()
    return challenges


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def issuer(clock: FixedClock) -> FakeIssuer:
    return FakeIssuer(clock)


@pytest.fixture
def jwks(issuer: FakeIssuer, clock: FixedClock) -> JWKSCache:
    return JWKSCache(JWKS_URL, fetch=issuer.fetch, clock=clock, ttl=300, cooldown=30)


@pytest.fixture
def revocations(clock: FixedClock) -> RevocationSet:
    return RevocationSet(clock=clock)


@pytest.fixture
def dpop_verifier(clock: FixedClock) -> DPoPVerifier:
    return DPoPVerifier(InMemoryReplayCache(clock=clock), clock=clock)


@pytest.fixture
def verifier(
    jwks: JWKSCache, clock: FixedClock, revocations: RevocationSet, dpop_verifier: DPoPVerifier
) -> TokenVerifier:
    return TokenVerifier(
        ISSUER, AUDIENCE, jwks, clock=clock, revocations=revocations, dpop=dpop_verifier
    )


@pytest.fixture(scope="session")
def trading_api() -> ModuleType:
    """`examples/trading_api.py` loaded as a module."""
    path = ROOT / "examples" / "trading_api.py"
    spec = importlib.util.spec_from_file_location("did_auth_example_trading_api", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def api(trading_api: ModuleType, verifier: TokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    """The example trading API in-process (ASGI), addressed as https://api.example."""
    app = trading_api.create_app(verifier, step_up_max_age=300, prefetch_jwks=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=API) as client:
        yield client


@pytest.fixture
def dpop_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


MintFn = Callable[..., str]
