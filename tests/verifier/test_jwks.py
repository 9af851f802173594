"""JWKS cache: TTL, unknown-kid refetch with cool-down, fail closed, key parsing rules."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from did_auth.core.clock import FixedClock
from did_auth.verifier import InvalidToken, JWKSCache, TemporarilyUnavailable, parse_jwks
from did_auth.verifier._jose import b64url_encode, public_jwk

from .conftest import JWKS_URL, FakeIssuer


def make_cache(issuer: FakeIssuer, clock: FixedClock, **kw: Any) -> JWKSCache:
    return JWKSCache(JWKS_URL, fetch=issuer.fetch, clock=clock, **kw)


def test_keys_fetched_once_and_cached_for_ttl(issuer: FakeIssuer, clock: FixedClock):
    cache = make_cache(issuer, clock, ttl=300)
    first = cache.get_key("es-1")
    for _ in range(10):
        assert cache.get_key("es-1") is first
        assert cache.get_key("ed-1").alg == "EdDSA"
    assert len(issuer.fetches) == 1
    clock.advance(299)
    cache.get_key("es-1")
    assert len(issuer.fetches) == 1
    clock.advance(1)  # TTL expired
    cache.get_key("es-1")
    assert len(issuer.fetches) == 2
    assert cache.fetch_count == 2 and cache.generation == 2


def test_unknown_kid_refetch_with_cooldown(issuer: FakeIssuer, clock: FixedClock):
    cache = make_cache(issuer, clock, ttl=300, cooldown=30)
    cache.get_key("es-1")
    assert len(issuer.fetches) == 1
    # the first unknown kid refetches at once (a routine fetch starts no cool-down) ...
    for _ in range(20):
        with pytest.raises(InvalidToken):
            cache.get_key("new")
    assert len(issuer.fetches) == 2  # ... and exactly one refetch per cool-down
    clock.advance(30)
    for _ in range(20):
        with pytest.raises(InvalidToken):
            cache.get_key("new")
    assert len(issuer.fetches) == 3
    clock.advance(10)
    issuer.add_key("new", ec.generate_private_key(ec.SECP256R1()))  # rotation: published
    with pytest.raises(InvalidToken):
        cache.get_key("new")  # still cooling down
    assert len(issuer.fetches) == 3
    clock.advance(20)
    assert cache.get_key("new").alg == "ES256"
    assert len(issuer.fetches) == 4
    assert cache.get_key("new") is cache.get_key("new")
    assert len(issuer.fetches) == 4


def test_fail_closed_when_jwks_down_and_nothing_cached(issuer: FakeIssuer, clock: FixedClock):
    cache = make_cache(issuer, clock, retry_after_failure=5)
    issuer.down = True
    with pytest.raises(TemporarilyUnavailable):
        cache.get_key("es-1")
    with pytest.raises(TemporarilyUnavailable):
        cache.get_key("es-1")
    assert len(issuer.fetches) == 1  # no hammering while down
    clock.advance(5)
    with pytest.raises(TemporarilyUnavailable):
        cache.get_key("es-1")
    assert len(issuer.fetches) == 2
    issuer.down = False
    clock.advance(5)
    assert cache.get_key("es-1").alg == "ES256"


def test_stale_keys_used_while_issuer_down_then_fail_closed(issuer: FakeIssuer, clock: FixedClock):
    cache = make_cache(issuer, clock, ttl=300, max_stale=600, retry_after_failure=5)
    key = cache.get_key("es-1")
    issuer.down = True
    clock.advance(301)
    assert cache.get_key("es-1") is key  # refresh failed: stale key kept
    assert len(issuer.fetches) == 2
    clock.advance(600)  # beyond ttl + max_stale
    with pytest.raises(TemporarilyUnavailable):
        cache.get_key("es-1")


def test_unknown_kid_while_issuer_down_is_unavailable(issuer: FakeIssuer, clock: FixedClock):
    cache = make_cache(issuer, clock, cooldown=30)
    cache.get_key("es-1")
    issuer.down = True
    clock.advance(30)
    with pytest.raises(TemporarilyUnavailable):
        cache.get_key("rotated-in")


def test_empty_or_invalid_jwks_keeps_previous_keys(issuer: FakeIssuer, clock: FixedClock):
    documents: list[Any] = [issuer.jwks(), {"keys": []}, {"nope": 1}, [1, 2]]

    def fetch(url: str) -> Any:
        return documents.pop(0)

    cache = JWKSCache(JWKS_URL, fetch=fetch, clock=clock, ttl=10)
    key = cache.get_key("es-1")
    for _ in range(3):
        clock.advance(10)
        assert cache.get_key("es-1") is key
    assert cache.generation == 1


def test_refresh_and_would_fetch(issuer: FakeIssuer, clock: FixedClock):
    cache = make_cache(issuer, clock, cooldown=30)
    assert cache.would_fetch("es-1")
    assert cache.refresh()
    assert not cache.would_fetch("es-1")
    assert cache.would_fetch("unknown")  # a routine refresh starts no unknown-kid cool-down
    with pytest.raises(InvalidToken):
        cache.get_key("unknown")
    assert not cache.would_fetch("unknown")  # cooling down
    clock.advance(30)
    assert cache.would_fetch("unknown")
    assert cache.is_fresh()


def test_for_issuer_url(issuer: FakeIssuer, clock: FixedClock):
    cache = JWKSCache.for_issuer("https://issuer.example/", fetch=issuer.fetch, clock=clock)
    assert cache.url == JWKS_URL
    cache.get_key("es-1")


def test_insecure_urls_refused():
    for url in ("http://issuer.example/jwks", "file:///etc/passwd", "ftp://x/y", "jwks.json"):
        with pytest.raises(ValueError):
            JWKSCache(url)
    JWKSCache("http://127.0.0.1:8000/.well-known/jwks.json")
    JWKSCache("http://localhost:8000/.well-known/jwks.json")
    JWKSCache("http://issuer.internal/jwks", allow_insecure_http=True)
    with pytest.raises(ValueError):
        JWKSCache("https://issuer.example/jwks", allowed_algs=("HS256",))


# -- parsing ----------------------------------------------------------------------------


def _jwk(key: Any, **extra: Any) -> dict[str, Any]:
    alg, jwk = public_jwk(key.public_key())
    return {**jwk, "alg": alg, "use": "sig", **extra}


def test_alg_comes_from_the_jwk_and_must_be_allowed():
    es = ec.generate_private_key(ec.SECP256R1())
    ed = ed25519.Ed25519PrivateKey.generate()
    k1 = ec.generate_private_key(ec.SECP256K1())
    keys = parse_jwks(
        {
            "keys": [
                _jwk(es, kid="ok-es"),
                _jwk(ed, kid="ok-ed"),
                _jwk(es, kid="no-alg", alg=None),
                _jwk(es, kid="hs", alg="HS256"),
                _jwk(es, kid="wrong-alg-for-kty", alg="EdDSA"),
                _jwk(ed, kid="ed-as-es", alg="ES256"),
                _jwk(k1, kid="es256k"),  # not allowed for access tokens
                _jwk(es, kid="enc", use="enc"),
                _jwk(es, kid="ops", key_ops=["encrypt"]),
                _jwk(es, kid="ops-ok", key_ops=["verify"]),
                {**_jwk(es, kid="private"), "d": b64url_encode(b"\x01" * 32)},
                {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "oct"},
                {"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "RS256", "kid": "rsa"},
                _jwk(es, kid=None),
                "not-a-key",
            ]
        }
    )
    assert sorted(keys) == ["ok-ed", "ok-es", "ops-ok"]
    assert keys["ok-es"].alg == "ES256" and keys["ok-ed"].alg == "EdDSA"


def test_invalid_points_and_sizes_rejected():
    es = ec.generate_private_key(ec.SECP256R1())
    good = _jwk(es, kid="k")
    off_curve = {**good, "y": b64url_encode(b"\x01" * 32)}
    short = {**good, "x": b64url_encode(b"\x01" * 31)}
    padded = {**good, "x": good["x"] + "="}
    assert parse_jwks({"keys": [off_curve]}) == {}
    assert parse_jwks({"keys": [short]}) == {}
    assert parse_jwks({"keys": [padded]}) == {}


def test_duplicate_kid_dropped():
    a = ec.generate_private_key(ec.SECP256R1())
    b = ec.generate_private_key(ec.SECP256R1())
    keys = parse_jwks({"keys": [_jwk(a, kid="dup"), _jwk(b, kid="dup"), _jwk(a, kid="x")]})
    assert sorted(keys) == ["x"]


def test_stale_key_served_while_another_thread_refreshes(issuer: FakeIssuer, clock: FixedClock):
    import threading

    entered, release = threading.Event(), threading.Event()

    def slow_fetch(url: str) -> Any:
        if issuer.fetches:  # every fetch after the first one hangs until released
            entered.set()
            assert release.wait(10)
        return issuer.fetch(url)

    cache = JWKSCache(JWKS_URL, fetch=slow_fetch, clock=clock, ttl=300)
    key = cache.get_key("es-1")
    clock.advance(301)
    refresher = threading.Thread(target=cache.get_key, args=("es-1",))
    refresher.start()
    try:
        assert entered.wait(10)
        assert cache.get_key("es-1") is key  # not blocked behind the slow refresh
    finally:
        release.set()
        refresher.join(10)
    assert cache.generation == 2
