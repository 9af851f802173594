"""Scope and audience decisions, pure: RFC 6749 §3.3 scope syntax, the client's policy,
EIP-5573 ReCap grants, step-up scopes and their token lifetimes."""

from __future__ import annotations

import pytest

from did_auth.config.settings import ClientConfig
from did_auth.core.errors import InvalidRequest, InvalidScope
from did_auth.core.policy.scopes import parse_scope, resolve_audience, resolve_scopes, token_ttl
from tests.core.flows.core import DAPP as DAPP_CONFIG
from tests.core.flows.core import settings

S = settings()
DAPP = ClientConfig(**DAPP_CONFIG)


def test_parse_scope_follows_rfc6749() -> None:
    assert parse_scope(None) is None
    assert parse_scope("a b a") == ("a", "b")  # duplicates collapse, order kept
    assert parse_scope("trade:write") == ("trade:write",)
    for bad in ("", " a", "a  b", "a ", 'a"b', "a\\b", "caf\u00e9", "a\tb"):
        with pytest.raises(InvalidScope):
            parse_scope(bad)
    with pytest.raises(InvalidScope, match="too many"):
        parse_scope(" ".join(f"s{i}" for i in range(33)))
    with pytest.raises(InvalidRequest):
        parse_scope(["a"])


def test_audience_is_one_of_the_clients() -> None:
    assert resolve_audience(DAPP, None) == "trading-api"  # the first is the default
    assert resolve_audience(DAPP, "other-api") == "other-api"
    with pytest.raises(InvalidScope):
        resolve_audience(DAPP, "elsewhere")
    for bad in ("", 5):
        with pytest.raises(InvalidRequest):
            resolve_audience(DAPP, bad)


def test_requested_default_and_signed_scopes() -> None:
    assert resolve_scopes(S, DAPP, None) == ("account:read",)  # default_scopes
    assert resolve_scopes(S, DAPP, ("trade:write",)) == ("trade:write",)
    with pytest.raises(InvalidScope, match="not allowed"):
        resolve_scopes(S, DAPP, ("admin",))
    # a signed ReCap: exactly what it names within the client's policy, never more
    assert resolve_scopes(S, DAPP, None, signed={"trade:write", "admin"}) == ("trade:write",)
    with pytest.raises(InvalidScope, match="ReCap"):
        resolve_scopes(S, DAPP, ("account:read",), signed={"trade:write"})
    with pytest.raises(InvalidScope, match="no scope"):
        resolve_scopes(S, DAPP, None, signed={"admin"})


def test_step_up_scopes_need_a_second_factor_and_shorten_the_token() -> None:
    with pytest.raises(InvalidScope) as err:
        resolve_scopes(S, DAPP, ("account:read", "wallet:withdraw"))
    assert err.value.reason == "step_up_required"
    got = resolve_scopes(S, DAPP, ("account:read", "wallet:withdraw"), step_up_ok=True)
    assert got == ("account:read", "wallet:withdraw")
    assert token_ttl(S, ("account:read",)) == S.access_token_ttl == 300
    assert token_ttl(S, got) == 60  # the step-up scope's max_ttl


def test_delegates_get_the_delegate_scopes() -> None:
    client = ClientConfig(**{**DAPP_CONFIG, "delegate_scopes": ["account:read"]})
    assert resolve_scopes(S, client, ("account:read",), delegate=True) == ("account:read",)
    with pytest.raises(InvalidScope):
        resolve_scopes(S, client, ("trade:write",), delegate=True)
    assert resolve_scopes(S, client, ("trade:write",)) == ("trade:write",)
