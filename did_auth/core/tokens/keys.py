"""Signing keys (ES256 / EdDSA): the ring of key ids in the store, shared by replicas; the
private keys live in a `SigningBackend` (tokens/signing.py: sealed in the store, or in a
PKCS#11 token).

Rotation (RFC 7517 practice): a new key is published in the JWKS `publish_ahead` seconds
before it signs, and the previous key stays published until its last token has expired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from did_auth_verifier.jose import jwk_thumbprint

from did_auth.core.clock import Clock
from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store
from did_auth.core.tokens.kek import Sealer
from did_auth.core.tokens.signing import Alg, PrivateKey, SealedBackend, SigningBackend

__all__ = ["KeyRing", "PrivateKey", "SigningKey", "jwk_thumbprint"]

KEYS_KEY = store_keys.SIGNING_KEYS
KEYS_TTL = 10 * 365 * 86400
# Replicas re-read the ring at most this long after a change; a rotation must publish a new
# key for longer than this before it signs, so every replica's JWKS has it first.
REFRESH_INTERVAL = 5.0
# The ring record's own fields; every other field is the backend's ("sealed", "backend").
_RECORD_FIELDS = frozenset({"kid", "alg", "created_at", "active_from", "retire_at", "backend"})


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: Alg
    public: dict[str, Any]  # the public JWK's key members (kty, crv, x[, y])
    created_at: float
    active_from: float
    retire_at: float | None  # None: current; else removed from JWKS after this time
    # The backend's own record fields ("sealed": the sealed private key), kept as stored.
    extra: Mapping[str, Any] = field(compare=False, repr=False)
    # Signs a JWS signing input with this key, in its backend (never a key in memory here).
    sign: Callable[[bytes], bytes] = field(compare=False, repr=False)

    @property
    def jwk(self) -> dict[str, Any]:
        return {**self.public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def record(self, backend: str) -> dict[str, Any]:
        rec = {
            "kid": self.kid,
            "alg": self.alg,
            "created_at": self.created_at,
            "active_from": self.active_from,
            "retire_at": self.retire_at,
            **self.extra,
        }
        if backend != "sealed":
            rec["backend"] = backend
        return rec


@dataclass(eq=False)
class KeyRing:
    """The ring of signing keys, read from and written to the store; the private keys are
    the backend's (a `Sealer` given here means the sealed backend)."""

    store: Store
    backend: SigningBackend | Sealer
    clock: Clock
    alg: Alg = field(kw_only=True)
    max_token_ttl: int = field(kw_only=True)
    _keys: list[SigningKey] = field(default_factory=list, init=False)
    _raw: bytes | None = field(default=None, init=False)
    _loaded_at: float = field(default=0.0, init=False)
    _backend: SigningBackend = field(init=False)

    def __post_init__(self) -> None:
        backend = self.backend
        self._backend = SealedBackend(backend) if isinstance(backend, Sealer) else backend

    @property
    def signer(self) -> SigningBackend:
        """The backend holding the private keys."""
        return self._backend

    @property
    def store_key(self) -> str:
        return self._backend.store_key

    @property
    def keys(self) -> list[SigningKey]:
        return list(self._keys)

    def _new_key(self, now: float, active_from: float | None = None) -> SigningKey:
        kid, extra = self._backend.generate(self.alg)
        return self._key(
            {"kid": kid, "alg": self.alg, "created_at": now, "retire_at": None, **extra,
             "active_from": now if active_from is None else active_from}
        )

    def _key(self, rec: Mapping[str, Any]) -> SigningKey:
        backend = self._backend
        kid, alg = str(rec["kid"]), rec["alg"]
        public = backend.public_jwk(rec)
        extra = {k: v for k, v in rec.items() if k not in _RECORD_FIELDS}
        return SigningKey(
            kid=kid,
            alg=alg,
            public=public,
            created_at=rec["created_at"],
            active_from=rec["active_from"],
            retire_at=rec["retire_at"],
            extra=extra,
            sign=lambda data: backend.sign(kid, alg, data),
        )

    def _blob(self, keys: list[SigningKey]) -> bytes:
        return orjson.dumps([k.record(self._backend.name) for k in keys])

    async def load(self) -> None:
        """Load the ring from the store, creating the first key when there is none."""
        raw = await self.store.get(self.store_key)
        if raw is None:
            first = self._new_key(self.clock.now())
            blob = self._blob([first])
            if not await self.store.put(self.store_key, blob, KEYS_TTL, nx=True):
                raw = await self.store.get(self.store_key)  # another replica won the race
                self._backend.destroy(first.kid)
            else:
                raw = blob
        self._apply(raw or b"[]")

    def _apply(self, raw: bytes) -> None:
        if raw != self._raw:
            self._keys = [self._key(rec) for rec in orjson.loads(raw)]
            self._raw = raw
        self._loaded_at = self.clock.now()

    async def refresh(self, max_age: float = REFRESH_INTERVAL) -> None:
        """Re-read the ring when older than `max_age` so replicas see rotations (and load it
        when the store was unreachable at start)."""
        if self._raw is None:
            await self.load()
        elif self.clock.now() - self._loaded_at >= max_age:
            raw = await self.store.get(self.store_key)
            if raw is not None:
                self._apply(raw)

    def signing_key(self) -> SigningKey:
        now = self.clock.now()
        usable = [k for k in self._keys if k.active_from <= now and k.retire_at is None]
        if not usable:
            usable = [k for k in self._keys if k.active_from <= now]
        return max(usable, key=lambda k: k.active_from)

    def check(self) -> None:
        """Raise `TemporarilyUnavailable` unless the key that signs now can sign (/readyz)."""
        self._backend.check(self.signing_key().kid if self._keys else None)

    def published(self) -> list[SigningKey]:
        now = self.clock.now()
        return [k for k in self._keys if k.retire_at is None or k.retire_at > now]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk for k in self.published()]}

    async def _write(self, keys: list[SigningKey], dropped: list[str]) -> None:
        blob = self._blob(keys)
        await self.store.put(self.store_key, blob, KEYS_TTL)
        self._apply(blob)
        for kid in dropped:  # only once the ring without them is stored
            try:
                self._backend.destroy(kid)
            except TemporarilyUnavailable:
                pass  # out of the ring already: never published nor used again

    async def rotate(self, *, publish_ahead: float) -> SigningKey:
        """Publish a new key now, signing with it after `publish_ahead` seconds; retire the
        current one once its last token (signed before the switch) has expired."""
        if publish_ahead <= REFRESH_INTERVAL:
            raise ValueError(f"publish_ahead must exceed {REFRESH_INTERVAL} seconds")
        await self.load()
        now = self.clock.now()
        nxt = self._new_key(now, active_from=now + publish_ahead)
        retire_at = now + publish_ahead + self.max_token_ttl + 60
        kept: list[SigningKey] = []
        dropped: list[str] = []
        for k in self._keys:
            if k.retire_at is not None and k.retire_at <= now:
                dropped.append(k.kid)  # fully expired: drop
                continue
            if k.retire_at is None:
                k = replace(k, retire_at=retire_at)
            kept.append(k)
        await self._write([*kept, nxt], dropped)
        return nxt

    async def retire(self, kid: str | None = None) -> list[SigningKey]:
        """Drop the keys whose last token has expired (`retire_at` passed), or key `kid` now
        (its tokens stop verifying), and destroy them in the backend. The key that signs now
        and a key published ahead are refused (ValueError): rotate instead."""
        await self.load()
        now = self.clock.now()
        current = self.signing_key()
        if kid is None:
            gone = [k for k in self._keys if k.retire_at is not None and k.retire_at <= now]
        else:
            gone = [k for k in self._keys if k.kid == kid]
            if not gone:
                raise ValueError(f"no key {kid} in the ring")
            if gone[0] is current or gone[0].active_from > now:
                raise ValueError(
                    f"key {kid} signs now or is published ahead to sign: rotate first "
                    "(keys rotate, or keys rotate --compromised)"
                )
        if gone:
            await self._write([k for k in self._keys if k not in gone], [k.kid for k in gone])
        return gone

    async def replace_compromised(self) -> SigningKey:
        """A key leaked: replace the whole ring by a new key that signs now. The old keys
        leave the JWKS at once (every replica within REFRESH_INTERVAL), so the tokens signed
        with them, genuine or forged, stop verifying once verifiers re-read the JWKS; no
        overlap, unlike `rotate` (RFC 7517 §5: the JWK Set is the set of keys verifiers
        accept; a leaked key stays trusted for as long as it is in it)."""
        raw = await self.store.get(self.store_key)  # not loaded: a deleted key may not load
        old = [str(rec["kid"]) for rec in orjson.loads(raw)] if raw else []
        nxt = self._new_key(self.clock.now())
        await self._write([nxt], [kid for kid in old if kid != nxt.kid])
        return nxt
