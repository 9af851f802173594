"""OpenID Connect code flow + PKCE against did-auth.

The relying party is authlib's OAuth2Client (an off-the-shelf client library): it makes the
authorization URL with an S256 challenge, exchanges the code, and the ID token is checked
with authlib's own OIDC claim validation (iss, aud, exp, iat, nonce, azp, at_hash) after a
joserfc signature check against the served JWKS, as authlib's OIDC integrations do. The
wallet step is done the way the sign-in page does it, with an eth-account key.

The first tests run against a real server process; the spec edge cases run in process.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oidc.core import CodeIDToken
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from did_auth.config.settings import Settings
from did_auth.core.clock import FixedClock
from did_auth.core.oauth.client_auth import hash_secret
from did_auth.core.siwe.recaps import build_recap
from did_auth.edge.api.app import create_app
from did_auth.services import Services, build_services
from did_auth.verifier._jose import public_jwk
from did_auth.verifier.dpop import jwk_thumbprint, make_dpop_proof
from tests import siwe_text
from tests.fixtures.servers import CLIENT, settings_for, start_server, stop_server

ROOT = Path(__file__).resolve().parents[3]
RP_CALLBACK = "http://127.0.0.1:8123/callback"
SECRET = "correct horse battery staple"
SCOPES = ["account:read", "trade:write", "wallet:withdraw"]


def rp_client(client_id: str, **over: Any) -> dict[str, Any]:
    """An OIDC client: it signs on did-auth's own page, so its SIWE domain/uri are the
    issuer's (any loopback port here, since the live server's port is picked at start)."""
    return {
        "client_id": client_id,
        "name": "Example RP",
        "domains": ["127.0.0.1"],
        "uris": ["http://127.0.0.1"],
        "any_localhost_port": True,
        "chain_ids": [1, 31337],
        "audiences": ["trading-api"],
        "scopes": SCOPES,
        "default_scopes": ["account:read"],
        "redirect_uris": [RP_CALLBACK],
        **over,
    }


# --- the wallet side (what signin.js does) --------------------------------------------


def page_config(page: str) -> dict[str, Any]:
    m = re.search(r'data-config="([^"]*)"', page)
    assert m, page[:500]
    config: dict[str, Any] = json.loads(html.unescape(m.group(1)))
    return config


def siwe_for(config: dict[str, Any], address: str, nonce: str, **over: Any) -> str:
    """EIP-4361 text written out by hand (independent of did_auth.core.siwe)."""
    issuer = urlsplit(config["issuer"])
    f: dict[str, Any] = {
        "domain": issuer.netloc,
        "uri": f"{config['issuer']}/authorize",
        "chain_id": 31337,
        "statement": config["statement"],
        "request_id": config.get("request_id"),
        "resources": config["resources"],
        "issued_at": time.time(),
    }
    f.update(over)
    lines = [f"{f['domain']} wants you to sign in with your Ethereum account:", address, ""]
    lines += [f["statement"], "", f"URI: {f['uri']}", "Version: 1", f"Chain ID: {f['chain_id']}"]
    lines += [f"Nonce: {nonce}", f"Issued At: {siwe_text.iso(f['issued_at'])}"]
    lines.append(f"Expiration Time: {siwe_text.iso(f['issued_at'] + 300)}")
    if f["request_id"] is not None:
        lines.append(f"Request ID: {f['request_id']}")
    if f["resources"]:
        lines += ["Resources:", *[f"- {r}" for r in f["resources"]]]
    return "\n".join(lines)


def wallet_sign_in_sync(http: httpx.Client, authorize_url: str, key: bytes, address: str) -> str:
    page = http.get(authorize_url)
    assert page.status_code == 200, page.text
    config = page_config(page.text)
    nonce = http.post("/siwe/nonce", json={"client_id": config["client_id"]}).json()["nonce"]
    text = siwe_for(config, address, nonce)
    r = http.post(
        "/authorize/complete",
        json={
            "request_id": config["request_id"],
            "message": text,
            "signature": siwe_text.sign(text, key),
        },
    )
    assert r.status_code == 200, r.text
    redirect: str = r.json()["redirect"]
    return redirect


def validate_id_token(
    id_token: str, jwks: dict[str, Any], *, issuer: str, client_id: str, nonce: str, token: dict
) -> CodeIDToken:
    decoded = jose_jwt.decode(
        id_token,
        KeySet.import_key_set(jwks),
        registry=JWSRegistry(algorithms=["ES256", "EdDSA"]),
    )
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "values": [issuer]},
            "aud": {"essential": True, "values": [client_id]},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=5)
    return claims


# --- against a real server process ------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = {
        "access_token_ttl": 300,
        "clients": [
            rp_client("rp"),
            rp_client(
                "rp-confidential",
                client_secret_hash=hash_secret(SECRET),
                redirect_uris=["http://127.0.0.1:8123/confidential"],
            ),
        ],
        "scopes": {"wallet:withdraw": {"step_up": True, "max_ttl": 60}},
    }
    server = start_server(config)
    yield server.url
    stop_server(server)


def test_authlib_rp_code_flow_pkce_id_token_userinfo_and_code_reuse(live: str) -> None:
    meta = httpx.get(f"{live}/.well-known/openid-configuration").json()
    assert meta["authorization_endpoint"] == f"{live}/authorize"
    assert meta["userinfo_endpoint"] == f"{live}/userinfo"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert "authorization_code" in meta["grant_types_supported"]
    jwks = httpx.get(meta["jwks_uri"]).json()

    address, key = siwe_text.new_account()
    rp = OAuth2Client(
        client_id="rp",
        scope="openid account:read trade:write",
        redirect_uri=RP_CALLBACK,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    assert "code_challenge_method=S256" in url

    with httpx.Client(base_url=live) as wallet_http:
        redirect = wallet_sign_in_sync(wallet_http, url, key, address)
    assert redirect.startswith(RP_CALLBACK + "?")
    params = parse_qs(urlsplit(redirect).query)
    assert params["state"] == [state]
    assert params["iss"] == [live]  # RFC 9207

    token = rp.fetch_token(
        meta["token_endpoint"], authorization_response=redirect, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == {"openid", "account:read", "trade:write"}
    claims = validate_id_token(
        token["id_token"], jwks, issuer=live, client_id="rp", nonce=nonce, token=token
    )
    sub = f"did:pkh:eip155:31337:{address}"
    assert claims["sub"] == sub
    assert claims["nonce"] == nonce
    assert abs(claims["auth_time"] - time.time()) < 60
    header = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))
    assert header["typ"] == "JWT" and header["kid"] in {k["kid"] for k in jwks["keys"]}

    info = rp.get(meta["userinfo_endpoint"])
    assert info.status_code == 200
    assert info.json()["sub"] == claims["sub"]
    assert info.json()["preferred_username"] == address

    # The access token is a normal did-auth token for the requested audience, which also
    # names the issuer: the code flow's access token serves UserInfo (OIDC Core §5.3.1),
    # RFC 9068 §4 (the API's verifier accepts an `aud` array containing its audience).
    payload = json.loads(base64.urlsafe_b64decode(token["access_token"].split(".")[1] + "=="))
    assert payload["aud"] == ["trading-api", live] and payload["client_id"] == "rp"

    # RFC 6749 §4.1.2: a code used twice is refused and what it gave is revoked.
    with pytest.raises(OAuthError) as err:
        rp.fetch_token(
            meta["token_endpoint"], authorization_response=redirect, code_verifier=verifier
        )
    assert err.value.error == "invalid_grant"
    assert rp.get(meta["userinfo_endpoint"]).status_code == 401
    r = httpx.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": "rp",
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_authlib_rp_failures_as_the_specs_say(live: str) -> None:
    meta = httpx.get(f"{live}/.well-known/openid-configuration").json()
    address, key = siwe_text.new_account()

    def rp(redirect_uri: str = RP_CALLBACK, **kw: Any) -> OAuth2Client:
        return OAuth2Client(
            client_id="rp",
            scope="openid",
            redirect_uri=redirect_uri,
            token_endpoint_auth_method="none",
            **kw,
        )

    # A wrong PKCE verifier: invalid_grant (RFC 7636 §4.6), and the code is spent.
    client = rp(code_challenge_method="S256")
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    with httpx.Client(base_url=live) as wallet_http:
        redirect = wallet_sign_in_sync(wallet_http, url, key, address)
    with pytest.raises(OAuthError) as err:
        client.fetch_token(
            meta["token_endpoint"],
            authorization_response=redirect,
            code_verifier=secrets.token_urlsafe(48),
        )
    assert err.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as err:
        client.fetch_token(
            meta["token_endpoint"], authorization_response=redirect, code_verifier=verifier
        )
    assert err.value.error == "invalid_grant"

    # No PKCE at all, or `plain`: refused at the (registered) redirect URI with the state.
    for kwargs in ({}, {"code_challenge": verifier[:43], "code_challenge_method": "plain"}):
        url, state = rp().create_authorization_url(meta["authorization_endpoint"], **kwargs)
        r = httpx.get(url)
        assert r.status_code == 302
        location = r.headers["location"]
        assert location.startswith(RP_CALLBACK + "?")
        q = parse_qs(urlsplit(location).query)
        assert q["error"] == ["invalid_request"] and q["state"] == [state]

    # An unregistered redirect URI is never redirected to, whatever else is wrong.
    for evil in ("http://127.0.0.1:8124/callback", "https://attacker.example/callback"):
        url, _ = rp(evil, code_challenge_method="S256").create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier
        )
        r = httpx.get(url)
        assert r.status_code == 400 and "location" not in r.headers
        assert "not registered" in r.text


def test_authlib_confidential_client_secret_basic(live: str) -> None:
    meta = httpx.get(f"{live}/.well-known/openid-configuration").json()
    address, key = siwe_text.new_account()
    callback = "http://127.0.0.1:8123/confidential"

    def start(rp: OAuth2Client) -> tuple[str, str]:
        verifier = secrets.token_urlsafe(48)
        url, _ = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce="n-0S6_WzA2Mj"
        )
        with httpx.Client(base_url=live) as wallet_http:
            return wallet_sign_in_sync(wallet_http, url, key, address), verifier

    wrong = OAuth2Client(
        client_id="rp-confidential",
        client_secret="not the secret",
        scope="openid",
        redirect_uri=callback,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    redirect, verifier = start(wrong)
    with pytest.raises(OAuthError) as err:
        wrong.fetch_token(
            meta["token_endpoint"], authorization_response=redirect, code_verifier=verifier
        )
    assert err.value.error == "invalid_client"

    rp = OAuth2Client(
        client_id="rp-confidential",
        client_secret=SECRET,
        scope="openid",
        redirect_uri=callback,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    # The failed client authentication did not spend the code.
    token = rp.fetch_token(
        meta["token_endpoint"], authorization_response=redirect, code_verifier=verifier
    )
    jwks = httpx.get(meta["jwks_uri"]).json()
    claims = validate_id_token(
        token["id_token"],
        jwks,
        issuer=live,
        client_id="rp-confidential",
        nonce="n-0S6_WzA2Mj",
        token=token,
    )
    assert claims["sub"] == f"did:pkh:eip155:31337:{address}"
    # Without its secret the confidential client is refused.
    public_try = httpx.post(
        meta["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": "x" * 43,
            "redirect_uri": callback,
            "client_id": "rp-confidential",
            "code_verifier": verifier,
        },
    )
    assert public_try.status_code == 401 and public_try.json()["error"] == "invalid_client"


# --- in process: the spec's edge cases ----------------------------------------------------

ISS = "http://testserver"
STRICT = {
    **rp_client("strict"),
    "domains": ["testserver"],
    "uris": ["http://testserver"],
    "any_localhost_port": False,
    "redirect_uris": ["https://rp.example/cb", "http://127.0.0.1:8123/cb?tenant=1"],
    "origins": ["https://rp.example"],
}
OTHER = {**STRICT, "client_id": "other", "redirect_uris": ["https://other.example/cb"]}
NOT_HOSTED = {
    **STRICT,
    "client_id": "not-hosted",
    "domains": ["rp.example"],
    "uris": ["https://rp.example"],
}
DPOP_CLIENT = {**STRICT, "client_id": "dpop", "require_dpop": True}


def oidc_settings(**over: Any) -> Settings:
    return settings_for(clients=[CLIENT, STRICT, OTHER, NOT_HOSTED, DPOP_CLIENT], **over)


@asynccontextmanager
async def oidc_app(
    settings: Settings | None = None, **kw: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = settings or oidc_settings()
    svc = build_services(settings, **kw)
    await svc.start()
    app = create_app(settings, services=svc)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as client:
        yield client, svc
    await svc.close()


@pytest.fixture
async def api(
    store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The in-process app on the memory store and on a real Redis (codes, parked requests
    and used-code markers must be atomic on both)."""
    if store_kind == "redis":
        redis = request.getfixturevalue("redis_server")
        kek = request.getfixturevalue("session_kek")
        settings = oidc_settings(redis_url=redis.url, key_encryption_key_file=kek)
    else:
        settings = oidc_settings()
    async with oidc_app(settings) as pair:
        yield pair


Api = tuple[httpx.AsyncClient, Services]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def auth_params(**over: Any) -> dict[str, str]:
    _, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": "strict",
        "redirect_uri": "https://rp.example/cb",
        "scope": "openid account:read",
        "state": "st-123",
        "nonce": "no-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(over)
    return {k: v for k, v in params.items() if v is not None}


async def start(client: httpx.AsyncClient, **over: Any) -> tuple[dict[str, Any], str]:
    verifier, challenge = pkce()
    r = await client.get("/authorize", params=auth_params(code_challenge=challenge, **over))
    assert r.status_code == 200, r.text
    return page_config(r.text), verifier


async def complete(
    client: httpx.AsyncClient, config: dict[str, Any], key: bytes, address: str, **over: Any
) -> httpx.Response:
    nonce = (await client.post("/siwe/nonce", json={"client_id": config["client_id"]})).json()
    text = siwe_for(config, address, nonce["nonce"], **over)
    return await client.post(
        "/authorize/complete",
        json={
            "request_id": config["request_id"],
            "message": text,
            "signature": siwe_text.sign(text, key),
        },
    )


async def code_for(client: httpx.AsyncClient, **over: Any) -> tuple[str, str, dict[str, Any]]:
    address, key = siwe_text.new_account()
    config, verifier = await start(client, **over)
    r = await complete(client, config, key, address)
    assert r.status_code == 200, r.text
    query = parse_qs(urlsplit(r.json()["redirect"]).query)
    return query["code"][0], verifier, config


async def exchange(
    client: httpx.AsyncClient, code: str, verifier: str, **over: Any
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://rp.example/cb",
        "client_id": "strict",
        "code_verifier": verifier,
    }
    form.update(over)
    return await client.post("/token", data={k: v for k, v in form.items() if v is not None})


def redirect_params(r: httpx.Response, base: str = "https://rp.example/cb") -> dict[str, str]:
    assert r.status_code in (302, 303), r.text
    location = r.headers["location"]
    assert location.startswith(base + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def test_wrong_verifier_is_invalid_grant_and_spends_the_code(api: Api) -> None:
    client, _ = api
    code, verifier, _ = await code_for(client)
    r = await exchange(client, code, secrets.token_urlsafe(48))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "PKCE" in r.json()["error_description"]
    again = await exchange(client, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_verifier_syntax_and_missing_parameters(api: Api) -> None:
    client, _ = api
    code, verifier, _ = await code_for(client)
    r = await exchange(client, code, "short")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await exchange(client, code, None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = await exchange(client, code, verifier, redirect_uri=None)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # None of these spent the code.
    r = await exchange(client, code, verifier)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"


async def test_code_bound_to_redirect_uri_and_client(api: Api) -> None:
    client, _ = api
    code, verifier, _ = await code_for(client)
    r = await exchange(client, code, verifier, redirect_uri="http://127.0.0.1:8123/cb?tenant=1")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    code, verifier, _ = await code_for(client)
    r = await exchange(
        client, code, verifier, client_id="other", redirect_uri="https://rp.example/cb"
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # The code's session was revoked with it: the legitimate client gets nothing now.
    r = await exchange(client, code, verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_code_expires_after_60_seconds() -> None:
    clock = FixedClock(time.time())
    async with oidc_app(clock=clock) as (client, _):
        code, verifier, _ = await code_for(client)
        clock.advance(61)
        r = await exchange(client, code, verifier)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert "expired" in r.json()["error_description"]


async def test_code_exchanged_once_under_concurrency(api: Api) -> None:
    import asyncio

    client, _ = api
    code, verifier, _ = await code_for(client)
    results = await asyncio.gather(*(exchange(client, code, verifier) for _ in range(5)))
    assert sorted(r.status_code for r in results) == [200, 400, 400, 400, 400]


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "account:read"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"scope": "openid nuke:everything"}, "invalid_scope"),
        ({"audience": "unknown-api"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": "https://rp.example/req"}, "request_uri_not_supported"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"dpop_jkt": "not a thumbprint"}, "invalid_request"),
    ],
)
async def test_authorize_errors_redirect_with_state(
    api: Api, over: dict[str, Any], error: str
) -> None:
    client, _ = api
    r = await client.get("/authorize", params=auth_params(**over))
    q = redirect_params(r)
    assert q["error"] == error, q
    assert q["state"] == "st-123"
    assert q["iss"] == ISS


async def test_plain_pkce_refused_even_with_a_valid_looking_challenge(api: Api) -> None:
    client, _ = api
    verifier = secrets.token_urlsafe(32)[:43]
    r = await client.get(
        "/authorize", params=auth_params(code_challenge=verifier, code_challenge_method="plain")
    )
    assert redirect_params(r)["error"] == "invalid_request"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://attacker.example/cb",
        "https://rp.example/cb/",
        "https://rp.example/cb?x=1",
        "https://rp.example/cb#frag",
        "https://RP.example/cb",
        "http://rp.example/cb",
        "https://rp.example.attacker.example/cb",
        "https://rp.example:8443/cb",
        "http://127.0.0.1:8124/cb?tenant=1",
        "http://127.0.0.1:8123/cb",
        "",
        None,
    ],
)
async def test_unregistered_redirect_uri_is_never_redirected_to(
    api: Api, redirect_uri: str | None
) -> None:
    client, _ = api
    r = await client.get("/authorize", params=auth_params(redirect_uri=redirect_uri))
    assert r.status_code == 400
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert "redirect" in r.text.lower()
    # Also when everything else is wrong too (errors must not leak to the unverified URI).
    r = await client.get(
        "/authorize",
        params=auth_params(redirect_uri=redirect_uri, response_type="token", code_challenge=None),
    )
    assert r.status_code == 400 and "location" not in r.headers


async def test_unknown_or_repeated_client_shown_not_redirected(api: Api) -> None:
    client, _ = api
    for params in (
        auth_params(client_id="nobody"),
        auth_params(client_id=None),
        auth_params(),
    ):
        if params.get("client_id") == "strict":
            query = urlencode(params) + "&redirect_uri=https%3A%2F%2Fattacker.example%2Fcb"
            r = await client.get("/authorize?" + query)
        else:
            r = await client.get("/authorize", params=params)
        assert r.status_code == 400 and "location" not in r.headers


async def test_repeated_parameter_after_redirect_check_is_redirected(api: Api) -> None:
    client, _ = api
    r = await client.get("/authorize?" + urlencode(auth_params()) + "&scope=openid")
    assert redirect_params(r)["error"] == "invalid_request"


async def test_registered_redirect_uri_keeps_its_query(api: Api) -> None:
    client, _ = api
    code, verifier, _ = await code_for(client, redirect_uri="http://127.0.0.1:8123/cb?tenant=1")
    r = await exchange(client, code, verifier, redirect_uri="http://127.0.0.1:8123/cb?tenant=1")
    assert r.status_code == 200, r.text


async def test_client_that_does_not_allow_the_hosted_page(api: Api) -> None:
    client, _ = api
    r = await client.get("/authorize", params=auth_params(client_id="not-hosted"))
    assert redirect_params(r)["error"] == "unauthorized_client"


async def test_message_must_be_for_this_request_and_this_page(api: Api) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    config, _ = await start(client, scope="openid account:read trade:write")
    other, _ = await start(client)
    for over in (
        {"request_id": other["request_id"]},  # signed for another authorization request
        {"request_id": None},
        {"uri": "http://testserver/signin"},  # not this server's authorize page
        {"domain": "rp.example"},
    ):
        r = await complete(client, config, key, address, **over)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", (over, r.text)
    # A ReCap granting less than the request asked for is refused (what the user read
    # is what they granted).
    recap, suffix = build_recap("trading-api", ["account:read"])
    r = await complete(
        client, config, key, address, resources=[recap], statement=f"Sign in. {suffix}"
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text
    # Without a ReCap, the request's own scope decides.
    r = await complete(client, config, key, address, resources=[], statement="Sign in.")
    assert r.status_code == 200, r.text
    r = await complete(client, config, key, address)
    assert r.status_code == 400 and "expired or was already used" in r.json()["error_description"]


async def test_completed_request_cannot_be_completed_twice(api: Api) -> None:
    client, _ = api
    address, key = siwe_text.new_account()
    config, _ = await start(client)
    assert (await complete(client, config, key, address)).status_code == 200
    r = await complete(client, config, key, address)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


async def test_cancel_redirects_access_denied(api: Api) -> None:
    client, _ = api
    config, _ = await start(client)
    r = await client.post("/authorize/cancel", json={"request_id": config["request_id"]})
    q = parse_qs(urlsplit(r.json()["redirect"]).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["st-123"]


async def test_userinfo_requires_a_live_token(api: Api) -> None:
    client, _ = api
    r = await client.get("/userinfo")
    assert r.status_code == 401
    # RFC 6750 §3.1: a request without credentials gets a challenge without error code.
    assert r.headers["www-authenticate"] == 'Bearer realm="did-auth", DPoP algs="ES256 EdDSA"'
    r = await client.get("/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    code, verifier, _ = await code_for(client)
    token = (await exchange(client, code, verifier)).json()
    r = await client.post("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 200 and r.json()["sub"].startswith("did:pkh:eip155:31337:")
    r = await client.post("/revoke", data={"token": token["refresh_token"], "client_id": "strict"})
    assert r.status_code == 200, r.text
    r = await client.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 401


async def test_dpop_jkt_binds_the_code_to_the_key(api: Api) -> None:
    client, _ = api
    # RFC 9449 §10: dpop_jkt is OPTIONAL, also for a require_dpop client (its code exchange
    # then needs a proof: tests/security/test_dpop_code_exchange_without_dpop_jkt.py).
    r = await client.get("/authorize", params=auth_params(client_id="dpop"))
    assert r.status_code == 200, r.text
    key = ec.generate_private_key(ec.SECP256R1())
    _, jwk = public_jwk(key.public_key())
    jkt = jwk_thumbprint(jwk)
    code, verifier, _ = await code_for(client, client_id="dpop", dpop_jkt=jkt)
    form = {"client_id": "dpop"}
    r = await exchange(client, code, verifier, **form)
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    wrong = ec.generate_private_key(ec.SECP256R1())
    proof = make_dpop_proof(wrong, htm="POST", htu=f"{ISS}/token")
    r = await client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "dpop",
            "redirect_uri": "https://rp.example/cb",
            "code_verifier": verifier,
        },
        headers={"DPoP": proof},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    proof = make_dpop_proof(key, htm="POST", htu=f"{ISS}/token")
    r = await client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "dpop",
            "redirect_uri": "https://rp.example/cb",
            "code_verifier": verifier,
        },
        headers={"DPoP": proof},
    )
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"] == "DPoP"
    at = json.loads(base64.urlsafe_b64decode(token["access_token"].split(".")[1] + "=="))
    assert at["cnf"] == {"jkt": jkt}


async def test_pages_have_security_headers_and_no_inline_script(api: Api) -> None:
    client, _ = api
    pages = [
        await client.get("/authorize", params=auth_params()),
        await client.get("/authorize", params=auth_params(client_id="nobody")),
        await client.get("/signin", params={"client_id": "strict", "origin": "https://rp.example"}),
        await client.get("/signin", params={"client_id": "strict", "return_to": "/demo/"}),
    ]
    for r in pages:
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        for tag in re.findall(r"<script\b[^>]*>", r.text):
            assert 'src="/static/' in tag, tag
        assert "<script>" not in r.text
        assert not re.search(r"<[^>]+\son[a-z]+=", r.text), "inline event handler"


async def test_signin_page_parameters(api: Api) -> None:
    client, _ = api
    r = await client.get(
        "/signin",
        params={
            "client_id": "strict",
            "scope": "account:read trade:write",
            "origin": "https://rp.example",
        },
    )
    config = page_config(r.text)
    assert config["mode"] == "signin" and "request_id" not in config
    assert [s["scope"] for s in config["scopes"]] == ["account:read", "trade:write"]
    assert "See your account" in config["statement"] or "see your account" in config["statement"]
    for bad in (
        {"client_id": "nobody"},
        {"client_id": "strict", "return_to": "//attacker.example/"},
        {"client_id": "strict", "return_to": "https://attacker.example/"},
        {"client_id": "strict", "return_to": "/\\attacker.example"},
        {"client_id": "strict", "origin": "https://attacker.example"},
        {"client_id": "strict", "scope": "wallet:withdraw"},
        {"client_id": "not-hosted"},
        # Tokens of a client registered for https://rp.example never stay on the issuer.
        {"client_id": "strict"},
        {"client_id": "strict", "return_to": "/demo/"},
    ):
        r = await client.get("/signin", params=bad)
        assert r.status_code == 400, bad
    r = await client.get("/signin", params={"client_id": "strict", "origin": "https://rp.example"})
    assert page_config(r.text)["origin"] == "https://rp.example"
    assert r.headers["cross-origin-opener-policy"] == "unsafe-none"


async def test_cors_only_for_registered_origins(api: Api) -> None:
    client, _ = api
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = await client.options("/siwe/nonce", headers={"Origin": "https://rp.example", **preflight})
    assert ok.headers.get("access-control-allow-origin") == "https://rp.example"
    assert "access-control-allow-credentials" not in ok.headers
    bad = await client.options(
        "/siwe/nonce", headers={"Origin": "https://attacker.example", **preflight}
    )
    assert "access-control-allow-origin" not in bad.headers
    simple = await client.post(
        "/siwe/nonce", json={"client_id": "strict"}, headers={"Origin": "https://attacker.example"}
    )
    assert "access-control-allow-origin" not in simple.headers


async def test_static_assets_and_client_module_copy(api: Api) -> None:
    client, _ = api
    r = await client.get("/static/did-auth-client.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert b'export * from "./client/index.js";' in r.content
    # One source: /static/client/ serves the npm package's own files, byte for byte.
    package = sorted((ROOT / "clients" / "js" / "src").glob("*.js"))
    assert {p.name for p in package} >= {"index.js", "client.js", "dpop.js", "session.js"}
    for path in package:
        served = await client.get(f"/static/client/{path.name}")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("text/javascript")
        assert served.content == path.read_bytes()
    for name in ("index.d.ts", "../pages.py", "%2e%2e%2fsignin.js", "nope.js"):
        assert (await client.get(f"/static/client/{name}")).status_code == 404
    for name in ("signin.js", "demo.js", "style.css", "favicon.svg"):
        assert (await client.get(f"/static/{name}")).status_code == 200
    for name in ("signin.html", "../settings.py", "%2e%2e%2fsettings.py", "nope.js"):
        assert (await client.get(f"/static/{name}")).status_code == 404


async def test_discovery_lists_the_code_flow(api: Api) -> None:
    client, _ = api
    meta = (await client.get("/.well-known/openid-configuration")).json()
    assert meta["authorization_endpoint"] == f"{ISS}/authorize"
    assert meta["userinfo_endpoint"] == f"{ISS}/userinfo"
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["subject_types_supported"] == ["public"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
    assert {"authorization_code", "refresh_token"} <= set(meta["grant_types_supported"])
    assert "openid" in meta["scopes_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("redirect_uris", ["http://rp.example/cb"], "plain http"),
        ("redirect_uris", ["https://rp.example/cb#x"], "fragment"),
        ("redirect_uris", ["/relative"], "absolute"),
        ("redirect_uris", ["https://user@rp.example/cb"], "user information"),
        ("origins", ["https://rp.example/path"], "scheme://host"),
        ("origins", ["HTTPS://RP.EXAMPLE"], "lowercase"),
        ("client_secret_hash", "plaintext-secret", "must be sha256:<64 lowercase hex digits>"),
    ],
)
def test_client_oidc_settings_are_validated(field: str, value: Any, problem: str) -> None:
    from did_auth.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        settings_for(clients=[{**STRICT, field: value}])
    text = "; ".join(err.value.problems)
    assert f"clients.0.{field}" in text and problem in text, text


async def test_a_step_up_scope_is_signed_in_with_a_totp_code_on_the_page(api: Api) -> None:
    """A step-up scope (wallet:withdraw) is no dead end: the hosted page is shown with the
    scope marked `step_up` (it asks for the authenticator app's code), and
    /authorize/complete demands the code with the signature (RFC 6238 TOTP; amr `otp`)."""
    import pyotp

    client, svc = api
    address, key = siwe_text.new_account()
    sub = f"did:pkh:eip155:31337:{address}"
    totp = pyotp.TOTP((await svc.otp.enroll(sub)).secret)
    await svc.otp.confirm(sub, totp.at(time.time()))
    config, verifier = await start(client, scope="openid wallet:withdraw")
    assert config["step_up"] == ["wallet:withdraw"]
    refused = await complete(client, config, key, address)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    nonce = (await client.post("/siwe/nonce", json={"client_id": "strict"})).json()["nonce"]
    text = siwe_for(config, address, nonce)
    r = await client.post("/authorize/complete", json={
        "request_id": config["request_id"], "message": text,
        "signature": siwe_text.sign(text, key), "otp": totp.at(time.time() + 30)})
    assert r.status_code == 200, r.text
    code = parse_qs(urlsplit(r.json()["redirect"]).query)["code"][0]
    tokens = (await exchange(client, code, verifier)).json()
    assert "wallet:withdraw" in tokens["scope"].split()
    claims = json.loads(base64.urlsafe_b64decode(tokens["access_token"].split(".")[1] + "=="))
    assert "otp" in claims["amr"]
