"""RFC 9449 §10: `dpop_jkt` in the authorization request is OPTIONAL (openid-client 6 and
oauth4webapi 3 do not send it by default). Without it, a valid DPoP proof at the code
exchange binds what is issued to the proof's key (§5): the access token carries `cnf.jkt`
and the refresh token needs a proof of that key. Before: 400 invalid_dpop_proof ("needs
dpop_jkt"), so a conformant DPoP client could not log in at all; and a `require_dpop`
client was refused at /authorize without `dpop_jkt`. With `dpop_jkt`, the proof key must
still be that key; a `require_dpop` client still gets DPoP-bound tokens only."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from did_auth_verifier.dpop import jwk_thumbprint, make_dpop_proof
from did_auth_verifier.jose import public_jwk

from tests.edge.web import test_oidc as oidc
from tests.edge.web.test_oidc import ISS, Api, code_for, exchange

api = oidc.api

TOKEN = ISS + "/token"
USERINFO = ISS + "/userinfo"


def _claims(jwt: str) -> dict[str, Any]:
    body = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def _jkt(key: ec.EllipticCurvePrivateKey) -> str:
    return jwk_thumbprint(public_jwk(key.public_key())[1])


def _proof(key: ec.EllipticCurvePrivateKey, htu: str = TOKEN, **kw: Any) -> dict[str, str]:
    return {"DPoP": make_dpop_proof(key, htm=kw.pop("htm", "POST"), htu=htu, **kw)}


def _refresh(refresh_token: str, client_id: str = "strict") -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}


async def test_proof_at_the_exchange_binds_tokens_without_dpop_jkt(api: Api) -> None:
    client, _ = api
    key = ec.generate_private_key(ec.SECP256R1())
    code, verifier, _ = await code_for(client)  # no dpop_jkt in the authorization request
    r = await client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "strict",
            "redirect_uri": "https://rp.example/cb",
            "code_verifier": verifier,
        },
        headers=_proof(key),
    )
    assert r.status_code == 200, r.text  # before: 400 invalid_dpop_proof "needs dpop_jkt"
    token = r.json()
    assert token["token_type"] == "DPoP"
    at = _claims(token["access_token"])
    assert at["cnf"] == {"jkt": _jkt(key)}
    # The ID token's at_hash is the one of the access token handed out (OIDC Core §3.3.2.11).
    half = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert _claims(token["id_token"])["at_hash"] == (
        base64.urlsafe_b64encode(half).rstrip(b"=").decode()
    )

    # The access token is DPoP-bound: as a bearer token it is refused at /userinfo.
    r = await client.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 401
    r = await client.get(
        "/userinfo",
        headers={
            "Authorization": f"DPoP {token['access_token']}",
            **_proof(key, USERINFO, htm="GET", access_token=token["access_token"]),
        },
    )
    assert r.status_code == 200, r.text

    # RFC 9449 §5: the refresh token of this public client is bound to the same key.
    form = _refresh(token["refresh_token"])
    other = ec.generate_private_key(ec.SECP256R1())
    for headers in ({}, _proof(other)):
        r = await client.post("/token", data=form, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
    r = await client.post("/token", data=form, headers=_proof(key))
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    assert _claims(r.json()["access_token"])["cnf"] == {"jkt": _jkt(key)}


async def test_no_proof_without_dpop_jkt_stays_bearer(api: Api) -> None:
    client, _ = api
    code, verifier, _ = await code_for(client)
    r = await exchange(client, code, verifier)
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer", r.text
    assert "cnf" not in _claims(r.json()["access_token"])
    # A proof on the refresh of a bearer session does not bind it after the fact.
    key = ec.generate_private_key(ec.SECP256R1())
    r = await client.post("/token", data=_refresh(r.json()["refresh_token"]), headers=_proof(key))
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text


async def test_invalid_proof_at_the_exchange_without_dpop_jkt_is_refused(api: Api) -> None:
    client, _ = api
    key = ec.generate_private_key(ec.SECP256R1())
    code, verifier, _ = await code_for(client)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "strict",
        "redirect_uri": "https://rp.example/cb",
        "code_verifier": verifier,
    }
    for headers in (_proof(key, ISS + "/siwe/verify"), {"DPoP": "not.a.jwt"}):
        r = await client.post("/token", data=form, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
    # None of these spent the code: a valid proof binds the tokens.
    r = await client.post("/token", data=form, headers=_proof(key))
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text


async def test_require_dpop_client_without_dpop_jkt_still_needs_a_proof(api: Api) -> None:
    client, _ = api
    key = ec.generate_private_key(ec.SECP256R1())
    code, verifier, _ = await code_for(client, client_id="dpop")  # before: refused here
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "dpop",
        "redirect_uri": "https://rp.example/cb",
        "code_verifier": verifier,
    }
    r = await client.post("/token", data=form)
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
    r = await client.post("/token", data=form, headers=_proof(key))  # not spent by the above
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    assert _claims(r.json()["access_token"])["cnf"] == {"jkt": _jkt(key)}


async def test_dpop_jkt_still_names_the_only_key(api: Api) -> None:
    client, _ = api
    key = ec.generate_private_key(ec.SECP256R1())
    code, verifier, _ = await code_for(client, dpop_jkt=_jkt(key))
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": "strict",
        "redirect_uri": "https://rp.example/cb",
        "code_verifier": verifier,
    }
    other = ec.generate_private_key(ec.SECP256R1())
    for headers in ({}, _proof(other)):
        r = await client.post("/token", data=form, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
    r = await client.post("/token", data=form, headers=_proof(key))
    assert r.status_code == 200 and _claims(r.json()["access_token"])["cnf"] == {"jkt": _jkt(key)}
