"""Unit tests for `TokenVerifier`: every rejection reason, the warm cache, binding rules."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from did_auth.core.clock import FixedClock
from did_auth.verifier import (
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidDpopProof,
    InvalidToken,
    JWKSCache,
    RevocationSet,
    TemporarilyUnavailable,
    TokenVerifier,
    make_dpop_proof,
)
from did_auth.verifier._jose import PublicKey

from .conftest import API, AUDIENCE, DROP, ISSUER, FakeIssuer, thumbprint_of
from .test_attacks import ATTACKS, _attack_tokens

EXPECTED_REASON = {
    "alg_none": "unsigned",
    "alg_none_with_signature": "alg",
    "alg_none_capitalised": "alg",
    "hs256_with_public_key_pem": "alg",
    "hs256_with_public_jwk": "alg",
    "kid_not_in_jwks": "unknown_kid",
    "kid_missing": "kid",
    "forged_signature_known_kid": "signature",
    "alg_differs_from_key_alg": "alg_mismatch",
    "jku_header": "header",
    "jku_header_with_valid_signature": "header",
    "x5u_header": "header",
    "jwk_header": "header",
    "x5c_header": "header",
    "crit_header": "header",
    "typ_jwt": "typ",
    "typ_missing": "typ",
    "typ_dpop": "typ",
    "wrong_iss": "iss",
    "iss_trailing_slash": "iss",
    "iss_missing": "iss",
    "wrong_aud": "aud",
    "wrong_aud_list": "aud",
    "aud_missing": "aud",
    "expired": "expired",
    "exp_missing": "exp_missing",
    "exp_not_a_number": "exp_missing",
    "nbf_in_future": "not_yet_valid",
    "iat_in_future": "iat_future",
    "iat_missing": "iat_missing",
    "sub_missing": "sub_missing",
    "client_id_missing": "client_id_missing",
    "jti_missing": "jti_missing",
    "unsupported_cnf": "cnf",
    "tampered_payload": "signature",
    "tampered_header": "signature",
    "stripped_signature": "unsigned",
    "two_segments": "malformed",
    "jwe_shaped": "malformed",
    "signature_padding": "malformed",
    "garbage": "malformed",
}


def test_every_attack_has_an_expected_reason():
    assert sorted(EXPECTED_REASON) == sorted(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_rejected_for_the_right_reason(
    verifier: TokenVerifier, issuer: FakeIssuer, attack: str
):
    token = _attack_tokens(issuer)[attack]
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token, required_scopes=("account:read",))
    assert info.value.reason == EXPECTED_REASON[attack]
    assert info.value.status == 401 and info.value.code == "invalid_token"


def test_alg_none_and_hs256_never_trigger_a_jwks_fetch(verifier: TokenVerifier, issuer: FakeIssuer):
    tokens = _attack_tokens(issuer)
    for attack in ("alg_none_with_signature", "hs256_with_public_key_pem"):
        with pytest.raises(InvalidToken):
            verifier.verify(tokens[attack])
    assert issuer.fetches == []


@pytest.mark.parametrize("kid", ["es-1", "ed-1"])
def test_valid_token(verifier: TokenVerifier, issuer: FakeIssuer, kid: str):
    token = verifier.verify(issuer.mint(kid=kid), required_scopes=("account:read", "trade:write"))
    assert token.iss == ISSUER and token.aud == (AUDIENCE,)
    assert token.scopes == {"account:read", "trade:write"}
    assert token.token_type == "Bearer" and token.dpop is None and token.cnf_jkt is None
    assert token.kid == kid and token.alg == ("ES256" if kid == "es-1" else "EdDSA")
    assert token.amr == ("siwe",)
    assert token.sid is not None and token.sid.startswith("0x")
    assert "eyJ" not in repr(token)


def test_typ_variants_accepted(verifier: TokenVerifier, issuer: FakeIssuer):
    for typ in ("at+jwt", "application/at+jwt", "AT+JWT"):
        verifier.verify(issuer.mint(header={"typ": typ}))


def test_audience_list_containing_ours(verifier: TokenVerifier, issuer: FakeIssuer):
    token = verifier.verify(issuer.mint(aud=["wallet-api", AUDIENCE]))
    assert token.aud == ("wallet-api", AUDIENCE)


def test_leeway(verifier: TokenVerifier, issuer: FakeIssuer, clock: FixedClock):
    now = int(clock.now())
    verifier.verify(issuer.mint(exp=now - 29, iat=now - 300))  # within 30 s leeway
    verifier.verify(issuer.mint(iat=now + 29, nbf=now + 29))
    with pytest.raises(InvalidToken):
        verifier.verify(issuer.mint(exp=now - 30, iat=now - 300))


def test_claims_are_read_only(verifier: TokenVerifier, issuer: FakeIssuer):
    token = verifier.verify(issuer.mint(cnf=DROP, extra={"nested": [1, {"a": 2}]}))
    with pytest.raises(TypeError):
        token.claims["sub"] = "someone else"  # type: ignore[index]
    with pytest.raises(TypeError):
        token.claims["extra"]["nested"][1]["a"] = 3  # type: ignore[index]


def test_malformed_optional_claims(verifier: TokenVerifier, issuer: FakeIssuer):
    for claims in ({"scope": ["a"]}, {"amr": "otp"}, {"auth_time": "now"}, {"sid": 5}):
        with pytest.raises(InvalidToken) as info:
            verifier.verify(issuer.mint(**claims))
        assert info.value.reason == "malformed"


def test_missing_scope_is_insufficient_scope(verifier: TokenVerifier, issuer: FakeIssuer):
    with pytest.raises(InsufficientScope) as info:
        verifier.verify(issuer.mint(scope="account:read"), required_scopes=("trade:write",))
    assert info.value.status == 403 and info.value.code == "insufficient_scope"
    assert info.value.required_scopes == ("trade:write",)


def test_step_up(verifier: TokenVerifier, issuer: FakeIssuer, clock: FixedClock):
    ok = issuer.mint(amr=["siwe", "otp"])
    verifier.verify(ok, step_up_max_age=60)
    with pytest.raises(InsufficientUserAuthentication) as info:
        verifier.verify(issuer.mint(amr=["siwe"]), step_up_max_age=60)
    assert info.value.max_age == 60 and info.value.status == 401
    clock.advance(61)
    with pytest.raises(InsufficientUserAuthentication):
        verifier.verify(ok, step_up_max_age=60)


# -- the warm cache ---------------------------------------------------------------------


@pytest.fixture
def count_signatures(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = PublicKey.verify

    def counting(self: PublicKey, signing_input: bytes, signature: bytes, **kw: bool) -> bool:
        calls[0] += 1
        return original(self, signing_input, signature, **kw)

    monkeypatch.setattr(PublicKey, "verify", counting)
    return calls


def test_warm_cache_skips_signature_verification(
    verifier: TokenVerifier, issuer: FakeIssuer, count_signatures: list[int]
):
    token = issuer.mint()
    for _ in range(5):
        verifier.verify(token)
    assert count_signatures[0] == 1
    assert verifier.cache_info() == 1


def test_warm_cache_still_checks_expiry(
    verifier: TokenVerifier, issuer: FakeIssuer, clock: FixedClock
):
    token = issuer.mint()
    verifier.verify(token)
    clock.advance(330)
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert info.value.reason == "expired"


def test_warm_cache_still_checks_scopes(verifier: TokenVerifier, issuer: FakeIssuer):
    token = issuer.mint(scope="account:read")
    verifier.verify(token, required_scopes=("account:read",))
    with pytest.raises(InsufficientScope):
        verifier.verify(token, required_scopes=("trade:write",))


@pytest.mark.parametrize("entry", ["jti", "sid", "sub_before", "sub_all"])
def test_revoked_token_rejected_even_when_cached(
    verifier: TokenVerifier,
    issuer: FakeIssuer,
    revocations: RevocationSet,
    count_signatures: list[int],
    entry: str,
):
    token = issuer.mint()
    verified = verifier.verify(token)
    verifier.verify(token)
    assert count_signatures[0] == 1  # cached
    exp = verified.exp
    revocations.apply(
        [
            {
                "jti": {"jti": verified.jti, "exp": exp},
                "sid": {"sid": verified.sid, "exp": exp},
                "sub_before": {"sub": verified.sub, "before": verified.auth_time, "exp": exp},
                "sub_all": {"sub": verified.sub, "exp": exp},
            }[entry]
        ]
    )
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert info.value.reason == "revoked"
    assert count_signatures[0] == 1  # rejected from the warm path


def test_revoked_before_spares_later_logins(
    verifier: TokenVerifier, issuer: FakeIssuer, revocations: RevocationSet, clock: FixedClock
):
    old = issuer.mint()
    now = int(clock.now())
    revocations.apply([{"sub": issuer.claims()["sub"], "before": now, "exp": now + 300}])
    clock.advance(10)
    new = issuer.mint()
    with pytest.raises(InvalidToken):
        verifier.verify(old)
    verifier.verify(new)


def test_broken_revocation_view_fails_closed(issuer: FakeIssuer, jwks: JWKSCache, clock):
    class Broken:
        def is_revoked(self, claims: object) -> bool:
            raise RuntimeError("boom")

    verifier = TokenVerifier(ISSUER, AUDIENCE, jwks, clock=clock, revocations=Broken())
    with pytest.raises(TemporarilyUnavailable):
        verifier.verify(issuer.mint())


def test_cached_token_rejected_once_its_key_leaves_the_jwks(
    verifier: TokenVerifier, issuer: FakeIssuer, jwks: JWKSCache, clock: FixedClock
):
    token = issuer.mint(kid="es-1", exp=int(clock.now()) + 900)
    verifier.verify(token)
    issuer.published.remove("es-1")  # key withdrawn (compromise / end of rotation)
    clock.advance(301)  # JWKS TTL elapsed
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert info.value.reason == "unknown_kid"


def test_cache_survives_a_jwks_refresh_with_the_same_key(
    verifier: TokenVerifier, issuer: FakeIssuer, clock: FixedClock, count_signatures: list[int]
):
    token = issuer.mint(exp=int(clock.now()) + 900)
    verifier.verify(token)
    clock.advance(301)
    verifier.verify(token)
    assert len(issuer.fetches) == 2
    assert count_signatures[0] == 1


def test_cache_is_bounded(issuer: FakeIssuer, jwks: JWKSCache, clock: FixedClock):
    verifier = TokenVerifier(
        ISSUER, AUDIENCE, jwks, clock=clock, verified_cache_size=3, follow_revocations=False
    )
    for _ in range(10):
        verifier.verify(issuer.mint())
    assert verifier.cache_info() == 3


def test_failures_are_not_cached(
    verifier: TokenVerifier, issuer: FakeIssuer, count_signatures: list[int]
):
    token = _attack_tokens(issuer)["forged_signature_known_kid"]
    for _ in range(3):
        with pytest.raises(InvalidToken):
            verifier.verify(token)
    assert count_signatures[0] == 3
    assert verifier.cache_info() == 0


# -- DPoP binding -----------------------------------------------------------------------


def test_dpop_binding(verifier: TokenVerifier, issuer: FakeIssuer, clock: FixedClock):
    key = ec.generate_private_key(ec.SECP256R1())
    token = issuer.mint(cnf={"jkt": thumbprint_of(key)})
    htu = f"{API}/account"

    def proof(**kw: object) -> str:
        return make_dpop_proof(key, htm="GET", htu=htu, access_token=token, clock=clock, **kw)  # type: ignore[arg-type]

    verified = verifier.verify(token, dpop_proof=proof(), htm="GET", htu=htu, scheme="DPoP")
    assert verified.token_type == "DPoP" and verified.dpop is not None
    assert verified.dpop.jkt == verified.cnf_jkt
    # scheme unknown (None): a bound token still needs its proof
    with pytest.raises(InvalidDpopProof):
        verifier.verify(token)
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token, dpop_proof=proof(), htm="GET", htu=htu, scheme="Bearer")
    assert info.value.reason == "dpop_bound_as_bearer"
    with pytest.raises(ValueError):
        verifier.verify(token, dpop_proof=proof(), scheme="DPoP")


def test_require_dpop(issuer: FakeIssuer, jwks: JWKSCache, clock: FixedClock):
    verifier = TokenVerifier(
        ISSUER, AUDIENCE, jwks, clock=clock, require_dpop=True, follow_revocations=False
    )
    with pytest.raises(InvalidToken) as info:
        verifier.verify(issuer.mint())
    assert info.value.reason == "dpop_required"


def test_would_block(verifier: TokenVerifier, issuer: FakeIssuer):
    token = issuer.mint()
    assert verifier.would_block(token)  # the JWKS has never been fetched
    verifier.verify(token)
    assert not verifier.would_block(token)
    assert not verifier.would_block("garbage")


def test_constructor_validation(jwks: JWKSCache):
    with pytest.raises(ValueError):
        TokenVerifier("", AUDIENCE, jwks)
    with pytest.raises(ValueError):
        TokenVerifier(ISSUER, AUDIENCE, jwks, leeway=3600)
