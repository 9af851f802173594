"""Attacks on passkeys (WebAuthn L2) as a second factor, each refused with a 4xx and no
state change (the account's stored passkeys, their sign counters and the outstanding
challenge are byte-for-byte as before):

* an assertion made for another challenge (one the server never issued, or one issued for
  another transaction), on another origin, for another RP id, with a sign counter that went
  backwards (a cloned authenticator, WebAuthn §7.2 step 21), by another account's passkey,
  or replayed;
* registering a passkey, or removing one, with a token whose login is not fresh (a leaked
  token must not choose or strip the account's factors), and adding a passkey with a fresh
  token alone when the account already has a factor (a token stolen right after a login
  must not give the thief a factor of his own), nor enrolling its first TOTP.

Real Redis; registration and removal over HTTP; assertions through the factor seam the
withdrawal approval uses (`WebAuthnFactor`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from did_auth.adapters.monitoring.audit import AuditLog
from did_auth.core.clock import FixedClock
from did_auth.core.did.accounts import account_key
from did_auth.core.errors import DidAuthError
from did_auth.core.flows.passkeys import REGISTRATION_BINDING, WebAuthnFactor
from did_auth.core.ports import store_keys
from did_auth.services import Services
from tests import siwe_text
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import running_app, settings_for
from tests.soft_authenticator import SoftAuthenticator

MAX_AGE = 60
RP_ID, ORIGIN = "localhost", "http://localhost:8000"


@dataclass
class Env:
    client: httpx.AsyncClient
    svc: Services
    clock: FixedClock
    audit: AuditLog

    async def token(self, address: str, key: bytes) -> str:
        r = await self.client.post("/siwe/nonce", json={"client_id": "dapp"})
        text = siwe_text.message(address, r.json()["nonce"], issued_at=self.clock.now())
        r = await self.client.post("/siwe/verify", json={
            "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key),
            "audience": "http://testserver"})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def call(self, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        return await self.client.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, json=body)

    async def register(
        self, token: str, device: SoftAuthenticator, confirm: SoftAuthenticator | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if confirm is not None:  # a passkey the account has: the current factor
            r = await self.call("POST", "/passkeys/assert/options", token,
                                {"binding": REGISTRATION_BINDING})
            body = {"webauthn": confirm.get(r.json())}
        r = await self.call("POST", "/passkeys/register/options", token, body)
        assert r.status_code == 200, r.text
        r = await self.call("POST", "/passkeys/register", token,
                            {"credential": device.create(r.json()), "name": "key"})
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def state(self, sub: str) -> tuple[bytes | None, list[str]]:
        """The account's passkey record as stored, and its outstanding challenges."""
        account = account_key(sub)
        return (await self.svc.store.get(store_keys.passkeys(account)),
                sorted(await self.svc.store.members(store_keys.passkey_outstanding(account))))

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["event"] == event]


@pytest.fixture
async def env(redis_server: RedisServer, session_kek: str) -> AsyncIterator[Env]:
    settings = settings_for(
        redis_url=redis_server.own_db(15), key_encryption_key_file=session_kek,
        access_token_ttl=3600, step_up_max_age=MAX_AGE,
        webauthn={"rp_id": RP_ID, "origins": [ORIGIN]},
    )
    clock = FixedClock(time.time() - 1000)  # advanced by the tests, never ahead of the wall
    audit = AuditLog.memory()
    async with running_app(settings, clock=clock, audit=audit) as (client, svc):
        yield Env(client, svc, clock, audit)


@dataclass
class Account:
    sub: str
    token: str
    device: SoftAuthenticator


async def account(env: Env) -> Account:
    address, key = siwe_text.new_account()
    token = await env.token(address, key)
    device = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    await env.register(token, device)
    return Account(f"did:pkh:eip155:31337:{address}", token, device)


async def options(env: Env, who: Account, binding: str) -> dict[str, Any]:
    r = await env.call("POST", "/passkeys/assert/options", who.token, {"binding": binding})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def refused(env: Env, sub: str, assertion: object, binding: str) -> DidAuthError:
    before = await env.state(sub)
    with pytest.raises(DidAuthError) as caught:
        await WebAuthnFactor(env.svc.passkeys).verify(sub, assertion, binding=binding)
    assert 400 <= caught.value.status < 500, caught.value
    assert await env.state(sub) == before
    return caught.value


async def test_assertion_for_another_challenge_is_refused(env: Env) -> None:
    alice = await account(env)
    await options(env, alice, "tx-1")
    forged = alice.device.get("A" * 43)  # a challenge the server never issued
    assert (await refused(env, alice.sub, forged, "tx-1")).reason == "passkey_challenge"
    made_for_1 = alice.device.get(await options(env, alice, "tx-1"))
    # The same assertion offered to approve another transaction.
    assert (await refused(env, alice.sub, made_for_1, "tx-2")).reason == "passkey_challenge"


async def test_assertion_from_another_origin_or_rp_id_is_refused(env: Env) -> None:
    alice = await account(env)
    phished = alice.device.get(await options(env, alice, "tx"), origin="https://evil.example")
    assert (await refused(env, alice.sub, phished, "tx")).reason == "passkey_invalid"
    other_rp = alice.device.get(await options(env, alice, "tx"), rp_id="evil.example")
    assert (await refused(env, alice.sub, other_rp, "tx")).reason == "passkey_invalid"


async def test_counter_gone_backwards_is_refused(env: Env) -> None:
    alice = await account(env)
    alice.device.sign_count = 41
    ok = alice.device.get(await options(env, alice, "tx"))  # 42
    assert await WebAuthnFactor(env.svc.passkeys).verify(alice.sub, ok, binding="tx") == ("hwk",)
    clone = alice.device.get(await options(env, alice, "tx"), count=7)
    assert (await refused(env, alice.sub, clone, "tx")).reason == "passkey_counter"
    same = alice.device.get(await options(env, alice, "tx"), count=42)
    assert (await refused(env, alice.sub, same, "tx")).reason == "passkey_counter"


async def test_another_accounts_passkey_is_refused(env: Env) -> None:
    alice, mallory = await account(env), await account(env)
    # Mallory's authenticator answers a challenge issued to Alice.
    stolen = mallory.device.get(await options(env, alice, "tx"))
    assert (await refused(env, alice.sub, stolen, "tx")).reason == "passkey_unknown"
    # Mallory's own valid assertion presented as Alice's factor.
    own = mallory.device.get(await options(env, mallory, "tx"))
    assert (await refused(env, alice.sub, own, "tx")).reason == "passkey_challenge"


async def test_replayed_assertion_is_refused(env: Env) -> None:
    alice = await account(env)
    assertion = alice.device.get(await options(env, alice, "tx"))
    assert await WebAuthnFactor(env.svc.passkeys).verify(alice.sub, assertion, binding="tx")
    assert (await refused(env, alice.sub, assertion, "tx")).reason == "passkey_challenge"


async def test_registration_needs_a_fresh_login(env: Env) -> None:
    address, key = siwe_text.new_account()
    sub = f"did:pkh:eip155:31337:{address}"
    token = await env.token(address, key)
    r = await env.call("POST", "/passkeys/register/options", token, {})
    assert r.status_code == 200, r.text
    env.clock.advance(MAX_AGE + 1)  # the token still lives; its login is no longer fresh
    before = await env.state(sub)
    r2 = await env.call("POST", "/passkeys/register/options", token, {})
    assert r2.status_code == 401 and r2.json()["error"] == "insufficient_user_authentication"
    assert r2.headers["www-authenticate"].endswith(f'max_age="{MAX_AGE}"')  # RFC 9470 §3
    device = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    r3 = await env.call("POST", "/passkeys/register", token, {"credential": device.create(r.json())})
    assert r3.status_code == 401, r3.text
    assert await env.state(sub) == before
    r4 = await env.call("GET", "/passkeys", token)
    assert r4.status_code == 200 and r4.json() == {"passkeys": []}
    assert [e["reason"] for e in env.events("passkey_registration")] == ["login_too_old"]


async def test_removal_needs_a_fresh_login(env: Env) -> None:
    alice = await account(env)
    (listed,) = (await env.call("GET", "/passkeys", alice.token)).json()["passkeys"]
    env.clock.advance(MAX_AGE + 1)
    before = await env.state(alice.sub)
    r = await env.call("DELETE", f"/passkeys/{listed['id']}", alice.token)
    assert r.status_code == 401 and r.json()["error"] == "insufficient_user_authentication"
    assert await env.state(alice.sub) == before
    assert (await env.call("GET", "/passkeys", alice.token)).json()["passkeys"] == [listed]


async def test_a_fresh_login_registers_several_and_removes(env: Env) -> None:
    alice = await account(env)
    second = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, backup_eligible=True)
    added = await env.register(alice.token, second, confirm=alice.device)
    assert added["amr"] == ["swk"]
    listed = (await env.call("GET", "/passkeys", alice.token)).json()["passkeys"]
    assert [p["amr"] for p in listed] == [["hwk"], ["swk"]]
    r = await env.call("DELETE", f"/passkeys/{listed[0]['id']}", alice.token)
    assert r.status_code == 204, r.text
    assert (await env.call("GET", "/passkeys", alice.token)).json()["passkeys"] == [listed[1]]
    assert [e["outcome"] for e in env.events("passkey_removal")] == ["success"]


async def test_a_fresh_token_alone_cannot_add_a_passkey_to_an_account_with_a_factor(
    env: Env,
) -> None:
    alice = await account(env)  # a fresh login; a passkey is registered
    before = await env.state(alice.sub)
    r = await env.call("POST", "/passkeys/register/options", alice.token, {})
    assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text
    assert await env.state(alice.sub) == before
    # The thief's own authenticator cannot stand in for the account's passkey either.
    thief = SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN)
    r = await env.call("POST", "/passkeys/assert/options", alice.token,
                       {"binding": REGISTRATION_BINDING})
    r = await env.call("POST", "/passkeys/register/options", alice.token,
                       {"webauthn": thief.get(r.json())})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert (await env.state(alice.sub))[0] == before[0]
    listed = (await env.call("GET", "/passkeys", alice.token)).json()["passkeys"]
    assert len(listed) == 1


async def test_a_fresh_token_alone_cannot_enrol_a_totp_on_an_account_with_a_passkey(
    env: Env,
) -> None:
    alice = await account(env)
    r = await env.call("POST", "/otp/enroll", alice.token, {})
    assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text
    assert not await env.svc.otp.enrolled(alice.sub)
    # With the passkey's assertion made for adding a factor, the enrolment starts.
    r = await env.call("POST", "/passkeys/assert/options", alice.token,
                       {"binding": REGISTRATION_BINDING})
    r = await env.call("POST", "/otp/enroll", alice.token,
                       {"webauthn": alice.device.get(r.json())})
    assert r.status_code == 200 and r.json()["secret"], r.text
    methods = [e.get("method") for e in env.events("second_factor_enrolment")]
    assert methods == ["fresh_login", "passkey"]
