"""A pending TOTP enrolment cannot outlive the rule that let it start.

Who may add a second factor is decided at `POST /otp/enroll` (a fresh login only while the
account has no factor; with a passkey or a TOTP, the current factor). The attack: a token
stolen right after a login, while the account has no factor, starts a TOTP enrolment; the
owner then registers a passkey (from then on a fresh token alone may add no factor); the
thief confirms his pending enrolment and would own a second factor of the account. Refused:

* registering a passkey cancels the account's pending TOTP enrolment;
* `/otp/confirm` re-applies the start's rule to the account's factors as they are now (a
  passkey or an active TOTP the start did not answer for: 403 `access_denied`);
* the pending enrolment belongs to the session (`sid`) that started it: confirming it from
  another session of the account is 403 `access_denied`.

Every refusal leaves the account without the thief's TOTP. Real Redis, over HTTP.
"""

from __future__ import annotations

import pyotp

from did_auth.core.did.accounts import account_key
from did_auth.core.ports import store_keys
from tests import siwe_text
from tests.security.test_passkey_attacks import ORIGIN, RP_ID, Env, env  # noqa: F401
from tests.soft_authenticator import SoftAuthenticator


def _error(r: object, status: int, error: str) -> None:
    import httpx

    assert isinstance(r, httpx.Response)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and body["error_description"], body


async def _two_sessions(env: Env) -> tuple[str, str, str]:  # noqa: F811
    address, key = siwe_text.new_account()
    thief = await env.token(address, key)  # stolen right after a login
    owner = await env.token(address, key)  # the owner's own session
    return f"did:pkh:eip155:31337:{address}", thief, owner


async def test_passkey_registered_after_the_start_refuses_the_thiefs_confirm(
    env: Env,  # noqa: F811
) -> None:
    sub, thief, owner = await _two_sessions(env)
    r = await env.call("POST", "/otp/enroll", thief, {})
    assert r.status_code == 200, r.text
    totp = pyotp.TOTP(r.json()["secret"])
    pending_key = store_keys.otp_pending(account_key(sub))
    pending = await env.svc.store.get(pending_key)
    assert pending is not None

    await env.register(owner, SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN))
    # As documented: a fresh token alone no longer starts an enrolment.
    _error(await env.call("POST", "/otp/enroll", thief, {}), 403, "access_denied")
    # The passkey's registration cancelled the pending enrolment.
    assert await env.svc.store.get(pending_key) is None
    _error(await env.call("POST", "/otp/confirm", thief, {"otp": totp.at(env.clock.now())}),
           400, "invalid_request")
    assert not await env.svc.otp.enrolled(sub)

    # Had the pending record survived (written after the registration cancelled it, a
    # race), the confirm re-checks the rule against the account's factors as they are now.
    await env.svc.store.put(pending_key, pending, 900)
    _error(await env.call("POST", "/otp/confirm", thief, {"otp": totp.at(env.clock.now())}),
           403, "access_denied")
    assert not await env.svc.otp.enrolled(sub)
    assert await env.svc.store.get(pending_key) == pending  # no state change


async def test_a_pending_enrolment_is_confirmed_only_by_the_session_that_started_it(
    env: Env,  # noqa: F811
) -> None:
    sub, thief, owner = await _two_sessions(env)
    r = await env.call("POST", "/otp/enroll", owner, {})
    assert r.status_code == 200, r.text
    totp = pyotp.TOTP(r.json()["secret"])
    pending_key = store_keys.otp_pending(account_key(sub))
    pending = await env.svc.store.get(pending_key)
    # Another session of the account (one that saw the secret, say) cannot activate it.
    _error(await env.call("POST", "/otp/confirm", thief, {"otp": totp.at(env.clock.now())}),
           403, "access_denied")
    assert not await env.svc.otp.enrolled(sub)
    assert await env.svc.store.get(pending_key) == pending
    # The session that started it can.
    r = await env.call("POST", "/otp/confirm", owner, {"otp": totp.at(env.clock.now())})
    assert r.status_code == 200 and r.json() == {"enrolled": True, "replaced": False}, r.text
    assert await env.svc.otp.enrolled(sub)
