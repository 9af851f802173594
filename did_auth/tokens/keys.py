"""Signing keys (ES256 / EdDSA): generated, sealed at rest in the store, shared by replicas.

Rotation (RFC 7517 practice): a new key is published in the JWKS `publish_ahead` seconds
before it signs, and the previous key stays published until its last token has expired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from did_auth_verifier.jose import b64url_decode, b64url_encode, jwk_thumbprint
from did_auth_verifier.jose import public_jwk as _public_jwk

from did_auth.clock import Clock
from did_auth.store import keys as store_keys
from did_auth.store.base import Store
from did_auth.tokens.kek import Sealer

__all__ = ["KeyRing", "SigningKey", "jwk_thumbprint"]

Alg = Literal["ES256", "EdDSA"]
KEYS_KEY = store_keys.SIGNING_KEYS
KEYS_TTL = 10 * 365 * 86400
# Replicas re-read the ring at most this long after a change; a rotation must publish a new
# key for longer than this before it signs, so every replica's JWKS has it first.
REFRESH_INTERVAL = 5.0
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def public_jwk(key: PrivateKey) -> dict[str, Any]:
    """The public JWK of a signing key (RFC 7517; `did_auth_verifier.jose.public_jwk`)."""
    return _public_jwk(key.public_key())[1]


def generate_private_key(alg: Alg) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: Alg
    private_key: PrivateKey
    created_at: float
    active_from: float
    retire_at: float | None  # None: current; else removed from JWKS after this time

    @property
    def jwk(self) -> dict[str, Any]:
        return {**public_jwk(self.private_key), "kid": self.kid, "alg": self.alg, "use": "sig"}


def _seal_key(sealer: Sealer, key: SigningKey) -> dict[str, Any]:
    der = key.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "kid": key.kid,
        "alg": key.alg,
        "created_at": key.created_at,
        "active_from": key.active_from,
        "retire_at": key.retire_at,
        "sealed": b64url_encode(sealer.seal(der, key.kid.encode())),
    }


def _unseal_key(sealer: Sealer, rec: dict[str, Any]) -> SigningKey:
    sealed = b64url_decode(rec["sealed"])
    der = sealer.open(sealed, rec["kid"].encode())
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    return SigningKey(
        kid=rec["kid"],
        alg=rec["alg"],
        private_key=private,
        created_at=rec["created_at"],
        active_from=rec["active_from"],
        retire_at=rec["retire_at"],
    )


def new_signing_key(alg: Alg, now: float, active_from: float | None = None) -> SigningKey:
    private = generate_private_key(alg)
    return SigningKey(
        kid=jwk_thumbprint(public_jwk(private)),
        alg=alg,
        private_key=private,
        created_at=now,
        active_from=now if active_from is None else active_from,
        retire_at=None,
    )


@dataclass(eq=False)
class KeyRing:
    """The set of signing keys, read from and written to the store (sealed)."""

    store: Store
    sealer: Sealer
    clock: Clock
    alg: Alg = field(kw_only=True)
    max_token_ttl: int = field(kw_only=True)
    _keys: list[SigningKey] = field(default_factory=list, init=False)
    _raw: bytes | None = field(default=None, init=False)
    _loaded_at: float = field(default=0.0, init=False)

    @property
    def keys(self) -> list[SigningKey]:
        return list(self._keys)

    async def load(self) -> None:
        """Load the ring from the store, creating the first key when there is none."""
        raw = await self.store.get(KEYS_KEY)
        if raw is None:
            first = new_signing_key(self.alg, self.clock.now())
            blob = orjson.dumps([_seal_key(self.sealer, first)])
            if not await self.store.put(KEYS_KEY, blob, KEYS_TTL, nx=True):
                raw = await self.store.get(KEYS_KEY)  # another replica won the race
            else:
                raw = blob
        self._apply(raw or b"[]")

    def _apply(self, raw: bytes) -> None:
        if raw != self._raw:
            self._keys = [_unseal_key(self.sealer, rec) for rec in orjson.loads(raw)]
            self._raw = raw
        self._loaded_at = self.clock.now()

    async def refresh(self, max_age: float = REFRESH_INTERVAL) -> None:
        """Re-read the ring when older than `max_age` so replicas see rotations (and load it
        when the store was unreachable at start)."""
        if self._raw is None:
            await self.load()
        elif self.clock.now() - self._loaded_at >= max_age:
            raw = await self.store.get(KEYS_KEY)
            if raw is not None:
                self._apply(raw)

    def signing_key(self) -> SigningKey:
        now = self.clock.now()
        usable = [k for k in self._keys if k.active_from <= now and k.retire_at is None]
        if not usable:
            usable = [k for k in self._keys if k.active_from <= now]
        return max(usable, key=lambda k: k.active_from)

    def published(self) -> list[SigningKey]:
        now = self.clock.now()
        return [k for k in self._keys if k.retire_at is None or k.retire_at > now]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk for k in self.published()]}

    async def rotate(self, *, publish_ahead: float) -> SigningKey:
        """Publish a new key now, signing with it after `publish_ahead` seconds; retire the
        current one once its last token (signed before the switch) has expired."""
        if publish_ahead <= REFRESH_INTERVAL:
            raise ValueError(f"publish_ahead must exceed {REFRESH_INTERVAL} seconds")
        await self.load()
        now = self.clock.now()
        nxt = new_signing_key(self.alg, now, active_from=now + publish_ahead)
        retire_at = now + publish_ahead + self.max_token_ttl + 60
        kept: list[SigningKey] = []
        for k in self._keys:
            if k.retire_at is not None and k.retire_at <= now:
                continue  # fully expired: drop
            if k.retire_at is None:
                k = SigningKey(k.kid, k.alg, k.private_key, k.created_at, k.active_from, retire_at)
            kept.append(k)
        blob = orjson.dumps([_seal_key(self.sealer, k) for k in [*kept, nxt]])
        await self.store.put(KEYS_KEY, blob, KEYS_TTL)
        self._apply(blob)
        return nxt

    async def replace_compromised(self) -> SigningKey:
        """A key leaked: replace the whole ring by a new key that signs now. The old keys
        leave the JWKS at once (every replica within REFRESH_INTERVAL), so the tokens signed
        with them, genuine or forged, stop verifying once verifiers re-read the JWKS; no
        overlap, unlike `rotate` (RFC 7517 §5: the JWK Set is the set of keys verifiers
        accept; a leaked key stays trusted for as long as it is in it)."""
        nxt = new_signing_key(self.alg, self.clock.now())
        blob = orjson.dumps([_seal_key(self.sealer, nxt)])
        await self.store.put(KEYS_KEY, blob, KEYS_TTL)
        self._apply(blob)
        return nxt
