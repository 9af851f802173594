"""Enrolling or replacing a second factor needs a fresh login or the current factor.

The attack: a leaked `account:read` access token (its login long past) calls
`POST /otp/enroll` and enrols the attacker's TOTP; with it the attacker passes step-up for
`wallet:withdraw` once he also holds a wallet signature. And a token stolen right after a
login must not *replace* an enrolled factor. Lost factors are replaced with a wallet
signature made for that purpose (EIP-4361 message with the re-enrolment statement and
resource, single-use nonce), and every enrolment is audited. Real Redis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
import pytest

from did_auth.adapters.monitoring.audit import AuditLog
from did_auth.core.clock import FixedClock
from did_auth.core.flows.otp_enrolment import REENROL_RESOURCE, REENROL_STATEMENT
from did_auth.services import Services
from tests import siwe_text
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import running_app, settings_for

MAX_AGE = 60


@dataclass
class Env:
    client: httpx.AsyncClient
    svc: Services
    clock: FixedClock
    audit: AuditLog

    async def nonce(self) -> str:
        r = await self.client.post("/siwe/nonce", json={"client_id": "dapp"})
        assert r.status_code == 200, r.text
        return str(r.json()["nonce"])

    async def login(self, address: str, key: bytes, **kw: Any) -> httpx.Response:
        text = siwe_text.message(address, await self.nonce(), issued_at=self.clock.now())
        return await self.client.post("/siwe/verify", json={
            "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key), **kw})

    async def token(self, address: str, key: bytes) -> str:
        # A token for did-auth itself: the /otp routes refuse other audiences (RFC 9068 §4).
        r = await self.login(address, key, audience="http://testserver")
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def enroll(self, token: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(
            "/otp/enroll", headers={"Authorization": f"Bearer {token}"}, json=body)

    async def confirm(self, token: str, code: str) -> httpx.Response:
        return await self.client.post(
            "/otp/confirm", headers={"Authorization": f"Bearer {token}"}, json={"otp": code})

    def code(self, secret: str) -> str:
        return pyotp.TOTP(secret).at(self.clock.now())

    async def reenrol_proof(
        self, address: str, key: bytes, *, statement: str = REENROL_STATEMENT,
        resources: list[str] | None = None,
    ) -> dict[str, str]:
        text = siwe_text.message(
            address, await self.nonce(), issued_at=self.clock.now(), statement=statement,
            resources=[REENROL_RESOURCE] if resources is None else resources,
        )
        return {"message": text, "signature": siwe_text.sign(text, key)}

    def events(self, event: str) -> list[dict[str, Any]]:
        return [r for r in self.audit.records if r["event"] == event]


@pytest.fixture
async def env(redis_server: RedisServer, session_kek: str) -> AsyncIterator[Env]:
    # A database of its own: signing keys made by other tests at the wall-clock time would
    # be from the future for this test's clock.
    settings = settings_for(
        redis_url=redis_server.own_db(15), key_encryption_key_file=session_kek,
        access_token_ttl=3600, step_up_max_age=MAX_AGE,
        scopes={"wallet:withdraw": {"step_up": True, "max_ttl": 60}},
    )
    # In the past, advanced by the tests: token `iat` must never be ahead of the wall clock.
    clock = FixedClock(time.time() - 1000)
    audit = AuditLog.memory()
    async with running_app(settings, clock=clock, audit=audit) as (client, svc):
        yield Env(client, svc, clock, audit)


async def enrolled(env: Env, address: str, key: bytes) -> str:
    """Enrol a factor with a fresh login; returns its secret."""
    token = await env.token(address, key)
    r = await env.enroll(token)
    assert r.status_code == 200, r.text
    secret = str(r.json()["secret"])
    r = await env.confirm(token, env.code(secret))
    assert r.status_code == 200 and r.json() == {"enrolled": True, "replaced": False}, r.text
    env.clock.advance(30)  # the next code is another time step
    return secret


async def test_a_leaked_old_token_cannot_enrol_a_second_factor(env: Env) -> None:
    address, key = siwe_text.new_account()
    token = await env.token(address, key)
    env.clock.advance(MAX_AGE + 60)  # the token is still valid, its login is not fresh
    r = await env.enroll(token)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "insufficient_user_authentication"
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_user_authentication", ')
    assert challenge.endswith(f'max_age="{MAX_AGE}"')  # RFC 9470 §3
    assert not await env.svc.otp.enrolled(f"did:pkh:eip155:31337:{address}")
    (denied,) = env.events("second_factor_enrolment")
    assert denied["outcome"] == "denied" and denied["reason"] == "login_too_old"
    # a fresh login may enrol
    r = await env.enroll(await env.token(address, key))
    assert r.status_code == 200 and r.json()["replaces"] is False, r.text


async def test_a_fresh_token_alone_cannot_replace_an_enrolled_factor(env: Env) -> None:
    address, key = siwe_text.new_account()
    secret = await enrolled(env, address, key)
    stolen = await env.token(address, key)  # stolen right after a login: fresh
    r = await env.enroll(stolen)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "access_denied"
    assert "otp" in r.json()["error_description"] and "siwe" in r.json()["error_description"]
    r = await env.enroll(stolen, {"otp": "000000" if env.code(secret) != "000000" else "111111"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    # the enrolled factor still works for step-up
    r = await env.login(address, key, scope="wallet:withdraw", otp=env.code(secret))
    assert r.status_code == 200, r.text


async def test_the_current_factor_replaces_itself_even_with_an_old_token(env: Env) -> None:
    address, key = siwe_text.new_account()
    old_secret = await enrolled(env, address, key)
    token = await env.token(address, key)
    env.clock.advance(MAX_AGE + 60)
    r = await env.enroll(token, {"otp": env.code(old_secret)})
    assert r.status_code == 200 and r.json()["replaces"] is True, r.text
    new_secret = r.json()["secret"]
    env.clock.advance(30)
    r = await env.confirm(token, env.code(new_secret))
    assert r.status_code == 200 and r.json() == {"enrolled": True, "replaced": True}, r.text
    env.clock.advance(30)
    r = await env.login(address, key, scope="wallet:withdraw", otp=env.code(old_secret))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    env.clock.advance(30)
    r = await env.login(address, key, scope="wallet:withdraw", otp=env.code(new_secret))
    assert r.status_code == 200, r.text
    (ok,) = [e for e in env.events("second_factor_enrolment") if e["outcome"] == "success"
             and e["replaces"]]
    assert ok["reason"] == "current_otp"


async def test_a_lost_factor_is_replaced_with_a_wallet_signature_and_audited(env: Env) -> None:
    address, key = siwe_text.new_account()
    await enrolled(env, address, key)  # ... and lost
    token = await env.token(address, key)
    other_address, other_key = siwe_text.new_account()
    refusals = [
        # a plain login message is no re-enrolment signature
        (await env.reenrol_proof(address, key, statement="Sign in to the trading venue.",
                                 resources=[]), 400, "invalid_request"),
        (await env.reenrol_proof(address, key, resources=["https://example.com/"]), 400,
         "invalid_request"),
        # another wallet's signature
        (await env.reenrol_proof(other_address, other_key), 400, "invalid_grant"),
    ]
    bad = await env.reenrol_proof(address, key)
    bad["signature"] = siwe_text.sign(bad["message"], other_key)
    refusals.append((bad, 400, "invalid_grant"))
    for proof, status, error in refusals:
        r = await env.enroll(token, {"siwe": proof})
        assert r.status_code == status and r.json()["error"] == error, (proof, r.text)

    proof = await env.reenrol_proof(address, key)
    r = await env.enroll(token, {"siwe": proof})
    assert r.status_code == 200 and r.json()["replaces"] is True, r.text
    secret = r.json()["secret"]
    r = await env.enroll(token, {"siwe": proof})  # single use: the nonce is spent
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    env.clock.advance(30)
    r = await env.confirm(token, env.code(secret))
    assert r.status_code == 200 and r.json()["replaced"] is True, r.text
    env.clock.advance(30)
    r = await env.login(address, key, scope="wallet:withdraw", otp=env.code(secret))
    assert r.status_code == 200, r.text

    sub = f"did:pkh:eip155:31337:{address}"
    (started,) = [e for e in env.events("second_factor_enrolment")
                  if e["outcome"] == "success" and e["reason"] == "wallet_signature"]
    assert started["subject"] == sub and started["replaces"] is True
    (done,) = [e for e in env.events("second_factor_enrolled") if e["replaced"]]
    assert done["subject"] == sub and done["reason"] == "wallet_signature"
    assert "message" not in started and "signature" not in started
