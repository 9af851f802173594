"""The client policy on an EIP-4361 message, pure: `domain` (the relying party MUST check it
matches its origin), `uri` under a registered URI in its normalised RFC 3986 form, chain."""

from __future__ import annotations

import pytest

from did_auth.config.settings import ClientConfig
from did_auth.core.errors import InvalidClient, InvalidGrant, InvalidRequest
from did_auth.core.policy.clients import check_chain, check_domain, check_uri, get_client
from tests.core.flows.core import DAPP, settings

S = settings()


def _client(**over: object) -> ClientConfig:
    return ClientConfig(**{**DAPP, "domains": ["app.example"], "uris": ["https://app.example/app"],
                           **over})


def _reason(fn: object, *args: object) -> str | None:
    with pytest.raises(InvalidGrant) as err:
        fn(*args)  # type: ignore[operator]
    return err.value.reason


def test_get_client() -> None:
    assert get_client(S, "dapp").client_id == "dapp"
    with pytest.raises(InvalidClient):
        get_client(S, "nobody")
    for bad in (None, "", 5):
        with pytest.raises(InvalidRequest):
            get_client(S, bad)


def test_domain_is_exactly_a_registered_one() -> None:
    c = _client()
    check_domain(c, "app.example")
    for bad in ("APP.example.evil", "evil.example", "app.example:8443", "user@app.example"):
        assert _reason(check_domain, c, bad) == "domain"
    # loopback on any port only for an any_localhost_port client (RFC 8252 §7.3), no userinfo
    assert _reason(check_domain, c, "localhost:3000") == "domain"
    local = _client(any_localhost_port=True)
    for ok in ("localhost:3000", "127.0.0.1:9", "[::1]:8080", "app.example:8443"):
        check_domain(local, ok)
    assert _reason(check_domain, local, "evil@localhost:3000") == "domain"


def test_uri_lies_under_a_registered_uri() -> None:
    c = _client()
    for ok in ("https://app.example/app", "https://app.example/app/login",
               "https://app.example:443/app/x?y=1", "HTTPS://APP.EXAMPLE/app"):
        check_uri(c, ok, None)
    for bad in (
        "https://app.example/application",  # a prefix must end at a segment boundary
        "https://app.example/",  # above the registered path
        "http://app.example/app",  # another scheme
        "https://app.example:8443/app",  # another port
        "https://app.example.evil/app",
        "https://user@app.example/app",  # userinfo (RFC 3986 §3.2.1, §7.6)
        "https://app.example/app/../admin",  # dot-segments (RFC 3986 §5.2.4)
        "https://app.example/app/%2e%2e/admin",
        "https://app.example/app%2fx",  # encoded separators
        "https://app.example/app\\x",
        "https://[::1/app",  # not a URI
    ):
        assert _reason(check_uri, c, bad, None) == "uri", bad
    # the message's scheme (EIP-4361 `scheme`) must be its uri's
    assert _reason(check_uri, c, "https://app.example/app", "http") == "scheme"
    check_uri(c, "https://app.example/app", "https")


def test_chain_is_one_of_the_clients() -> None:
    c = _client(chain_ids=[1])
    check_chain(c, 1)
    with pytest.raises(InvalidRequest) as err:
        check_chain(c, 31337)
    assert err.value.reason == "chain"
