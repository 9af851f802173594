"""The issuer's JWKS, fetched only from the configured URL and cached.

* Keys come only from `jwks_url` (the issuer's `/.well-known/jwks.json` or an explicit URL),
  never from a token: RFC 9068 §4 "The resource server MUST use the keys provided by the
  authorization server"; RFC 8725 §3.10 warns that following `jku`/`x5u` "could result in
  server-side request forgery (SSRF) attacks". (`TokenVerifier` rejects tokens carrying
  `jku`, `x5u`, `jwk` or `x5c`.)
* Each key is parsed once into a `cryptography` key object bound to the algorithm named by
  the JWK's own `alg` member, which must be on the allow-list (ES256, EdDSA). RFC 8725 §3.1:
  "each key MUST be used with exactly one algorithm, and this MUST be checked when the
  cryptographic operation is performed."
* Cached for `ttl` seconds; an unknown `kid` triggers a refetch at most once per `cooldown`
  (so a flood of tokens with random `kid`s cannot turn the verifier into a JWKS hammer).
* Fail closed: when no usable key set can be obtained the answer is
  `TemporarilyUnavailable`, never "skip the check". A stale key set is kept (for at most
  `max_stale` seconds past its TTL) while the issuer is unreachable, so an outage of the
  issuer does not instantly take down every resource server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from did_auth_verifier._http import JsonFetch, check_url, make_fetch
from did_auth_verifier.clock import Clock, SystemClock
from did_auth_verifier.errors import InvalidToken, TemporarilyUnavailable
from did_auth_verifier.jose import JoseError, PublicKey, public_key_from_jwk

__all__ = ["DEFAULT_TOKEN_ALGS", "JWKSCache", "parse_jwks"]

log = logging.getLogger("did_auth_verifier.jwks")

DEFAULT_TOKEN_ALGS: tuple[str, ...] = ("ES256", "EdDSA")


def parse_jwks(
    document: Any, *, allowed_algs: Iterable[str] = DEFAULT_TOKEN_ALGS
) -> dict[str, PublicKey]:
    """Parse a JWK Set into `{kid: PublicKey}`, skipping keys that are not usable.

    A usable key has a string `kid`, `use` absent or `"sig"`, `key_ops` absent or containing
    `"verify"`, an `alg` on the allow-list that matches its `kty`/`crv`, and no private
    members. A `kid` appearing twice is ambiguous and dropped entirely.
    """
    allowed = frozenset(allowed_algs)
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise JoseError("JWKS document has no 'keys' array")
    keys: dict[str, PublicKey] = {}
    duplicates: set[str] = set()
    for index, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, Mapping):
            log.warning("JWKS key #%d ignored: not an object", index)
            continue
        kid = jwk.get("kid")
        alg = jwk.get("alg")
        use = jwk.get("use")
        key_ops = jwk.get("key_ops")
        if not isinstance(kid, str) or not kid:
            log.warning("JWKS key #%d ignored: no kid", index)
            continue
        if use is not None and use != "sig":
            continue
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            continue
        if not isinstance(alg, str) or alg not in allowed:
            # The allow-list comes from the JWK's `alg`, never from a token header.
            log.warning("JWKS key %r ignored: alg %r not allowed", kid, alg)
            continue
        try:
            key = public_key_from_jwk(jwk, alg=alg, allowed_algs=allowed)
        except JoseError as exc:
            log.warning("JWKS key %r ignored: %s", kid, exc)
            continue
        if kid in keys or kid in duplicates:
            duplicates.add(kid)
            keys.pop(kid, None)
            log.warning("JWKS kid %r appears more than once; ignored", kid)
            continue
        keys[kid] = key
    return keys


class JWKSCache:
    """Thread-safe cache of the issuer's verification keys.

    `fetch(url) -> JSON` may be injected (tests, custom transports); by default a stdlib
    HTTP GET that refuses redirects and plain http to non-loopback hosts.
    """

    def __init__(
        self,
        jwks_url: str,
        *,
        fetch: JsonFetch | None = None,
        ttl: float = 300.0,
        cooldown: float = 30.0,
        clock: Clock | None = None,
        max_stale: float = 3600.0,
        retry_after_failure: float = 5.0,
        timeout: float = 5.0,
        allowed_algs: Iterable[str] = DEFAULT_TOKEN_ALGS,
        allow_insecure_http: bool = False,
    ) -> None:
        if ttl <= 0 or cooldown < 0 or max_stale < 0 or retry_after_failure < 0:
            raise ValueError("ttl must be > 0; cooldown, max_stale, retry must be >= 0")
        self._url = check_url(jwks_url, allow_insecure_http=allow_insecure_http)
        self._fetch = fetch if fetch is not None else make_fetch(timeout=timeout)
        self._ttl = float(ttl)
        self._cooldown = float(cooldown)
        self._max_stale = float(max_stale)
        self._retry_after_failure = float(retry_after_failure)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._allowed_algs = tuple(allowed_algs)
        for alg in self._allowed_algs:
            if alg not in DEFAULT_TOKEN_ALGS:
                raise ValueError(f"algorithm {alg!r} is not supported for access tokens")
        self._lock = threading.Lock()
        self._keys: Mapping[str, PublicKey] | None = None
        self._fetched_at = float("-inf")  # last successful fetch
        self._attempted_at = float("-inf")  # last attempt, successful or not
        # Last refetch *triggered by an unknown kid*: the cool-down bounds only these, so a
        # key rotated in shortly after a routine fetch is still picked up at once.
        self._kid_refetch_at = float("-inf")
        self._last_failed = False
        self._fetch_count = 0
        self._generation = 0

    @classmethod
    def for_issuer(cls, issuer: str, **kwargs: Any) -> JWKSCache:
        """The cache for `{issuer}/.well-known/jwks.json` (the interface's JWKS location)."""
        return cls(issuer.rstrip("/") + "/.well-known/jwks.json", **kwargs)

    @property
    def url(self) -> str:
        return self._url

    @property
    def fetch_count(self) -> int:
        """Number of fetch attempts so far (successful or not)."""
        return self._fetch_count

    @property
    def generation(self) -> int:
        """Incremented on every successful refresh."""
        return self._generation

    @property
    def allowed_algs(self) -> tuple[str, ...]:
        return self._allowed_algs

    def current_keys(self) -> Mapping[str, PublicKey]:
        """The keys held right now (no fetch)."""
        return self._keys if self._keys is not None else MappingProxyType({})

    def is_fresh(self) -> bool:
        return self._keys is not None and self._clock.now() < self._fetched_at + self._ttl

    def would_fetch(self, kid: str) -> bool:
        """Whether `get_key(kid)` would do network I/O now (lets async callers offload it)."""
        now = self._clock.now()
        keys = self._keys
        if keys is None or now >= self._fetched_at + self._ttl:
            return self._may_attempt_stale(now)
        return kid not in keys and now - self._kid_refetch_at >= self._cooldown

    def get_key(self, kid: str) -> PublicKey:
        """The key for `kid`; raises `InvalidToken` (unknown kid) or `TemporarilyUnavailable`."""
        now = self._clock.now()
        keys = self._keys
        if keys is not None and now < self._fetched_at + self._ttl:
            key = keys.get(kid)
            if key is not None:
                return key
            return self._unknown_kid(kid, now)
        return self._stale_or_absent(kid, now)

    def refresh(self) -> bool:
        """Fetch now, ignoring TTL and cool-down. True when a usable key set was loaded."""
        with self._lock:
            return self._do_fetch(self._clock.now())

    # -- internals ---------------------------------------------------------------------

    def _may_attempt_stale(self, now: float) -> bool:
        if not self._last_failed:
            return True
        return now - self._attempted_at >= self._retry_after_failure

    def _unknown_kid(self, kid: str, now: float) -> PublicKey:
        with self._lock:
            keys = self._keys
            if keys is not None and kid in keys:  # another thread refreshed meanwhile
                return keys[kid]
            if now - self._kid_refetch_at >= self._cooldown and self._may_attempt_stale(now):
                self._kid_refetch_at = now
                self._do_fetch(now)
                keys = self._keys
                if keys is not None and kid in keys:
                    return keys[kid]
            last_failed = self._last_failed
        if last_failed:
            # We cannot tell a freshly rotated key from a bogus one: fail closed with 503.
            raise TemporarilyUnavailable(
                "the issuer's JWKS is unreachable", reason="jwks_unavailable"
            )
        raise InvalidToken("unknown key id", reason="unknown_kid")

    def _stale_or_absent(self, kid: str, now: float) -> PublicKey:
        keys = self._keys
        if keys is not None and now < self._fetched_at + self._ttl + self._max_stale:
            # Another thread is already refreshing: serve the (still usable) stale key rather
            # than queueing every request behind one network round trip.
            if not self._lock.acquire(blocking=False):
                key = keys.get(kid)
                if key is not None:
                    return key
                self._lock.acquire()
        else:
            self._lock.acquire()
        try:
            key = self._refresh_stale_locked(kid, now)
        finally:
            self._lock.release()
        if key is not None:
            return key
        # Not in the (possibly stale) set: same rules as an unknown kid in a fresh set.
        return self._unknown_kid(kid, now)

    def _refresh_stale_locked(self, kid: str, now: float) -> PublicKey | None:
        stale = self._keys is None or now >= self._fetched_at + self._ttl
        if stale and self._may_attempt_stale(now):
            self._do_fetch(now)
        keys = self._keys
        if keys is None or now >= self._fetched_at + self._ttl + self._max_stale:
            raise TemporarilyUnavailable(
                "the issuer's JWKS is unreachable", reason="jwks_unavailable"
            )
        return keys.get(kid)

    def _do_fetch(self, now: float) -> bool:
        """Fetch and swap the key set; the caller holds the lock."""
        self._attempted_at = now
        self._fetch_count += 1
        try:
            document = self._fetch(self._url)
            keys = parse_jwks(document, allowed_algs=self._allowed_algs)
        except Exception as exc:  # any transport/parse failure: keep what we have
            self._last_failed = True
            log.warning("JWKS fetch from %s failed: %s", self._url, type(exc).__name__)
            return False
        if not keys:
            self._last_failed = True
            log.warning("JWKS at %s has no usable keys; keeping the previous set", self._url)
            return False
        previous = self._keys or {}
        for kid, key in keys.items():
            old = previous.get(kid)
            if old is not None and old.alg == key.alg and old.jwk == key.jwk:
                # Same key as before: keep the same object so verified-token cache entries
                # (which remember their key) stay valid across refreshes.
                keys[kid] = old
        self._keys = MappingProxyType(keys)
        self._fetched_at = now
        self._last_failed = False
        self._generation += 1
        return True
