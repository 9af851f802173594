"""Verifiers refuse non-canonical (high-s) ES256 signatures; did-auth signs with low s.

Attack (ECDSA malleability): for any valid signature (r, s), (r, n - s) is valid too. From
one access token anyone can compute a second, byte-different token with the same claims
that an unhardened verifier accepts: a fresh string for every cache, log de-duplication or
deny-list keyed on the token. `did_auth.verifier` now accepts only the low-s form
(s <= n/2), and the issuer normalises its ES256 signatures so that its own tokens pass
(before, about half of them were high-s).
"""

from __future__ import annotations

import pytest

from did_auth.verifier import InvalidToken, JWKSCache, TokenVerifier
from did_auth.verifier._jose import b64url_decode, b64url_encode
from tests.fixtures.servers import LiveServer
from tests.live_login import access_token

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551




def _s(token: str) -> int:
    return int.from_bytes(b64url_decode(token.rsplit(".", 1)[1])[32:], "big")


def _twin(token: str) -> str:
    """The same token with the other valid signature (r, n - s)."""
    head, _, sig64 = token.rpartition(".")
    sig = b64url_decode(sig64)
    s = int.from_bytes(sig[32:], "big")
    return head + "." + b64url_encode(sig[:32] + (P256_N - s).to_bytes(32, "big"))


@pytest.fixture
def verifier(live_server: LiveServer) -> TokenVerifier:
    jwks = JWKSCache.for_issuer(live_server.url)
    return TokenVerifier(live_server.url, "trading-api", jwks)


def test_issuer_signs_every_access_token_with_low_s(live_server: LiveServer) -> None:
    # 32 tokens: with random s, all low by chance has probability 2**-32.
    high = [t for t in (access_token(live_server.url) for _ in range(32)) if _s(t) > P256_N // 2]
    assert high == [], f"{len(high)} of 32 tokens carry a high-s signature"


def test_high_s_twin_of_a_valid_token_is_refused(
    live_server: LiveServer, verifier: TokenVerifier
) -> None:
    token = access_token(live_server.url)
    assert verifier.verify(token).sub.startswith("did:pkh:")
    twin = _twin(token)
    assert twin != token and _s(twin) > P256_N // 2
    with pytest.raises(InvalidToken) as info:
        verifier.verify(twin)
    assert info.value.reason == "signature"
    # Refused even by a verifier that has never seen the original (no warm-cache effect).
    fresh = TokenVerifier(
        live_server.url, "trading-api", JWKSCache.for_issuer(live_server.url)
    )
    with pytest.raises(InvalidToken):
        fresh.verify(twin)
    assert fresh.verify(token).sub == verifier.verify(token).sub
