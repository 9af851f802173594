"""One client authentication for every grant, /revoke and /introspect, with
`client_secret_basic` (RFC 6749 §2.3.1: id and secret form-urlencoded before Base64),
`client_secret_post`, `private_key_jwt` (RFC 7523 §3: single-use jti, aud = issuer or
token endpoint, short exp, asymmetric algorithms only) and `none`; discovery advertises
exactly these."""

from __future__ import annotations

import base64
import time

import pytest

from did_auth.core.errors import InvalidClient
from did_auth.core.oauth.client_auth import parse_basic
from tests.fixtures.servers import CLIENT, running_app
from tests.security import oauth_clients as oc
from tests.security.oauth_clients import Api, basic, refresh_form, tokens_for

oauth_api = oc.oauth_api


def test_basic_is_form_urlencoded_then_base64() -> None:
    # RFC 6749 §2.3.1 / Appendix B: '+' is a space, '%2B' a plus (openid-client encodes so).
    raw = base64.b64encode(b"my+client:a+secret%2Bwith+spaces%3A").decode()
    assert parse_basic("Basic " + raw) == ("my client", "a secret+with spaces:")
    assert parse_basic(basic("vault", oc.SECRET)["Authorization"]) == ("vault", oc.SECRET)
    for bad in ("Basic", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                "Basic " + base64.b64encode(b":secret").decode()):
        with pytest.raises(InvalidClient) as err:
            parse_basic(bad)
        assert err.value.basic


async def test_secret_with_spaces_and_plus_via_basic(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "vault")
    # The secret sent raw (not form-urlencoded) is a different secret.
    raw = base64.b64encode(f"vault:{oc.SECRET}".encode()).decode()
    r = await client.post("/token", data=refresh_form(tok["refresh_token"]),
                          headers={"Authorization": "Basic " + raw})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"] == 'Basic realm="did-auth"'
    r = await client.post("/token", data=refresh_form(tok["refresh_token"]),
                          headers=basic("vault", oc.SECRET))
    assert r.status_code == 200, r.text


async def test_more_than_one_method_is_invalid_request(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "vault")
    # RFC 6749 §2.3: "The client MUST NOT use more than one authentication method".
    r = await client.post("/token", headers=basic("vault", oc.SECRET),
                          data={**refresh_form(tok["refresh_token"]), "client_secret": oc.SECRET})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text


async def _refused(oauth_api: Api, jwt: str) -> str:
    client, _ = oauth_api
    tok = await tokens_for(client, "bot")
    r = await client.post("/token", data={**refresh_form(tok["refresh_token"]), **oc.jwt_auth(jwt)})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    return str(r.json()["error_description"])


async def test_private_key_jwt_replay_is_refused(oauth_api: Api) -> None:
    client, _ = oauth_api
    jwt = oc.assertion()
    tok = await tokens_for(client, "bot")
    r = await client.post("/token", data={**refresh_form(tok["refresh_token"]), **oc.jwt_auth(jwt)})
    assert r.status_code == 200, r.text
    # RFC 7523 §3 ¶7: the same assertion (same jti) again
    assert "replayed" in await _refused(oauth_api, jwt)


async def test_private_key_jwt_audience_and_lifetime(oauth_api: Api) -> None:
    now = int(time.time())
    assert "aud" in await _refused(oauth_api, oc.assertion(aud="https://other.example/token"))
    assert "aud" in await _refused(oauth_api, oc.assertion(aud=["https://other.example"]))
    assert "expired" in await _refused(oauth_api, oc.assertion(iat=now - 400, exp=now - 200))
    assert "exp" in await _refused(oauth_api, oc.assertion(exp=None))
    # without iat, exp may be at most ~5 minutes ahead
    assert "exp" in await _refused(oauth_api, oc.assertion(iat=None, exp=now + 3600))
    # with iat, an assertion lives at most ~5 minutes after it was made
    assert "iat" in await _refused(oauth_api, oc.assertion(iat=now - 1000, exp=now + 3600))


async def test_private_key_jwt_signature_rules(oauth_api: Api) -> None:
    # alg none and HS256 (even keyed with something the attacker can guess) are refused
    assert "alg" in await _refused(oauth_api, oc.unsigned_assertion(alg="none"))
    assert "alg" in await _refused(oauth_api, oc.unsigned_assertion(alg="HS256", secret=b"bot"))
    # a key that is not registered, or iss/sub not the client
    assert "signature" in await _refused(oauth_api, oc.assertion(key=oc.OTHER_KEY))
    assert "signature" in await _refused(oauth_api, oc.assertion(key=oc.OTHER_KEY, kid=None))
    assert "iss" in await _refused(oauth_api, oc.assertion(iss="dapp"))


async def test_private_key_jwt_for_a_client_without_keys(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "vault")
    jwt = oc.assertion("vault")
    r = await client.post("/token", data={**refresh_form(tok["refresh_token"]), **oc.jwt_auth(jwt)})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_public_client_cannot_send_a_secret(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "dapp")
    r = await client.post("/token", data={**refresh_form(tok["refresh_token"], "dapp"),
                                          "client_secret": "anything"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_introspection_uses_the_same_authentication(oauth_api: Api) -> None:
    client, _ = oauth_api
    tok = await tokens_for(client, "dapp")
    # resource servers: none configured here -> nobody can introspect, whatever they send
    for headers in (basic("vault", oc.SECRET), {}):
        r = await client.post("/introspect", data={"token": tok["access_token"]}, headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")


async def test_discovery_lists_exactly_the_methods(oauth_api: Api) -> None:
    client, _ = oauth_api
    meta = (await client.get("/.well-known/openid-configuration")).json()
    methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    assert meta["token_endpoint_auth_methods_supported"] == methods
    assert meta["revocation_endpoint_auth_methods_supported"] == methods
    assert meta["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post"]
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == ["ES256", "EdDSA"]
    assert meta == (await client.get("/.well-known/oauth-authorization-server")).json()


async def test_resource_servers_authenticate_with_basic_or_post(
    store_kind: str, request: pytest.FixtureRequest
) -> None:
    rs_secret = "rs secret+with/odd:chars"
    cfg = oc.settings(request, store_kind, resource_servers=[
        {"name": "trading-api", "secret_hash": oc.hash_secret(rs_secret)}])
    async with running_app(cfg) as (client, _):
        tok = await tokens_for(client, "dapp")
        data = {"token": tok["access_token"]}
        r = await client.post("/introspect", data=data, headers=basic("trading-api", rs_secret))
        assert r.status_code == 200 and r.json()["active"] is True, r.text
        r = await client.post("/introspect", data={
            **data, "client_id": "trading-api", "client_secret": rs_secret})
        assert r.status_code == 200 and r.json()["active"] is True, r.text
        # a client's credentials are not a resource server's
        r = await client.post("/introspect", data=data, headers=basic("vault", oc.SECRET))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = await client.post("/introspect", headers=basic("trading-api", rs_secret), data={
            **data, "client_id": "trading-api", "client_secret": rs_secret})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("over", "problem"),
    [
        # a private key in the configuration is refused (only public keys are registered)
        ({"jwks": {"keys": [{**oc.BOT["jwks"]["keys"][0], "d": "AAAA"}]}}, "private"),
        ({"jwks": {"keys": []}}, "JWK Set"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "ES256"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "needs jwks"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "needs client_secret_hash"),
        # RFC 6749 §3.2.1: a client issued credentials MUST authenticate
        ({"token_endpoint_auth_method": "none", "client_secret_hash": oc.hash_secret("x")},
         "contradicts"),
    ],
)
def test_client_authentication_settings_are_validated(over: dict[str, object], problem: str) -> None:
    from did_auth.config.settings import load_settings
    from did_auth.core.errors import ConfigError

    client = {**CLIENT, "client_id": "c", **over}
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, overrides={"clients": [client]})
    assert problem in str(err.value), err.value
