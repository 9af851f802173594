"""Direct logins (`/siwe/verify`, `/did/verify`) for a confidential client
require its client authentication (RFC 6749 §3.2.1); before, anyone with a wallet got
tokens for that client with no secret. Public clients are unchanged."""

from __future__ import annotations

from tests.security import oauth_clients as oc
from tests.security.oauth_clients import Api, basic, did_login, siwe_login

oauth_api = oc.oauth_api


async def test_siwe_verify_needs_the_confidential_clients_authentication(oauth_api: Api) -> None:
    client, _ = oauth_api
    # The attack: a login for the confidential client without its secret (hot path: JSON).
    r = await siwe_login(client, "vault")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    r = await siwe_login(client, "vault", extra={"client_secret": "guess"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    r = await siwe_login(client, "vault", headers=basic("vault", "guess"))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = await siwe_login(client, "bot")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    # An assertion made for the token endpoint is accepted too (aud = token endpoint).
    r = await siwe_login(client, "bot", extra=oc.jwt_auth(oc.assertion(aud=oc.TOKEN)))
    assert r.status_code == 200, r.text
    # With the client's authentication: tokens.
    r = await siwe_login(client, "vault", headers=basic("vault", oc.SECRET))
    assert r.status_code == 200, r.text
    r = await siwe_login(client, "vault", extra={"client_secret": oc.SECRET})
    assert r.status_code == 200, r.text
    r = await siwe_login(client, "bot", extra=oc.jwt_auth(oc.assertion(aud=oc.ISS)))
    assert r.status_code == 200, r.text
    # Public clients: unchanged.
    r = await siwe_login(client, "dapp")
    assert r.status_code == 200, r.text


async def test_did_verify_needs_the_confidential_clients_authentication(oauth_api: Api) -> None:
    client, _ = oauth_api
    r = await did_login(client, "vault")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    r = await did_login(client, "vault", headers=basic("vault", oc.SECRET))
    assert r.status_code == 200, r.text
    r = await did_login(client, "poster", extra={"client_secret": oc.POST_SECRET})
    assert r.status_code == 200, r.text
    r = await did_login(client, "bot",
                        extra=oc.jwt_auth(oc.assertion(aud=oc.ISS + "/did/verify")))
    assert r.status_code == 200, r.text
    r = await did_login(client, "dapp")
    assert r.status_code == 200, r.text
