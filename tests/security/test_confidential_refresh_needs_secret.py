"""A confidential client MUST authenticate on every grant (RFC 6749 §3.2.1,
§6). Before, the refresh token of a client with a `client_secret_hash` was exchanged with
no secret or a wrong one (200)."""

from __future__ import annotations

from tests.security import oauth_clients as oc
from tests.security.oauth_clients import Api, basic, refresh_form, tokens_for

oauth_api = oc.oauth_api


async def test_refresh_without_or_with_a_wrong_secret_is_invalid_client(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "vault")
    form = refresh_form(tok["refresh_token"], "vault")
    # The attack: the refresh token alone (e.g. stolen from the front end).
    r = await client.post("/token", data=form)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    # A wrong secret, in the body and in the Basic header.
    r = await client.post("/token", data={**form, "client_secret": "guess"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    r = await client.post("/token", data=refresh_form(tok["refresh_token"]),
                          headers=basic("vault", "guess"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    # RFC 6749 §5.2: Basic was tried -> 401 with a Basic challenge.
    assert r.headers["www-authenticate"].startswith("Basic")
    # The refused requests spent nothing: the right secret still refreshes, once.
    r = await client.post("/token", data=refresh_form(tok["refresh_token"]),
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"] != tok["refresh_token"]


async def test_each_method_refreshes(oauth_api: Api) -> None:
    client, _ = oauth_api
    # client_secret_basic (client_id in the form is optional, and must then match)
    tok = await tokens_for(client, "vault")
    r = await client.post("/token", data=refresh_form(tok["refresh_token"]),
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 200, r.text
    r = await client.post("/token", data=refresh_form(r.json()["refresh_token"], "dapp"),
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    # client_secret_post
    tok = await tokens_for(client, "vault")
    r = await client.post("/token", data={**refresh_form(tok["refresh_token"], "vault"),
                                          "client_secret": oc.SECRET})
    assert r.status_code == 200, r.text
    # private_key_jwt, ES256 and EdDSA keys, aud = token endpoint or issuer
    tok = await tokens_for(client, "bot")
    r = await client.post("/token", data={**refresh_form(tok["refresh_token"]),
                                          **oc.jwt_auth(oc.assertion())})
    assert r.status_code == 200, r.text
    r = await client.post("/token", data={**refresh_form(r.json()["refresh_token"], "bot"),
                                          **oc.jwt_auth(oc.assertion(key=oc.ED_KEY, kid="ed",
                                                                     aud=[oc.ISS]))})
    assert r.status_code == 200, r.text


async def test_a_client_bound_to_one_method_cannot_use_another(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "poster")  # token_endpoint_auth_method = client_secret_post
    r = await client.post("/token", data=refresh_form(tok["refresh_token"]),
                          headers=basic("poster", oc.POST_SECRET))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    r = await client.post("/token", data={**refresh_form(tok["refresh_token"], "poster"),
                                          "client_secret": oc.POST_SECRET})
    assert r.status_code == 200, r.text


async def test_another_clients_refresh_token_is_refused(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "vault")
    # RFC 6749 §6: the refresh token must have been issued to the authenticated client.
    r = await client.post("/token", data=refresh_form(tok["refresh_token"], "dapp"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    tok = await tokens_for(client, "dapp")
    r = await client.post("/token", data=refresh_form(tok["refresh_token"]),
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    # the public client's own refresh still works
    r = await client.post("/token", data=refresh_form(tok["refresh_token"], "dapp"))
    assert r.status_code == 200, r.text
