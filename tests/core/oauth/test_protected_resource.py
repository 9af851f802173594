"""Unit tests, no HTTP: the credentials of a protected-resource request (RFC 6750 §2.1, RFC
9449 §7.1), the challenge each refusal maps to (RFC 6750 §3, RFC 9449 §7.1), and the DPoP
binding of a session at the code exchange (RFC 9449 §5), with an injected clock."""

from __future__ import annotations

import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import InvalidGrant, ResourceAccessError
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.oauth.protected_resource import credentials
from did_auth.core.tokens.issue import new_sid
from did_auth.core.tokens.sessions import Session, SessionStore
from did_auth.edge.api.errors import error_response, resource_challenge

ALGS = ("ES256", "EdDSA")
T0 = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("DPoP   ", None),
        ("Basic ZGFwcDp4", None),
        ("Bearer abc.def", ("Bearer", "abc.def")),
        ("bearer  abc", ("Bearer", "abc")),  # RFC 7235 §2.1: schemes are case-insensitive
        ("DPOP abc", ("DPoP", "abc")),
        ("dpop abc=", ("DPoP", "abc=")),
    ],
)
def test_credentials(header: str | None, expected: tuple[str, str] | None) -> None:
    assert credentials(header) == expected


def test_challenges() -> None:
    missing = ResourceAccessError("an access token is required", error=None, scheme=None, algs=ALGS)
    assert resource_challenge(missing) == 'Bearer realm="did-auth", DPoP algs="ES256 EdDSA"'
    assert missing.to_dict()["error"] == "invalid_token" and missing.status == 401
    bearer = ResourceAccessError('bad "token" \\ here', error="invalid_token", scheme="Bearer",
                                 algs=ALGS)
    assert resource_challenge(bearer) == (
        "Bearer error=\"invalid_token\", error_description=\"bad 'token' ' here\""
    )
    dpop = ResourceAccessError("DPoP proof replayed", error="invalid_dpop_proof", scheme="DPoP",
                               algs=ALGS, reason="dpop_replay")
    assert resource_challenge(dpop) == (
        'DPoP error="invalid_dpop_proof", error_description="DPoP proof replayed", '
        'algs="ES256 EdDSA"'
    )
    assert dpop.reason == "dpop_replay"
    nonce = ResourceAccessError("use a nonce", error="use_dpop_nonce", scheme="DPoP", algs=ALGS,
                                nonce="n-1")
    r = error_response(nonce)
    assert r.status_code == 401 and r.headers["dpop-nonce"] == "n-1"
    assert r.headers["www-authenticate"].startswith('DPoP error="use_dpop_nonce"')


def _session(sid: str) -> Session:
    return Session(sid=sid, sub="did:pkh:eip155:1:0x" + "ab" * 20, client_id="c", audience="a",
                   scopes=("account:read",), auth_time=int(T0), amr=("siwe",), created_at=0.0,
                   expires_at=0.0)


async def test_bind_key_binds_once() -> None:
    clock = FixedClock(T0)
    sessions = SessionStore(MemoryStore(monotonic=clock.now), clock, refresh_ttl=600,
                            max_lifetime=3600)
    sid = new_sid()
    await sessions.create(_session(sid))
    bound = await sessions.bind_key(sid, "jkt-1")
    assert bound.jkt == "jkt-1"
    stored = await sessions.get(sid)
    assert stored is not None and stored.jkt == "jkt-1"
    assert (await sessions.bind_key(sid, "jkt-1")).jkt == "jkt-1"  # idempotent
    with pytest.raises(InvalidGrant):
        await sessions.bind_key(sid, "jkt-2")  # never re-bound to another key
    other = new_sid()
    await sessions.create(_session(other))
    book = RevocationBook(sessions.store, sessions, clock, access_ttl=300, session_lifetime=3600)
    assert await book.revoke_sid(other, reason="test")
    with pytest.raises(InvalidGrant):
        await sessions.bind_key(other, "jkt-1")
    with pytest.raises(InvalidGrant):
        await sessions.bind_key(new_sid(), "jkt-1")  # unknown session
    late = new_sid()
    await sessions.create(_session(late))
    clock.advance(3601)  # past the session's lifetime
    with pytest.raises(InvalidGrant):
        await sessions.bind_key(late, "jkt-1")
