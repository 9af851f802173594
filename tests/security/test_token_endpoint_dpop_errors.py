"""DPoP failures at the token endpoint are 400 `invalid_dpop_proof` (RFC 9449
§5: "If the DPoP proof is invalid, the authorization server issues an error response per
Section 5.2 of [RFC6749] with invalid_dpop_proof"), never the resource-server code 401
`invalid_token` (before: a refresh with another key's proof got 401 invalid_token)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from did_auth.verifier.dpop import make_dpop_proof
from tests.security import oauth_clients as oc
from tests.security.oauth_clients import ISS, TOKEN, Api, refresh_form, siwe_login

oauth_api = oc.oauth_api


async def test_dpop_failures_on_refresh_are_invalid_dpop_proof(oauth_api: Api) -> None:
    client, _ = oauth_api
    key = ec.generate_private_key(ec.SECP256R1())
    r = await siwe_login(
        client, headers={"DPoP": make_dpop_proof(key, htm="POST", htu=ISS + "/siwe/verify")}
    )
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    form = refresh_form(r.json()["refresh_token"], "dapp")
    other = ec.generate_private_key(ec.SECP256R1())
    for proofs in (
        [make_dpop_proof(other, htm="POST", htu=TOKEN)],  # the attack: another key
        [],  # a DPoP-bound refresh token without a proof
        ["not.a.jwt"],  # a malformed proof
        [make_dpop_proof(key, htm="POST", htu=ISS + "/siwe/verify")],  # for another URL
    ):
        headers = {"DPoP": proofs[0]} if proofs else {}
        r = await client.post("/token", data=form, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_dpop_proof", r.text
        assert "www-authenticate" not in r.headers
    # Nothing was spent: the right key refreshes.
    r = await client.post(
        "/token", data=form, headers={"DPoP": make_dpop_proof(key, htm="POST", htu=TOKEN)}
    )
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
