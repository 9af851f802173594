"""The OpenID Connect authorization-code flow's state without HTTP: a parked authorization
request (OIDC Core §3.1.2, 600 s), its single completion by a wallet signature for this
request and this page (EIP-4361 `Request ID`), the sealed 60 s code (RFC 6749 §4.1.2),
cancel (`access_denied`). Injected clock, in-memory store."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from did_auth.core.errors import InvalidGrant, InvalidRequest
from did_auth.core.flows.oidc import (
    CODE_TTL,
    REQUEST_TTL,
    AuthorizationRequest,
    AuthorizeRedirectError,
    OidcProvider,
    SignInPage,
)
from did_auth.core.oauth.codes import code_keys, open_code, s256_challenge
from tests import siwe_text
from tests.core.flows.core import ISS, Core, make_core

CB = "https://rp.example/cb"


async def _provider() -> tuple[Core, OidcProvider]:
    core = await make_core()
    return core, OidcProvider(settings=core.settings, clock=core.clock, store=core.store,
                              keys=core.keys, sessions=core.sessions, siwe=core.siwe)


def _params(**over: str) -> dict[str, str]:
    params = {
        "client_id": "dapp", "redirect_uri": CB, "response_type": "code",
        "scope": "openid account:read trade:write", "state": "st-1", "nonce": "n-1",
        "code_challenge": s256_challenge(secrets.token_urlsafe(48)),
        "code_challenge_method": "S256",
    }
    params.update(over)
    return params


async def _signed(core: Core, page: SignInPage, **over: Any) -> tuple[str, str]:
    """The wallet's side: an EIP-4361 message for the page, signed; (text, signature)."""
    address, key = siwe_text.new_account()
    over.setdefault("domain", "auth.example")
    over.setdefault("uri", ISS + "/authorize")
    over.setdefault("statement", page.statement)
    over.setdefault("resources", list(page.resources))
    over.setdefault("request_id", page.request_id)
    text = core.siwe_text(address, await core.nonces.issue("dapp"), **over)
    return text, siwe_text.sign(text, key)


async def test_authorize_parks_the_request_and_describes_the_page() -> None:
    core, oidc = await _provider()
    request, page = await oidc.authorize(_params())
    assert request.expires_at == core.clock.now() + REQUEST_TTL
    assert request.scopes == ("account:read", "trade:write")  # openid stays out of the grant
    assert request.scope == "openid account:read trade:write"
    assert page.request_id == request.request_id and page.redirect_host == "rp.example"
    assert page.mode == "authorize" and page.audience == "trading-api"
    assert page.statement.startswith("Sign in to Example dApp.")
    (raw,) = [v for k, (v, _) in core.store._data.items() if request.request_id in k]
    assert AuthorizationRequest.from_bytes(raw) == request


async def test_the_parked_request_lives_600_seconds() -> None:
    core, oidc = await _provider()
    _, page = await oidc.authorize(_params())
    core.clock.advance(REQUEST_TTL)
    text, sig = await _signed(core, page, issued_at=core.clock.now())
    with pytest.raises(InvalidGrant) as err:
        await oidc.codes.complete(page.request_id, text, sig)
    assert err.value.reason == "authorize_request_unknown"


async def test_complete_returns_a_code_at_the_redirect_uri() -> None:
    core, oidc = await _provider()
    request, page = await oidc.authorize(_params())
    text, sig = await _signed(core, page)
    location, grant = await oidc.codes.complete(page.request_id, text, sig)
    assert location.startswith(CB + "?")
    q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert q["state"] == "st-1" and q["iss"] == ISS  # RFC 9207
    assert grant.scopes == request.scopes and grant.client_id == "dapp"
    # the code record is sealed under the code: only its holder reads the tokens back
    key, _ = code_keys(q["code"])
    raw = await core.store.get(key)
    assert raw is not None and b"access_token" not in raw and grant.sid.encode() not in raw
    record = open_code(q["code"], raw)
    assert record is not None and record["nonce"] == "n-1"
    assert record["code_challenge"] == request.code_challenge and record["redirect_uri"] == CB
    assert record["grant"]["sid"] == grant.sid and record["tokens"]["access_token"]
    assert open_code(q["code"] + "x", raw) is None
    # RFC 6749 §4.1.2: the code is short-lived (60 s here), in the store as in the record
    assert record["exp"] == core.clock.now() + CODE_TTL
    core.clock.advance(CODE_TTL)
    assert await core.store.get(key) is None


async def test_a_request_is_completed_once() -> None:
    core, oidc = await _provider()
    _, page = await oidc.authorize(_params())
    text, sig = await _signed(core, page)
    await oidc.codes.complete(page.request_id, text, sig)
    again, sig2 = await _signed(core, page)
    with pytest.raises(InvalidGrant) as err:
        await oidc.codes.complete(page.request_id, again, sig2)
    assert err.value.reason == "authorize_request_unknown"


async def test_concurrent_completions_yield_one_code_and_revoke_the_loser() -> None:
    core, oidc = await _provider()
    _, page = await oidc.authorize(_params())
    one, two = await _signed(core, page), await _signed(core, page)
    # The in-memory store never suspends: make each read yield to the event loop, so that
    # both completions pass the request check before either takes the request.
    real_get = core.store.get

    async def get(key: str) -> bytes | None:
        value = await real_get(key)
        await asyncio.sleep(0)
        return value

    core.store.get = get  # type: ignore[method-assign]
    created: list[str] = []
    real_create = core.sessions.create

    async def create(session: Any) -> Any:
        created.append(session.sid)
        return await real_create(session)

    core.sessions.create = create  # type: ignore[method-assign]
    results = await asyncio.gather(oidc.codes.complete(page.request_id, *one),
                                   oidc.codes.complete(page.request_id, *two),
                                   return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 1 and len(failed) == 1 and isinstance(failed[0], InvalidGrant)
    assert str(failed[0]) == "the sign-in request was already used"
    # both logins made a session; the one that lost the request is revoked
    sessions = [await core.sessions.get(sid) for sid in created]
    _, winner = ok[0]
    assert sorted((s.sid == winner.sid, s.revoked) for s in sessions if s) == [
        (False, True), (True, False)]


async def test_the_message_is_for_this_request_and_this_page() -> None:
    core, oidc = await _provider()
    _, page = await oidc.authorize(_params())
    _, other = await oidc.authorize(_params())
    for over in ({"request_id": other.request_id}, {"request_id": None},
                 {"domain": "localhost:3000"}, {"uri": ISS + "/signin"}):
        text, sig = await _signed(core, page, **over)
        with pytest.raises(InvalidGrant):
            await oidc.codes.complete(page.request_id, text, sig)
    # none of the refusals used the request up
    text, sig = await _signed(core, page)
    await oidc.codes.complete(page.request_id, text, sig)


async def test_a_refused_signature_leaves_the_request_open() -> None:
    core, oidc = await _provider()
    _, page = await oidc.authorize(_params())
    text, _ = await _signed(core, page)
    _, stranger = siwe_text.new_account()
    with pytest.raises(InvalidGrant):
        await oidc.codes.complete(page.request_id, text, siwe_text.sign(text, stranger))
    text, sig = await _signed(core, page)
    await oidc.codes.complete(page.request_id, text, sig)


@pytest.mark.parametrize("request_id", [None, 5, "", "short", "x" * 65, "bad id with spaces!!"])
async def test_malformed_request_ids(request_id: Any) -> None:
    _, oidc = await _provider()
    with pytest.raises(InvalidRequest):
        await oidc.codes.complete(request_id, "m", "0x")


async def test_cancel_redirects_access_denied_and_ends_the_request() -> None:
    core, oidc = await _provider()
    _, page = await oidc.authorize(_params(state="s 2"))
    location = await oidc.cancel(page.request_id)
    q = parse_qs(urlsplit(location).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["s 2"] and q["iss"] == [ISS]
    text, sig = await _signed(core, page)
    with pytest.raises(InvalidGrant):
        await oidc.codes.complete(page.request_id, text, sig)


async def test_redirected_errors_carry_state_and_issuer() -> None:
    _, oidc = await _provider()
    with pytest.raises(AuthorizeRedirectError) as err:
        await oidc.authorize(_params(code_challenge_method="plain"))
    q = parse_qs(urlsplit(err.value.location).query)
    assert q["error"] == ["invalid_request"] and q["state"] == ["st-1"] and q["iss"] == [ISS]
    with pytest.raises(AuthorizeRedirectError) as err:
        await oidc.authorize(_params(scope="account:read"))  # openid is required
    assert err.value.error == "invalid_scope"
