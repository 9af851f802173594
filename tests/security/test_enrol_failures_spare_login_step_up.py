"""Wrong codes at the enrolment endpoints cannot lock the account out of step-up.

The attack: whoever holds any live token of the account for did-auth (a second session, a
leaked token) sends wrong codes to `POST /otp/enroll` (`otp`, "the current factor") or
`POST /otp/confirm`. Each failure used to count in the *account's* OTP backoff, the one
login step-up uses, so the victim's correct code at login was then refused with 429
`slow_down` for up to `otp_backoff_cap` seconds: a low-privilege token locked the user out
of `wallet:withdraw`.

Now failures at the enrolment endpoints count against the caller's session (`sid`), and
guesses of the current factor at `/otp/enroll` also against an enrolment budget of the
account (so that many sessions together still cannot brute-force the factor there); the
account's login step-up budget is charged by login step-up attempts only. Real Redis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from eth_account import Account

from did_auth.services import Services
from tests import siwe_text
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import running_app, settings_for

ISS = "http://testserver"
Api = tuple[httpx.AsyncClient, Services]


@pytest.fixture
async def api(redis_server: RedisServer, session_kek: str) -> AsyncIterator[Api]:
    async with running_app(
        settings_for(redis_url=redis_server.url, key_encryption_key_file=session_kek)
    ) as pair:
        yield pair


async def siwe(client: httpx.AsyncClient, key: bytes, **kw: Any) -> httpx.Response:
    r = await client.post("/siwe/nonce", json={"client_id": "dapp"})
    assert r.status_code == 200, r.text
    text = siwe_text.message(Account.from_key(key).address, r.json()["nonce"])
    return await client.post("/siwe/verify", json={
        "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key), **kw})


async def token(client: httpx.AsyncClient, key: bytes) -> str:
    """A live token of the account for did-auth itself (a session of its own)."""
    r = await siwe(client, key, audience=ISS)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def wrong(totp: pyotp.TOTP) -> str:
    """A code that no time step in the verifier's window accepts."""
    now = time.time()
    valid = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


async def enrolled(client: httpx.AsyncClient, key: bytes) -> tuple[str, pyotp.TOTP]:
    """The victim's session and factor; the factor's current time step is still unused."""
    own = await token(client, key)
    r = await client.post("/otp/enroll", headers=bearer(own))
    assert r.status_code == 200, r.text
    totp = pyotp.TOTP(r.json()["secret"])
    r = await client.post("/otp/confirm", headers=bearer(own),
                          json={"otp": totp.at(time.time() - 30)})
    assert r.status_code == 200 and r.json()["enrolled"] is True, r.text
    return own, totp


async def attack(client: httpx.AsyncClient, path: str, stolen: str, code: str) -> list[int]:
    statuses = []
    for _ in range(10):
        r = await client.post(path, headers=bearer(stolen), json={"otp": code})
        assert (r.status_code, r.json()["error"]) in (
            (400, "invalid_grant"), (429, "slow_down")), r.text
        statuses.append(r.status_code)
    return statuses


async def test_wrong_codes_at_enroll_do_not_lock_the_victims_step_up(api: Api) -> None:
    client, _ = api
    key = bytes(Account.create().key)
    _, totp = await enrolled(client, key)
    stolen = await token(client, key)  # any other live token of the account

    statuses = await attack(client, "/otp/enroll", stolen, wrong(totp))
    assert 429 in statuses  # guessing the factor there is still backed off

    # The victim's login step-up with the correct code is not held back.
    r = await siwe(client, key, scope="wallet:withdraw", otp=totp.now())
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["siwe", "otp"] and claims["scope"] == "wallet:withdraw"


async def test_wrong_codes_at_confirm_do_not_lock_the_victim(api: Api) -> None:
    client, _ = api
    key = bytes(Account.create().key)
    own, totp = await enrolled(client, key)
    # The victim replaces the factor (with a code of the current one): a pending enrolment.
    r = await client.post("/otp/enroll", headers=bearer(own), json={"otp": totp.now()})
    assert r.status_code == 200 and r.json()["replaces"] is True, r.text
    new = pyotp.TOTP(r.json()["secret"])
    stolen = await token(client, key)

    # The pending enrolment belongs to the victim's session: the stolen token's session is
    # refused before any code is looked at (no budget is charged by it at all).
    for _ in range(10):
        r = await client.post("/otp/confirm", headers=bearer(stolen), json={"otp": wrong(new)})
        assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text

    # The victim's step-up (the current factor's next time step) and confirmation pass.
    r = await siwe(client, key, scope="wallet:withdraw", otp=totp.at(time.time() + 30))
    assert r.status_code == 200, r.text
    r = await client.post("/otp/confirm", headers=bearer(own), json={"otp": new.now()})
    assert r.status_code == 200 and r.json() == {"enrolled": True, "replaced": True}, r.text


async def test_many_sessions_cannot_brute_force_the_factor_at_enroll(api: Api) -> None:
    client, _ = api
    key = bytes(Account.create().key)
    _, totp = await enrolled(client, key)
    code = wrong(totp)
    # A new session per guess: the account's enrolment budget still closes (3 free tries).
    statuses = []
    for _ in range(5):
        r = await client.post("/otp/enroll", headers=bearer(await token(client, key)),
                              json={"otp": code})
        statuses.append(r.status_code)
    assert statuses[:3] == [400, 400, 400] and statuses[4] == 429, statuses
    # ... and the login step-up budget is untouched by it.
    r = await siwe(client, key, scope="wallet:withdraw", otp=totp.now())
    assert r.status_code == 200, r.text
