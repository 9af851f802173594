"""Token-attack suite against the example trading API (in-process over ASGI).

Each attack asserts the exact HTTP status and the `WWW-Authenticate` error (RFC 6750 §3,
RFC 9449 §7.1, RFC 9470 §3).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from did_auth.core.clock import FixedClock
from did_auth.verifier import RevocationSet, make_dpop_proof
from did_auth.verifier._jose import b64url_decode, b64url_encode, json_dumps, public_jwk, sign_jws

from .conftest import (
    API,
    AUDIENCE,
    DROP,
    FakeIssuer,
    hs256_jwt,
    parse_challenges,
    thumbprint_of,
    unsigned_jwt,
)

ORDER = {"symbol": "ETH-USDC", "side": "buy", "type": "limit", "quantity": "1.5", "price": "3000"}
WITHDRAWAL = {
    "asset": "USDC",
    "amount": "100",
    "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "network": "ethereum",
}
# RFC 9396 authorization_details of a withdrawal token for exactly WITHDRAWAL.
APPROVED = [
    {
        "type": "withdrawal",
        "audience": AUDIENCE,
        "asset": "USDC",
        "amount": "100",
        "destination": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "network": "ethereum",
    }
]


def withdrawal_token(issuer: FakeIssuer, **claims: Any) -> str:
    claims.setdefault("scope", "wallet:withdraw")
    claims.setdefault("amr", ["siwe", "otp", "mfa"])
    claims.setdefault("authorization_details", APPROVED)
    return issuer.mint(**claims)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: httpx.Response) -> dict[str, dict[str, str]]:
    header = response.headers.get("www-authenticate")
    assert header, f"no WWW-Authenticate on {response.status_code}: {response.text}"
    return parse_challenges(header)


def assert_bearer_error(response: httpx.Response, status: int, error: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    challenges = challenge(response)
    assert challenges["Bearer"]["error"] == error, challenges
    assert challenges["Bearer"]["realm"] == AUDIENCE
    assert challenges["DPoP"]["algs"] == "ES256 EdDSA"
    assert response.json()["error"] == error
    return challenges["Bearer"]


def assert_dpop_error(response: httpx.Response, status: int, error: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    challenges = challenge(response)
    assert "Bearer" not in challenges, challenges
    assert challenges["DPoP"]["error"] == error, challenges
    assert challenges["DPoP"]["algs"] == "ES256 EdDSA"
    assert response.json()["error"] == error
    return challenges["DPoP"]


# -- the happy paths (so that every rejection below is meaningful) -------------------------


@pytest.mark.parametrize("kid", ["es-1", "ed-1"])
async def test_valid_token_reads_account(api: httpx.AsyncClient, issuer: FakeIssuer, kid: str):
    response = await api.get("/account", headers=bearer(issuer.mint(kid=kid)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sub"].startswith("did:pkh:eip155:1:")
    assert body["token_type"] == "Bearer"


async def test_valid_order_and_body_validation(api: httpx.AsyncClient, issuer: FakeIssuer):
    token = issuer.mint()
    response = await api.post("/orders", headers=bearer(token), json=ORDER)
    assert response.status_code == 201, response.text
    assert response.json()["order_id"].startswith("ord_")
    bad = await api.post("/orders", headers=bearer(token), json={**ORDER, "quantity": "-1"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "invalid_request"
    no_price = await api.post("/orders", headers=bearer(token), json={**ORDER, "price": None})
    assert no_price.status_code == 422


async def test_token_is_checked_before_the_body(api: httpx.AsyncClient):
    response = await api.post("/orders", content=b"{not json", headers={"Content-Type": "x"})
    assert response.status_code == 401
    assert "error" not in challenge(response)["Bearer"]


async def test_withdrawal_token_for_exactly_this_withdrawal(
    api: httpx.AsyncClient, issuer: FakeIssuer
):
    token = withdrawal_token(issuer)
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    assert response.status_code == 202, response.text
    assert response.json()["withdrawal_id"].startswith("wd_")
    assert response.json()["network"] == "ethereum"


async def test_dpop_bound_token_with_valid_proof(
    api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key: ec.EllipticCurvePrivateKey, clock
):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    proof = make_dpop_proof(
        dpop_key, htm="GET", htu=f"{API}/account", access_token=token, clock=clock
    )
    response = await api.get(
        "/account?x=1", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"


async def test_no_credentials_gets_a_bare_challenge(api: httpx.AsyncClient):
    response = await api.get("/account")
    assert response.status_code == 401
    challenges = challenge(response)
    # RFC 6750 §3.1: no error code when the request has no authentication information.
    assert challenges == {"Bearer": {"realm": AUDIENCE}, "DPoP": {"algs": "ES256 EdDSA"}}


# -- attacks on the token itself ---------------------------------------------------------


def _attack_tokens(issuer: FakeIssuer) -> dict[str, str]:
    claims = issuer.claims()
    es_header = issuer.header("es-1")
    attacker = ec.generate_private_key(ec.SECP256R1())
    _, attacker_jwk = public_jwk(attacker.public_key())
    pem = (
        issuer.keys["es-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    valid = issuer.mint()
    h, p, s = valid.split(".")
    escalated = dict(orjson.loads(b64url_decode(p)), scope="account:read wallet:withdraw")
    return {
        "alg_none": unsigned_jwt({**es_header, "alg": "none"}, claims),
        "alg_none_with_signature": unsigned_jwt({**es_header, "alg": "none"}, claims, b"x" * 64),
        "alg_none_capitalised": unsigned_jwt({**es_header, "alg": "None"}, claims, b"x" * 64),
        "hs256_with_public_key_pem": hs256_jwt({**es_header, "alg": "HS256"}, claims, pem),
        "hs256_with_public_jwk": hs256_jwt(
            {**es_header, "alg": "HS256"}, claims, json_dumps(issuer.jwk("es-1"))
        ),
        "kid_not_in_jwks": issuer.mint(header={"kid": "attacker"}, key=attacker),
        "kid_missing": issuer.mint(header={"kid": DROP}),
        "forged_signature_known_kid": issuer.mint(key=attacker),
        "alg_differs_from_key_alg": issuer.mint(kid="ed-1", header={"alg": "ES256"}, key=attacker),
        "jku_header": sign_jws(
            attacker,
            {**es_header, "kid": "attacker", "jku": "https://evil.example/jwks.json"},
            claims,
        ),
        "jku_header_with_valid_signature": issuer.mint(
            header={"jku": "https://evil.example/jwks.json"}
        ),
        "x5u_header": issuer.mint(header={"x5u": "https://evil.example/cert.pem"}),
        "jwk_header": sign_jws(attacker, {**es_header, "jwk": attacker_jwk}, claims),
        "x5c_header": issuer.mint(header={"x5c": ["MIIB"]}),
        "crit_header": issuer.mint(header={"crit": ["exp"]}),
        "typ_jwt": issuer.mint(header={"typ": "JWT"}),
        "typ_missing": issuer.mint(header={"typ": DROP}),
        "typ_dpop": issuer.mint(header={"typ": "dpop+jwt"}),
        "wrong_iss": issuer.mint(iss="https://evil.example"),
        "iss_trailing_slash": issuer.mint(iss="https://issuer.example/"),
        "iss_missing": issuer.mint(iss=DROP),
        "wrong_aud": issuer.mint(aud="other-api"),
        "wrong_aud_list": issuer.mint(aud=["other-api", "wallet-api"]),
        "aud_missing": issuer.mint(aud=DROP),
        "expired": issuer.mint(exp=int(issuer.clock.now()) - 31, iat=int(issuer.clock.now()) - 400),
        "exp_missing": issuer.mint(exp=DROP),
        "exp_not_a_number": issuer.mint(exp="9999999999"),
        "nbf_in_future": issuer.mint(nbf=int(issuer.clock.now()) + 120),
        "iat_in_future": issuer.mint(iat=int(issuer.clock.now()) + 120),
        "iat_missing": issuer.mint(iat=DROP),
        "sub_missing": issuer.mint(sub=DROP),
        "client_id_missing": issuer.mint(client_id=DROP),
        "jti_missing": issuer.mint(jti=DROP),
        "unsupported_cnf": issuer.mint(cnf={"x5t#S256": "abc"}),
        "tampered_payload": f"{h}.{b64url_encode(json_dumps(escalated))}.{s}",
        "tampered_header": f"{b64url_encode(json_dumps({**es_header, 'extra': 1}))}.{p}.{s}",
        "stripped_signature": f"{h}.{p}.",
        "two_segments": f"{h}.{p}",
        "jwe_shaped": f"{h}.{p}.{s}.{s}.{s}",
        "signature_padding": f"{h}.{p}.{s}==",
        "garbage": "not-a-token",
    }


ATTACKS = [
    "alg_none",
    "alg_none_with_signature",
    "alg_none_capitalised",
    "hs256_with_public_key_pem",
    "hs256_with_public_jwk",
    "kid_not_in_jwks",
    "kid_missing",
    "forged_signature_known_kid",
    "alg_differs_from_key_alg",
    "jku_header",
    "jku_header_with_valid_signature",
    "x5u_header",
    "jwk_header",
    "x5c_header",
    "crit_header",
    "typ_jwt",
    "typ_missing",
    "typ_dpop",
    "wrong_iss",
    "iss_trailing_slash",
    "iss_missing",
    "wrong_aud",
    "wrong_aud_list",
    "aud_missing",
    "expired",
    "exp_missing",
    "exp_not_a_number",
    "nbf_in_future",
    "iat_in_future",
    "iat_missing",
    "sub_missing",
    "client_id_missing",
    "jti_missing",
    "unsupported_cnf",
    "tampered_payload",
    "tampered_header",
    "stripped_signature",
    "two_segments",
    "jwe_shaped",
    "signature_padding",
    "garbage",
]


@pytest.mark.parametrize("attack", ATTACKS)
async def test_token_attack_rejected(api: httpx.AsyncClient, issuer: FakeIssuer, attack: str):
    token = _attack_tokens(issuer)[attack]
    response = await api.get("/account", headers=bearer(token))
    params = assert_bearer_error(response, 401, "invalid_token")
    assert params["error_description"]


async def test_attack_list_is_complete(issuer: FakeIssuer):
    assert sorted(_attack_tokens(issuer)) == sorted(ATTACKS)


async def test_token_in_query_string_is_not_accepted(api: httpx.AsyncClient, issuer: FakeIssuer):
    response = await api.get("/account", params={"access_token": issuer.mint()})
    assert response.status_code == 401


async def test_unknown_kid_refetches_at_most_once_per_cooldown(
    api: httpx.AsyncClient, issuer: FakeIssuer, clock: FixedClock
):
    await api.get("/account", headers=bearer(issuer.mint()))
    assert len(issuer.fetches) == 1
    token = issuer.mint(kid="ed-1", header={"kid": "random"})
    assert_bearer_error(await api.get("/account", headers=bearer(token)), 401, "invalid_token")
    # The first unknown kid refetches once (a key rotated in since the routine fetch must be
    # found at once); that refetch starts the cool-down.
    assert len(issuer.fetches) == 2
    token = issuer.mint(kid="ed-1", header={"kid": "random-again"})
    assert_bearer_error(await api.get("/account", headers=bearer(token)), 401, "invalid_token")
    assert len(issuer.fetches) == 2
    clock.advance(31)
    attacker = ed25519.Ed25519PrivateKey.generate()
    for i in range(5):
        token = issuer.mint(kid="ed-1", header={"kid": f"random-{i}"}, key=attacker)
        response = await api.get("/account", headers=bearer(token))
        assert_bearer_error(response, 401, "invalid_token")
    assert len(issuer.fetches) == 3  # one refetch, then the cool-down holds


async def test_revoked_token_rejected(
    api: httpx.AsyncClient, issuer: FakeIssuer, revocations: RevocationSet
):
    token = issuer.mint()
    assert (await api.get("/account", headers=bearer(token))).status_code == 200
    exp = int(issuer.clock.now()) + 300
    revocations.apply([{"jti": "someone-else", "exp": exp}])
    assert (await api.get("/account", headers=bearer(token))).status_code == 200
    jti = orjson.loads(b64url_decode(token.split(".")[1]))["jti"]
    revocations.apply([{"jti": jti, "exp": exp}])
    response = await api.get("/account", headers=bearer(token))
    params = assert_bearer_error(response, 401, "invalid_token")
    assert "revoked" in params["error_description"]


async def test_jwks_down_fails_closed(api: httpx.AsyncClient, issuer: FakeIssuer):
    issuer.down = True
    response = await api.get("/account", headers=bearer(issuer.mint()))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["retry-after"]


# -- scopes and step-up -------------------------------------------------------------------


async def test_missing_scope_is_403(api: httpx.AsyncClient, issuer: FakeIssuer):
    token = issuer.mint(scope="account:read")
    response = await api.post("/orders", headers=bearer(token), json=ORDER)
    params = assert_bearer_error(response, 403, "insufficient_scope")
    assert params["scope"] == "trade:write"


async def test_token_without_scope_claim_is_403(api: httpx.AsyncClient, issuer: FakeIssuer):
    response = await api.get("/account", headers=bearer(issuer.mint(scope=DROP)))
    params = assert_bearer_error(response, 403, "insufficient_scope")
    assert params["scope"] == "account:read"


async def test_scope_prefix_does_not_match(api: httpx.AsyncClient, issuer: FakeIssuer):
    token = issuer.mint(scope="account:reader trade:write:x")
    response = await api.get("/account", headers=bearer(token))
    assert_bearer_error(response, 403, "insufficient_scope")


async def test_withdrawal_without_withdraw_scope_is_403(api: httpx.AsyncClient, issuer: FakeIssuer):
    token = issuer.mint(amr=["siwe", "otp"])
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    params = assert_bearer_error(response, 403, "insufficient_scope")
    assert params["scope"] == "wallet:withdraw"


async def test_a_step_up_token_without_withdrawal_details_cannot_withdraw(
    api: httpx.AsyncClient, issuer: FakeIssuer
):
    """`wallet:withdraw` with a second factor (a login's step-up) says nothing about which
    withdrawal the user approved: refused."""
    token = issuer.mint(scope="wallet:withdraw", amr=["siwe", "otp"])
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    params = assert_bearer_error(response, 403, "insufficient_scope")
    assert "no specific withdrawal" in params["error_description"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "100.0"), ("amount", "1000"), ("asset", "USDT"), ("network", "base"),
     ("address", "0x1111111111111111111111111111111111111111")],
)
async def test_a_withdrawal_token_serves_only_its_withdrawal(
    api: httpx.AsyncClient, issuer: FakeIssuer, field: str, value: str
):
    token = withdrawal_token(issuer)
    response = await api.post(
        "/withdrawals", headers=bearer(token), json={**WITHDRAWAL, field: value}
    )
    params = assert_bearer_error(response, 403, "insufficient_scope")
    assert params["scope"] == "wallet:withdraw"
    name = "destination" if field == "address" else field
    assert name in params["error_description"] and value not in params["error_description"]
    # The refusal used nothing up: the approved request still passes, once.
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    assert response.status_code == 202, response.text


async def test_a_withdrawal_token_serves_once(api: httpx.AsyncClient, issuer: FakeIssuer):
    token = withdrawal_token(issuer)
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    assert response.status_code == 202, response.text
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    params = assert_bearer_error(response, 401, "invalid_token")
    assert "already used" in params["error_description"]


async def test_a_withdrawal_token_for_another_api_is_refused(
    api: httpx.AsyncClient, issuer: FakeIssuer
):
    other = [{**APPROVED[0], "audience": "other-api"}]
    token = withdrawal_token(issuer, authorization_details=other)
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    assert_bearer_error(response, 403, "insufficient_scope")


@pytest.mark.parametrize(
    "details",
    [[], [APPROVED[0], APPROVED[0]], [{**APPROVED[0], "type": "payment"}], "withdrawal",
     [{k: v for k, v in APPROVED[0].items() if k != "amount"}]],
)
async def test_malformed_withdrawal_details_are_refused(
    api: httpx.AsyncClient, issuer: FakeIssuer, details: Any
):
    token = withdrawal_token(issuer, authorization_details=details)
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    assert_bearer_error(response, 403, "insufficient_scope")


async def test_an_expired_withdrawal_token_is_refused(
    api: httpx.AsyncClient, issuer: FakeIssuer, clock: FixedClock
):
    token = withdrawal_token(issuer, exp=int(clock.now()) + 60)
    clock.advance(61 + 30)  # past exp and the verifier's leeway
    response = await api.post("/withdrawals", headers=bearer(token), json=WITHDRAWAL)
    assert_bearer_error(response, 401, "invalid_token")


# -- DPoP ---------------------------------------------------------------------------------


def _dpop_request(token: str, proof: str | None, scheme: str = "DPoP") -> dict[str, Any]:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return headers


async def test_dpop_bound_token_used_as_bearer(
    api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock
):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    response = await api.get("/account", headers=bearer(token))
    params = assert_bearer_error(response, 401, "invalid_token")
    assert "DPoP" in params["error_description"]
    # Even with a perfectly valid proof attached, the Bearer scheme is a downgrade.
    proof = make_dpop_proof(
        dpop_key, htm="GET", htu=f"{API}/account", access_token=token, clock=clock
    )
    response = await api.get("/account", headers=_dpop_request(token, proof, scheme="Bearer"))
    assert_bearer_error(response, 401, "invalid_token")


async def test_dpop_bound_token_without_proof(api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    response = await api.get("/account", headers=_dpop_request(token, None))
    assert_dpop_error(response, 401, "invalid_dpop_proof")


async def test_dpop_proof_for_another_method(
    api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock
):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    proof = make_dpop_proof(
        dpop_key, htm="POST", htu=f"{API}/account", access_token=token, clock=clock
    )
    response = await api.get("/account", headers=_dpop_request(token, proof))
    assert_dpop_error(response, 401, "invalid_dpop_proof")


async def test_dpop_proof_for_another_url(
    api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock
):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    for htu in (f"{API}/orders", "https://evil.example/account", "http://api.example/account"):
        proof = make_dpop_proof(dpop_key, htm="GET", htu=htu, access_token=token, clock=clock)
        response = await api.get("/account", headers=_dpop_request(token, proof))
        assert_dpop_error(response, 401, "invalid_dpop_proof")


async def test_dpop_proof_for_another_token(
    api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock
):
    jkt = thumbprint_of(dpop_key)
    token = issuer.mint(cnf={"jkt": jkt})
    other = issuer.mint(cnf={"jkt": jkt})
    proof = make_dpop_proof(
        dpop_key, htm="GET", htu=f"{API}/account", access_token=other, clock=clock
    )
    response = await api.get("/account", headers=_dpop_request(token, proof))
    assert_dpop_error(response, 401, "invalid_dpop_proof")
    no_ath = make_dpop_proof(dpop_key, htm="GET", htu=f"{API}/account", clock=clock)
    response = await api.get("/account", headers=_dpop_request(token, no_ath))
    assert_dpop_error(response, 401, "invalid_dpop_proof")


async def test_dpop_proof_replayed(api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    proof = make_dpop_proof(
        dpop_key, htm="GET", htu=f"{API}/account", access_token=token, clock=clock
    )
    first = await api.get("/account", headers=_dpop_request(token, proof))
    assert first.status_code == 200
    second = await api.get("/account", headers=_dpop_request(token, proof))
    params = assert_dpop_error(second, 401, "invalid_dpop_proof")
    assert "replay" in params["error_description"]


async def test_dpop_proof_with_another_key(
    api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock
):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    thief = ed25519.Ed25519PrivateKey.generate()
    proof = make_dpop_proof(thief, htm="GET", htu=f"{API}/account", access_token=token, clock=clock)
    response = await api.get("/account", headers=_dpop_request(token, proof))
    # RFC 9449 §7.1 example: a failed key binding is `invalid_token` in a DPoP challenge.
    params = assert_dpop_error(response, 401, "invalid_token")
    assert params["error_description"] == "Invalid DPoP key binding"


async def test_dpop_proof_too_old(api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    proof = make_dpop_proof(
        dpop_key, htm="GET", htu=f"{API}/account", access_token=token, iat=clock.now() - 120
    )
    response = await api.get("/account", headers=_dpop_request(token, proof))
    assert_dpop_error(response, 401, "invalid_dpop_proof")


async def test_two_dpop_headers(api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock):
    token = issuer.mint(cnf={"jkt": thumbprint_of(dpop_key)})
    proof = make_dpop_proof(
        dpop_key, htm="GET", htu=f"{API}/account", access_token=token, clock=clock
    )
    headers = [("Authorization", f"DPoP {token}"), ("DPoP", proof), ("DPoP", proof)]
    response = await api.get("/account", headers=headers)
    assert_dpop_error(response, 401, "invalid_dpop_proof")


async def test_unbound_token_with_dpop_scheme(
    api: httpx.AsyncClient, issuer: FakeIssuer, dpop_key, clock
):
    token = issuer.mint()
    proof = make_dpop_proof(
        dpop_key, htm="GET", htu=f"{API}/account", access_token=token, clock=clock
    )
    response = await api.get("/account", headers=_dpop_request(token, proof))
    assert_dpop_error(response, 401, "invalid_token")


# -- malformed requests -------------------------------------------------------------------


async def test_two_authorization_headers(api: httpx.AsyncClient, issuer: FakeIssuer):
    token = issuer.mint()
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"DPoP {token}")]
    response = await api.get("/account", headers=headers)
    assert_bearer_error(response, 400, "invalid_request")


async def test_scheme_without_token(api: httpx.AsyncClient):
    response = await api.get("/account", headers={"Authorization": "Bearer "})
    assert_bearer_error(response, 400, "invalid_request")


async def test_other_scheme_gets_a_bare_challenge(api: httpx.AsyncClient):
    response = await api.get("/account", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert response.status_code == 401
    assert "error" not in challenge(response)["Bearer"]


async def test_scheme_is_case_insensitive(api: httpx.AsyncClient, issuer: FakeIssuer):
    response = await api.get("/account", headers={"Authorization": f"bearer {issuer.mint()}"})
    assert response.status_code == 200


async def test_error_description_is_header_safe(api: httpx.AsyncClient, issuer: FakeIssuer):
    token = issuer.mint(header={"kid": 'quote"back\\slash'})
    response = await api.get("/account", headers=bearer(token))
    params = assert_bearer_error(response, 401, "invalid_token")
    assert '"' not in params["error_description"] and "\\" not in params["error_description"]
