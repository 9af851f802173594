"""The client authenticator without HTTP: injected clock, in-memory store."""

from __future__ import annotations

from typing import Any

import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.config.settings import Settings
from did_auth.core.clock import FixedClock
from did_auth.core.errors import InvalidClient, InvalidRequest
from did_auth.core.oauth.client_auth import ClientAuthenticator
from tests.security import oauth_clients as oc

T0 = 1_900_000_000.0


def _auth(clock: FixedClock, store: MemoryStore | None = None) -> ClientAuthenticator:
    settings = Settings(
        issuer=oc.ISS, clients=oc.CLIENTS,
        resource_servers=[{"name": "rs", "secret_hash": oc.hash_secret("rs-secret")}],
    )
    # The store's own expiry runs on the same injected clock.
    return ClientAuthenticator(settings, store or MemoryStore(monotonic=clock.now), clock,
                               issuer=oc.ISS)


def _jwt(**claims: Any) -> dict[str, str]:
    claims.setdefault("iat", int(T0))
    claims.setdefault("exp", int(T0) + 60)
    return oc.jwt_auth(oc.assertion(**claims))


async def test_methods_and_results() -> None:
    auth = _auth(FixedClock(T0))
    got = await auth.authenticate(None, {"client_id": "dapp"}, oc.TOKEN)
    assert (got.client_id, got.method) == ("dapp", "none")
    got = await auth.authenticate(oc.basic("vault", oc.SECRET)["Authorization"], {}, oc.TOKEN)
    assert (got.client_id, got.method) == ("vault", "client_secret_basic")
    got = await auth.authenticate(None, {"client_id": "vault", "client_secret": oc.SECRET},
                                  oc.TOKEN)
    assert got.method == "client_secret_post"
    got = await auth.authenticate(None, _jwt(), oc.TOKEN)
    assert (got.client_id, got.method) == ("bot", "private_key_jwt")
    got = await auth.authenticate(None, {"client_id": "rs", "client_secret": "rs-secret"},
                                  oc.ISS + "/introspect", resource_server=True)
    assert got.resource_server is not None and got.client is None
    with pytest.raises(InvalidClient):  # a client is not a resource server
        await auth.authenticate(None, {"client_id": "vault", "client_secret": oc.SECRET},
                                oc.ISS + "/introspect", resource_server=True)
    with pytest.raises(InvalidRequest):
        await auth.authenticate(None, {}, oc.TOKEN)
    with pytest.raises(InvalidClient) as err:
        await auth.authenticate("Bearer abc", {"client_id": "dapp"}, oc.TOKEN)
    assert not err.value.basic
    with pytest.raises(InvalidClient) as err:
        await auth.authenticate(oc.basic("vault", "nope")["Authorization"], {}, oc.TOKEN)
    assert err.value.basic


async def test_assertion_lifetime_boundaries() -> None:
    clock = FixedClock(T0)
    auth = _auth(clock)
    skew = 60  # Settings.clock_skew default
    # exp passed, within the allowed skew: accepted; beyond it: refused
    clock.t = T0 + 60 + skew
    await auth.authenticate(None, _jwt(), oc.TOKEN)
    clock.t = T0 + 60 + skew + 1
    with pytest.raises(InvalidClient, match="expired"):
        await auth.authenticate(None, _jwt(), oc.TOKEN)
    # a long exp (authlib's default is an hour) is bounded by iat + 300 s
    clock.t = T0 + 300 + skew
    await auth.authenticate(None, _jwt(exp=int(T0) + 3600), oc.TOKEN)
    clock.t = T0 + 300 + skew + 1
    with pytest.raises(InvalidClient, match="iat"):
        await auth.authenticate(None, _jwt(exp=int(T0) + 3600), oc.TOKEN)
    # iat in the future, nbf not reached
    clock.t = T0
    with pytest.raises(InvalidClient, match="iat"):
        await auth.authenticate(None, _jwt(iat=int(T0) + 120), oc.TOKEN)
    with pytest.raises(InvalidClient, match="not yet valid"):
        await auth.authenticate(None, _jwt(nbf=int(T0) + 120), oc.TOKEN)


async def test_jti_is_remembered_as_long_as_the_assertion_is_valid() -> None:
    clock = FixedClock(T0)
    store = MemoryStore(monotonic=clock.now)
    auth = _auth(clock, store)
    params = _jwt(jti="once")
    await auth.authenticate(None, params, oc.TOKEN)
    clock.t = T0 + 60 + 60  # still acceptable (exp + skew): still remembered
    with pytest.raises(InvalidClient, match="replayed"):
        await auth.authenticate(None, params, oc.TOKEN)
    # the same jti for another client is another assertion
    other = oc.jwt_auth(oc.assertion("vault", iat=int(T0), exp=int(T0) + 60, jti="once"))
    with pytest.raises(InvalidClient, match="not allowed"):  # vault has no keys
        await auth.authenticate(None, other, oc.TOKEN)


async def test_audience_forms() -> None:
    auth = _auth(FixedClock(T0))
    for aud in (oc.ISS, oc.TOKEN, [oc.ISS], ["https://x.example", oc.TOKEN],
                oc.ISS + "/revoke"):
        await auth.authenticate(None, _jwt(aud=aud), oc.ISS + "/revoke")
    for aud in ("https://x.example", [], None, 5, oc.ISS + "/"):
        with pytest.raises(InvalidClient, match="aud"):
            await auth.authenticate(None, _jwt(aud=aud), oc.ISS + "/revoke")
