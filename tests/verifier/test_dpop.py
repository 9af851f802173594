"""DPoP (RFC 9449) proof checks, RFC 7638 thumbprints, htu normalisation, replay cache."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from did_auth.core.clock import FixedClock
from did_auth.verifier import (
    DPoPVerifier,
    InMemoryReplayCache,
    InvalidDpopProof,
    InvalidToken,
    TemporarilyUnavailable,
    UseDpopNonce,
    access_token_hash,
    jwk_thumbprint,
    make_dpop_proof,
    normalize_htu,
)
from did_auth.verifier._jose import b64url_encode, json_dumps, public_jwk, sign_jws

HTU = "https://api.example/account"

# RFC 7638 §3.1: the example RSA key (from RFC 7517 Appendix A.1) and its thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
        "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vM"
        "QFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc7638_thumbprint_vector():
    assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT
    # Only the required members count: optional ones and their order do not.
    reordered = {"e": "AQAB", "kty": "RSA", "n": RFC7638_JWK["n"], "use": "sig"}
    assert jwk_thumbprint(reordered) == RFC7638_THUMBPRINT


def test_thumbprints_for_our_key_types():
    for key in (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256K1()),
        ed25519.Ed25519PrivateKey.generate(),
    ):
        _, jwk = public_jwk(key.public_key())
        members = sorted(k for k in jwk if k in ("crv", "kty", "x", "y"))
        canonical = "{" + ",".join(f'"{m}":"{jwk[m]}"' for m in members) + "}"
        expected = b64url_encode(hashlib.sha256(canonical.encode()).digest())
        assert jwk_thumbprint({**jwk, "kid": "x", "alg": "whatever"}) == expected


@pytest.mark.parametrize(
    "jwk", [{}, {"kty": "EC", "crv": "P-256", "x": "a"}, {"kty": "XYZ"}, {"kty": "OKP", "x": 1}]
)
def test_thumbprint_of_malformed_jwk(jwk: dict[str, Any]):
    with pytest.raises(InvalidDpopProof):
        jwk_thumbprint(jwk)


def test_ath_rfc9449_example():
    # RFC 9449 §7.1, Figure 13: access token and the `ath` of its proof.
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://api.example/account", "HTTPS://API.EXAMPLE/account"),
        ("https://api.example/account", "https://api.example:443/account"),
        ("http://api.example/account", "http://api.example:80/account"),
        ("https://api.example", "https://api.example/"),
        ("https://api.example/a/b", "https://api.example/a/./c/../b"),
        ("https://api.example/%7Euser", "https://api.example/~user"),
        ("https://api.example/a%2fb", "https://api.example/a%2Fb"),
        ("https://api.example/account", "https://api.example/account?x=1#frag"),
        ("https://[::abcd]:8443/x", "https://[::ABCD]:8443/x?y=1"),
        ("https://api.example/a b", "https://api.example/a%20b"),
    ],
)
def test_htu_normalisation_equal(a: str, b: str):
    assert normalize_htu(a) == normalize_htu(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://api.example/account", "http://api.example/account"),
        ("https://api.example/account", "https://api.example:8443/account"),
        ("https://api.example/account", "https://api.example/Account"),
        ("https://api.example/a%2Fb", "https://api.example/a/b"),
        ("https://api.example/account", "https://evil.example/account"),
        ("https://api.example/account", "https://api.example/account/"),
    ],
)
def test_htu_normalisation_different(a: str, b: str):
    assert normalize_htu(a) != normalize_htu(b)


@pytest.mark.parametrize(
    "bad", ["ftp://api.example/x", "/account", "https:///x", "https://u:p@api.example/x", 5]
)
def test_htu_normalisation_rejects(bad: Any):
    with pytest.raises(ValueError):
        normalize_htu(bad)


# -- proof checks -------------------------------------------------------------------------


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def proof_with(
    key: Any, clock: FixedClock, *, header: dict[str, Any] | None = None, **claims: Any
) -> str:
    alg, jwk = public_jwk(key.public_key())
    hdr = {"typ": "dpop+jwt", "alg": alg, "jwk": jwk, **(header or {})}
    payload = {"jti": "jti-" + str(id(claims)), "htm": "GET", "htu": HTU, "iat": int(clock.now())}
    payload.update(claims)
    return sign_jws(key, {k: v for k, v in hdr.items() if v is not None}, payload)


@pytest.mark.parametrize("kind", ["es256", "eddsa"])
def test_valid_proof(dpop_verifier: DPoPVerifier, clock: FixedClock, kind: str):
    key = (
        ec.generate_private_key(ec.SECP256R1())
        if kind == "es256"
        else (ed25519.Ed25519PrivateKey.generate())
    )
    token = "access.token.value"
    proof = make_dpop_proof(key, htm="GET", htu=HTU + "?q=1", access_token=token, clock=clock)
    checked = dpop_verifier.verify_proof(proof, htm="GET", htu=HTU, access_token=token)
    assert checked.jkt == jwk_thumbprint(public_jwk(key.public_key())[1])
    assert checked.htu == HTU and checked.htm == "GET"
    assert checked.ath == access_token_hash(token)
    assert checked.alg == ("ES256" if kind == "es256" else "EdDSA")


def _expect(reason: str, fn: Any, exc: type[Exception] = InvalidDpopProof) -> None:
    with pytest.raises(exc) as info:
        fn()
    assert getattr(info.value, "reason", None) == reason, info.value


def test_proof_header_checks(dpop_verifier: DPoPVerifier, clock: FixedClock, key: Any):
    def check(proof: str) -> Any:
        return lambda: dpop_verifier.verify_proof(proof, htm="GET", htu=HTU)

    _expect("dpop_typ", check(proof_with(key, clock, header={"typ": "jwt"})))
    _expect("dpop_typ", check(proof_with(key, clock, header={"typ": None})))
    _expect("dpop_typ", check(proof_with(key, clock, header={"typ": "at+jwt"})))
    _expect("dpop_alg", check(proof_with(key, clock, header={"alg": "none"})))
    _expect("dpop_alg", check(proof_with(key, clock, header={"alg": "ES256K"})))
    _expect("dpop_jwk", check(proof_with(key, clock, header={"jwk": None})))
    _expect("dpop_header", check(proof_with(key, clock, header={"jku": "https://evil/"})))
    _expect("dpop_header", check(proof_with(key, clock, header={"crit": ["x"]})))
    # jwk and alg disagree (an EdDSA jwk in an ES256 proof)
    _, ed_jwk = public_jwk(ed25519.Ed25519PrivateKey.generate().public_key())
    _expect("dpop_jwk", check(proof_with(key, clock, header={"jwk": ed_jwk})))
    # RFC 9449 §4.2: the jwk "MUST NOT contain a private key"
    _, jwk = public_jwk(key.public_key())
    d = b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))
    _expect("dpop_jwk", check(proof_with(key, clock, header={"jwk": {**jwk, "d": d}})))
    # signed by another key than the embedded jwk
    other = ec.generate_private_key(ec.SECP256R1())
    _expect("dpop_signature", check(proof_with(other, clock, header={"jwk": jwk})))


def test_hs256_proof_rejected(dpop_verifier: DPoPVerifier, clock: FixedClock, key: Any):
    _, jwk = public_jwk(key.public_key())
    header = b64url_encode(json_dumps({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk}))
    payload = b64url_encode(json_dumps({"jti": "j", "htm": "GET", "htu": HTU, "iat": 1}))
    mac = hmac.new(json_dumps(jwk), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    _expect(
        "dpop_alg",
        lambda: dpop_verifier.verify_proof(
            f"{header}.{payload}.{b64url_encode(mac)}", htm="GET", htu=HTU
        ),
    )


def test_proof_claim_checks(dpop_verifier: DPoPVerifier, clock: FixedClock, key: Any):
    def check(proof: str, **kw: Any) -> Any:
        return lambda: dpop_verifier.verify_proof(proof, htm="GET", htu=HTU, **kw)

    now = int(clock.now())
    _expect("dpop_claims", check(proof_with(key, clock, jti="")))
    _expect("dpop_claims", check(proof_with(key, clock, jti="x" * 300)))
    _expect("dpop_claims", check(proof_with(key, clock, iat="now")))
    _expect("dpop_claims", check(proof_with(key, clock, htu=None)))
    _expect("dpop_htm", check(proof_with(key, clock, htm="POST")))
    _expect("dpop_htm", check(proof_with(key, clock, htm="get")))
    _expect("dpop_htu", check(proof_with(key, clock, htu="https://api.example/orders")))
    _expect("dpop_htu", check(proof_with(key, clock, htu="not a url")))
    _expect("dpop_iat", check(proof_with(key, clock, iat=now - 61)))
    _expect("dpop_iat", check(proof_with(key, clock, iat=now + 61)))
    _expect("dpop_ath", check(proof_with(key, clock), access_token="tok"))
    _expect("dpop_ath", check(proof_with(key, clock, ath="wrong"), access_token="tok"))
    _expect(
        "dpop_binding",
        check(proof_with(key, clock), jkt=RFC7638_THUMBPRINT),
        InvalidToken,
    )
    for garbage in ("", "a.b", "a.b.c", "x" * 5000, "é.é.é"):
        _expect("dpop_malformed", check(garbage))


def test_nonce(dpop_verifier: DPoPVerifier, clock: FixedClock, key: Any):
    with pytest.raises(UseDpopNonce) as info:
        dpop_verifier.verify_proof(proof_with(key, clock), htm="GET", htu=HTU, nonce="n-1")
    assert info.value.nonce == "n-1"
    with pytest.raises(UseDpopNonce):
        dpop_verifier.verify_proof(
            proof_with(key, clock, nonce="old"), htm="GET", htu=HTU, nonce="n-1"
        )
    dpop_verifier.verify_proof(proof_with(key, clock, nonce="n-1"), htm="GET", htu=HTU, nonce="n-1")
    accepted = {"n-2"}
    dpop_verifier.verify_proof(
        proof_with(key, clock, nonce="n-2"), htm="GET", htu=HTU, nonce=accepted.__contains__
    )


def test_replay_detected_within_the_window(dpop_verifier: DPoPVerifier, clock: FixedClock, key):
    proof = make_dpop_proof(key, htm="GET", htu=HTU, clock=clock)
    dpop_verifier.verify_proof(proof, htm="GET", htu=HTU)
    _expect("dpop_replay", lambda: dpop_verifier.verify_proof(proof, htm="GET", htu=HTU))
    clock.advance(59)
    _expect("dpop_replay", lambda: dpop_verifier.verify_proof(proof, htm="GET", htu=HTU))
    clock.advance(5)  # the proof itself is now too old
    _expect("dpop_iat", lambda: dpop_verifier.verify_proof(proof, htm="GET", htu=HTU))


def test_failed_checks_do_not_consume_the_jti(dpop_verifier: DPoPVerifier, clock, key):
    proof = make_dpop_proof(key, htm="GET", htu=HTU, clock=clock)
    _expect("dpop_htm", lambda: dpop_verifier.verify_proof(proof, htm="POST", htu=HTU))
    dpop_verifier.verify_proof(proof, htm="GET", htu=HTU)


def test_replay_cache_bounded_fails_closed(clock: FixedClock, key: Any):
    cache = InMemoryReplayCache(max_entries=2, clock=clock)
    verifier = DPoPVerifier(cache, clock=clock)
    for _ in range(2):
        verifier.verify_proof(
            make_dpop_proof(key, htm="GET", htu=HTU, clock=clock), htm="GET", htu=HTU
        )
    with pytest.raises(TemporarilyUnavailable):
        verifier.verify_proof(
            make_dpop_proof(key, htm="GET", htu=HTU, clock=clock), htm="GET", htu=HTU
        )
    clock.advance(62)  # the first entries expired: room again
    verifier.verify_proof(make_dpop_proof(key, htm="GET", htu=HTU, clock=clock), htm="GET", htu=HTU)
    assert len(cache) == 1


def test_replay_cache_errors_fail_closed(clock: FixedClock, key: Any):
    class Down:
        def add_if_absent(self, key: str, ttl: float) -> bool:
            raise ConnectionError("redis down")

    verifier = DPoPVerifier(Down(), clock=clock)
    with pytest.raises(TemporarilyUnavailable):
        verifier.verify_proof(
            make_dpop_proof(key, htm="GET", htu=HTU, clock=clock), htm="GET", htu=HTU
        )


def test_verifier_configuration(clock: FixedClock):
    with pytest.raises(ValueError):
        DPoPVerifier(clock=clock, allowed_algs=("HS256",))
    with pytest.raises(ValueError):
        DPoPVerifier(clock=clock, allowed_algs=("none",))
    with pytest.raises(ValueError):
        DPoPVerifier(clock=clock, allowed_algs=())
    k1 = DPoPVerifier(clock=clock, allowed_algs=("ES256", "ES256K", "EdDSA"))
    key = ec.generate_private_key(ec.SECP256K1())
    proof = make_dpop_proof(key, htm="POST", htu="https://auth.example/token", clock=clock)
    assert k1.verify_proof(proof, htm="POST", htu="https://auth.example/token").alg == "ES256K"
