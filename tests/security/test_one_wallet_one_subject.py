"""One wallet is one subject for second factors, suspension and rate limits.

The attack: the account enrolled its second factor as `did:pkh:eip155:31337:0xA`. Whoever
holds the wallet key (and no second factor) logs in as the same EOA under another name:
`did:pkh:eip155:1:0xA` (another chain the client allows), `did:ethr:0x7a69:0xA`, or a
lower-case did:pkh. Each used to be a subject of its own with no factor, so the attacker
enrolled his own TOTP there and passed step-up for `wallet:withdraw`; each also had its own
per-subject rate limit. Now every name of one EOA maps to one account key. Real embedded
chain (its ERC-1056 registry resolves did:ethr), real Redis.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from eth_account import Account

from did_auth.config.settings import Settings
from did_auth.core.did.jwt_proof import sign_proof
from did_auth.services import Services
from tests import siwe_text
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import CLIENT, config_dict, running_app, settings_for

CHAIN = 31337
ISS = "http://testserver"


def settings(redis_server: RedisServer, kek: str, **over: Any) -> Settings:
    return settings_for(
        redis_url=redis_server.url, key_encryption_key_file=kek,
        chains=[{"chain_id": CHAIN, "rpc_url": "embedded", "revocation_registry_for": [1]}],
        clients=[{**CLIENT, "chain_ids": [1, CHAIN]}],
        **over,
    )


@dataclass
class Env:
    client: httpx.AsyncClient
    svc: Services

    async def siwe(self, key: bytes, chain_id: int, **kw: Any) -> httpx.Response:
        r = await self.client.post("/siwe/nonce", json={"client_id": "dapp"})
        assert r.status_code == 200, r.text
        text = siwe_text.message(Account.from_key(key).address, r.json()["nonce"],
                                 chain_id=chain_id)
        return await self.client.post("/siwe/verify", json={
            "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key), **kw})

    async def did(self, did: str, key: bytes, **kw: Any) -> httpx.Response:
        audience = {"audience": kw["audience"]} if "audience" in kw else {}
        r = await self.client.post(
            "/did/challenge", json={"client_id": "dapp", "did": did, **audience})
        assert r.status_code == 200, r.text
        c = r.json()
        now = int(time.time())
        proof = sign_proof({"iss": did, "aud": c["audience"], "nonce": c["challenge"],
                            "iat": now, "exp": now + 60}, alg="ES256K-R", private_key=key)
        return await self.client.post(
            "/did/verify", json={"client_id": "dapp", "proof": proof, **kw})

    async def enroll(self, token: str) -> httpx.Response:
        return await self.client.post("/otp/enroll", headers={"Authorization": f"Bearer {token}"})

    async def confirm(self, token: str, code: str) -> httpx.Response:
        return await self.client.post(
            "/otp/confirm", headers={"Authorization": f"Bearer {token}"}, json={"otp": code})


@pytest.fixture
async def env(redis_server: RedisServer, session_kek: str) -> AsyncIterator[Env]:
    async with running_app(settings(redis_server, session_kek)) as (client, svc):
        yield Env(client, svc)


def aliases(address: str) -> list[str]:
    """Other names of the EOA than its SIWE subject on chain 31337."""
    return [
        f"did:pkh:eip155:1:{address}",
        f"did:pkh:eip155:{CHAIN}:{address.lower()}",
        f"did:ethr:0x7a69:{address}",
        f"did:ethr:0x7a69:{address.lower()}",
    ]


def sub_of(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return str(jwt.decode(r.json()["access_token"], options={"verify_signature": False})["sub"])


async def test_another_name_of_the_wallet_is_no_way_around_its_second_factor(env: Env) -> None:
    acct = Account.create()
    key = bytes(acct.key)
    # A token for did-auth itself: the /otp routes refuse other audiences (RFC 9068 §4).
    r = await env.siwe(key, CHAIN, audience=ISS)
    token = r.json()["access_token"]
    r = await env.enroll(token)
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    assert (await env.confirm(token, pyotp.TOTP(secret).now())).status_code == 200

    attacker_totp = pyotp.random_base32()
    for name in aliases(acct.address):
        # a fresh login under another name of the wallet, for did-auth itself
        r = await env.did(name, key, audience=ISS)
        alias_token = r.json()["access_token"] if r.status_code == 200 else None
        assert alias_token is not None, r.text
        # ... cannot enrol the attacker's own factor: the account has one
        r = await env.enroll(alias_token)
        assert r.status_code == 403 and r.json()["error"] == "access_denied", (name, r.text)
        # ... and step-up needs the account's factor
        r = await env.did(name, key, scope="wallet:withdraw")
        assert r.status_code == 400 and r.json()["error"] == "invalid_scope", (name, r.text)
        # (wrong codes: refused, and counted in the *account's* OTP backoff, 3 free tries)
        r = await env.did(name, key, scope="wallet:withdraw",
                          otp=pyotp.TOTP(attacker_totp).now())
        assert (r.status_code, r.json()["error"]) in ((400, "invalid_grant"), (429, "slow_down"))
    r = await env.siwe(key, 1, scope="wallet:withdraw", otp=pyotp.TOTP(attacker_totp).now())
    assert r.status_code == 429 and r.json()["error"] == "slow_down", r.text
    r = await env.siwe(key, 1, scope="wallet:withdraw")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text


async def test_the_accounts_factor_serves_every_name_of_the_wallet(env: Env) -> None:
    acct = Account.create()
    key = bytes(acct.key)
    token = (await env.siwe(key, CHAIN, audience=ISS)).json()["access_token"]
    secret = (await env.enroll(token)).json()["secret"]
    totp = pyotp.TOTP(secret)
    # confirm with the code of the previous time step, so that the next step is unused
    assert (await env.confirm(token, totp.at(time.time() - 30))).status_code == 200
    r = await env.did(f"did:ethr:0x7a69:{acct.address}", key, scope="wallet:withdraw",
                      otp=totp.now())
    assert r.status_code == 200, r.text
    claims = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["did", "otp"]


async def test_lower_case_did_pkh_is_issued_in_its_canonical_form(env: Env) -> None:
    acct = Account.create()
    r = await env.did(f"did:pkh:eip155:{CHAIN}:{acct.address.lower()}", bytes(acct.key))
    assert sub_of(r) == f"did:pkh:eip155:{CHAIN}:{acct.address}"
    assert sub_of(await env.siwe(bytes(acct.key), CHAIN)) == sub_of(r)


async def test_the_per_subject_rate_limit_is_the_accounts(
    redis_server: RedisServer, session_kek: str
) -> None:
    limits = {**config_dict()["rate_limits"], "verify_per_subject": "2/h"}
    async with running_app(settings(redis_server, session_kek, rate_limits=limits)) as (c, svc):
        e = Env(c, svc)
        acct = Account.create()
        key = bytes(acct.key)
        assert (await e.siwe(key, CHAIN)).status_code == 200
        assert (await e.did(f"did:pkh:eip155:1:{acct.address}", key)).status_code == 200
        for name in aliases(acct.address)[1:]:
            r = await e.did(name, key)
            assert r.status_code == 429 and r.json()["error"] == "slow_down", (name, r.text)
        r = await e.siwe(key, 1)
        assert r.status_code == 429, r.text
        # another wallet has its own budget
        assert (await e.siwe(bytes(Account.create().key), CHAIN)).status_code == 200
