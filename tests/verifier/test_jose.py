"""`did_auth_verifier.jose`, the one JOSE and encoding module of the verifier and the server."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from did_auth_verifier import jose
from did_auth_verifier.jose import JoseError

from .conftest import AUDIENCE, ISSUER, T0, FakeIssuer

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def test_base64url_round_trip_and_strictness():
    for n in range(0, 40):
        data = bytes(range(n))
        text = jose.b64url_encode(data)
        assert "=" not in text and "+" not in text and "/" not in text
        assert jose.b64url_decode(text) == data
    for bad in ("AA==", "A", "AB+/", "AB/", "A B", "é"):
        with pytest.raises(JoseError):
            jose.b64url_decode(bad)


def test_base64url_refuses_non_zero_pad_bits():
    # RFC 4648 §3.5: "AB" and "AA" would both decode to b"\x00" in a lenient decoder.
    assert jose.b64url_decode("AA") == b"\x00"
    with pytest.raises(JoseError, match="non-canonical"):
        jose.b64url_decode("AB")
    assert jose.b64url_decode("AAE") == b"\x00\x01"
    with pytest.raises(JoseError, match="non-canonical"):
        jose.b64url_decode("AAF")


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1, "a": 2}',
        b'{"x": {"b": 1, "b": 1}}',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        '{"a": 1}'.encode("utf-16"),
        b'{"a": "\xff"}',
        b"[1, 2]",
        b"",
        b'{"htu": "https://api.example/\\ud800"}',
        b'{"\\udc00": 1}',
    ],
)
def test_strict_json_objects(text: bytes):
    with pytest.raises(JoseError):
        jose.parse_json_object(text)


def test_paired_surrogate_escapes_are_text():
    assert jose.parse_json_object(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


def test_json_dumps_is_compact_utf8():
    assert jose.json_dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    with pytest.raises(JoseError):
        jose.json_dumps({"a": float("nan")})


def test_rfc7638_thumbprint_vector():
    # RFC 7638 §3.1 example key and its thumbprint.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
        "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
        "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
        "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jose.jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    for bad in ({"kty": "EC", "crv": "P-256", "x": "AA"}, {"kty": "XX"}, "not a jwk"):
        with pytest.raises(JoseError):
            jose.jwk_thumbprint(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "private",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP256K1()),
        ed25519.Ed25519PrivateKey.generate,
    ],
    ids=["ES256", "ES256K", "EdDSA"],
)
def test_sign_parse_verify_round_trip(private):
    key = private()
    alg, jwk = jose.public_jwk(key.public_key())
    public = jose.public_key_from_jwk(jwk, alg=alg, allowed_algs=(alg,))
    assert jose.jwk_thumbprint(jwk) == jose.jwk_thumbprint(public.jwk)
    for i in range(8):
        token = jose.sign_jws(key, {"alg": alg, "typ": "JWT"}, {"i": i})
        parsed = jose.parse_compact(token)
        assert parsed.header == {"alg": alg, "typ": "JWT"} and parsed.claims == {"i": i}
        assert public.verify(parsed.signing_input, parsed.signature, canonical_only=True)
        assert not public.verify(parsed.signing_input + b"x", parsed.signature)
        if alg != "EdDSA":  # signing always emits the low-s form
            assert int.from_bytes(parsed.signature[32:], "big") <= _order(key) // 2


def _order(key: ec.EllipticCurvePrivateKey) -> int:
    if isinstance(key.curve, ec.SECP256R1):
        return P256_N
    return 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_canonical_only_refuses_the_high_s_twin():
    key = ec.generate_private_key(ec.SECP256R1())
    alg, jwk = jose.public_jwk(key.public_key())
    public = jose.public_key_from_jwk(jwk, alg=alg, allowed_algs=(alg,))
    parsed = jose.parse_compact(jose.sign_jws(key, {"alg": alg}, {"a": 1}))
    r, s = parsed.signature[:32], int.from_bytes(parsed.signature[32:], "big")
    twin = r + (P256_N - s).to_bytes(32, "big")
    assert public.verify(parsed.signing_input, twin)  # RFC 7518 §3.4 alone accepts it
    assert not public.verify(parsed.signing_input, twin, canonical_only=True)
    der = key.sign(parsed.signing_input, ec.ECDSA(jose.hashes.SHA256()))
    assert decode_dss_signature(der)  # DER is never a JWS signature
    assert not public.verify(parsed.signing_input, der)


@pytest.mark.parametrize(
    "token",
    ["a.b", "a.b.c.d", "e30.e30.!!", "W10.e30.", "e30.eyJhIjoxLCJhIjoyfQ."],
    ids=["two-parts", "four-parts", "bad-b64", "header-array", "duplicate-claim"],
)
def test_parse_compact_refuses(token: str):
    with pytest.raises(JoseError):
        jose.parse_compact(token)


def test_verifier_refuses_duplicate_claims_in_a_signed_token(verifier, issuer: FakeIssuer):
    """A token whose payload names `scope` twice is refused even with a valid signature:
    two parsers could read two different scopes from it (RFC 7515 §4)."""
    from did_auth_verifier import InvalidToken

    key = issuer.keys["es-1"]
    head = jose.b64url_encode(jose.json_dumps({"alg": "ES256", "typ": "at+jwt", "kid": "es-1"}))
    body_text = (
        f'{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"s","client_id":"c","jti":"j",'
        f'"iat":{int(T0)},"exp":{int(T0) + 300},"scope":"trade:read","scope":"wallet:withdraw"}}'
    )
    body = jose.b64url_encode(body_text.encode())
    der = key.sign(f"{head}.{body}".encode(), ec.ECDSA(jose.hashes.SHA256()))
    r, s = decode_dss_signature(der)
    s = min(s, P256_N - s)
    sig = jose.b64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    with pytest.raises(InvalidToken):
        verifier.verify(f"{head}.{body}.{sig}")
