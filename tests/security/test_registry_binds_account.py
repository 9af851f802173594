"""Suspension and revokeAll() bind to the account, not to the chain of the login message.

The attack: an account suspended on the RevocationRegistry signs its SIWE message for
another chain the client allows (chain 1, where no registry lives) and logs in anyway,
because the registry consulted used to be the message's chain's. Now one registry is
authoritative for a set of chain ids (`[[chains]] revocation_registry_for`), its state holds
for the account on every chain it governs (an EOA is the same account on each), a client
may not allow a chain no registry governs, and the embedded `demo` client allows only the
embedded chain. Real embedded chain (py-evm with the registries), real Redis.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from eth_account import Account
from web3 import Web3

from did_auth.adapters.chain.contracts import load_artifact
from did_auth.config.settings import Settings, load_settings
from did_auth.core.errors import ConfigError
from did_auth.core.flows.issuance import issue_for_grant
from did_auth.core.tokens.issue import Grant, new_sid
from did_auth.services import Services
from tests import siwe_text
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import CLIENT, config_dict, running_app, settings_for

CHAIN = 31337


def registry(svc: Services) -> tuple[Any, str]:
    """The embedded chain's RevocationRegistry (sync web3) and its admin (the deployer)."""
    base = svc.chains.require(CHAIN)
    assert base.embedded is not None
    w3 = base.embedded.sync_w3()
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(base.embedded.revocation_registry),
        abi=load_artifact("RevocationRegistry").abi,
    )
    return contract, base.embedded.deployer


def funded_key(svc: Services, index: int) -> str:
    base = svc.chains.require(CHAIN)
    assert base.embedded is not None
    return base.embedded.private_keys[index]


async def siwe_login(
    client: httpx.AsyncClient, key: str, *, chain_id: int, client_id: str = "dapp",
    domain: str = "localhost:3000", uri: str = "http://localhost:3000/login",
) -> httpx.Response:
    r = await client.post("/siwe/nonce", json={"client_id": client_id})
    assert r.status_code == 200, r.text
    address = Account.from_key(key).address
    text = siwe_text.message(address, r.json()["nonce"], chain_id=chain_id, domain=domain, uri=uri)
    return await client.post("/siwe/verify", json={
        "client_id": client_id, "message": text, "signature": siwe_text.sign(text, key)})


def governed_settings(redis_server: RedisServer, kek: str, db: int = 0) -> Settings:
    # An embedded chain is the same chain (genesis, addresses) every time it starts: a test
    # whose watcher must start at the head uses a database of its own for its cursor.
    return settings_for(
        redis_url=redis_server.url.rsplit("/", 1)[0] + f"/{db}",
        key_encryption_key_file=kek,
        chains=[{"chain_id": CHAIN, "rpc_url": "embedded", "watch_interval": 0.05,
                 "revocation_registry_for": [1]}],
        clients=[{**CLIENT, "chain_ids": [1, CHAIN]}],
    )


async def test_embedded_demo_client_cannot_be_used_to_dodge_a_suspension(
    redis_server: RedisServer, session_kek: str
) -> None:
    settings = load_settings(environ={}, overrides={
        "redis_url": redis_server.url, "key_encryption_key_file": session_kek,
        "rate_limits": config_dict()["rate_limits"],  # one IP for the whole test session
    })
    async with running_app(settings) as (client, svc):
        contract, admin = registry(svc)
        key = "0x" + bytes(Account.create().key).hex()
        contract.functions.suspend(Account.from_key(key).address).transact({"from": admin})
        page = {"client_id": "demo", "domain": "localhost:5173", "uri": "http://localhost:5173/"}
        # The attack: the same suspended EOA signs for chain 1 (no registry there).
        r = await siwe_login(client, key, chain_id=1, **page)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        r = await siwe_login(client, key, chain_id=CHAIN, **page)
        assert r.status_code == 403, r.text
        assert r.json() == {"error": "access_denied", "error_description": "the account is suspended"}
    demo = settings.client("demo")
    assert demo is not None and demo.chain_ids == [CHAIN]


async def test_suspension_on_the_authoritative_registry_holds_on_every_governed_chain(
    redis_server: RedisServer, session_kek: str
) -> None:
    async with running_app(governed_settings(redis_server, session_kek)) as (client, svc):
        contract, admin = registry(svc)
        key = "0x" + bytes(Account.create().key).hex()
        assert (await siwe_login(client, key, chain_id=1)).status_code == 200
        contract.functions.suspend(Account.from_key(key).address).transact({"from": admin})
        r = await siwe_login(client, key, chain_id=1)
        assert r.status_code == 403 and "suspended" in r.json()["error_description"], r.text
        r = await siwe_login(client, key, chain_id=CHAIN)
        assert r.status_code == 403, r.text


async def test_revoke_all_on_the_authoritative_registry_kills_other_chain_sessions(
    redis_server: RedisServer, session_kek: str
) -> None:
    # A database of its own, emptied first: revoke-all's cut-off must not reach other tests,
    # and keys another test sealed under its own key-encryption key must not be met here.
    redis_server.own_db(6)
    settings = governed_settings(redis_server, session_kek, db=6)
    async with running_app(settings) as (client, svc):
        assert svc.watchers is not None
        (watcher,) = svc.watchers.watchers
        for _ in range(200):
            if watcher.processed is not None:
                break
            await asyncio.sleep(0.02)
        contract, _ = registry(svc)
        key = funded_key(svc, 7)
        r = await siwe_login(client, key, chain_id=1)  # a session of the chain-1 subject
        assert r.status_code == 200, r.text
        tokens = r.json()
        sid = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sid"]
        await asyncio.sleep(1.05)  # revokeAll kills what was authenticated at or before its block
        contract.functions.revokeAll().transact({"from": Account.from_key(key).address})
        # The watcher of the registry chain ends the chain-1 session and announces it.
        deadline = time.monotonic() + 10
        while True:
            feed = (await client.get("/revocations")).json()["revoked"]
            if any(e.get("sid") == sid for e in feed):
                break
            assert time.monotonic() < deadline, feed
            await asyncio.sleep(0.05)
        assert [e["reason"] for e in feed if e.get("sid") == sid] == ["chain_revoke_all"]
        r = await client.post("/token", data={
            "grant_type": "refresh_token", "client_id": "dapp",
            "refresh_token": tokens["refresh_token"]})
        assert r.status_code in (400, 403), r.text


async def test_a_session_on_a_chain_no_registry_governs_is_refused(
    redis_server: RedisServer, session_kek: str
) -> None:
    """Fail closed at run time too: a session whose subject lives on a chain that no
    registry governs (e.g. issued under an older configuration) cannot be refreshed."""
    settings = governed_settings(redis_server, session_kek)
    async with running_app(settings) as (client, svc):
        address = Account.create().address
        grant = Grant(sub=f"did:pkh:eip155:5:{address}", client_id="dapp",
                      audience="trading-api", scopes=("account:read",),
                      auth_time=int(time.time()), amr=("siwe",), sid=new_sid())
        tokens, _ = await issue_for_grant(settings, svc.issuer, svc.sessions, grant,
                                          svc.revocations)
        r = await client.post("/token", data={
            "grant_type": "refresh_token", "client_id": "dapp",
            "refresh_token": tokens["refresh_token"]})
        assert r.status_code == 403 and r.json()["error"] == "access_denied", r.text
        assert "revocation_registry_for" in r.json()["error_description"]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        # a client allowing a chain no registry governs
        ({"chains": [{"chain_id": CHAIN, "rpc_url": "embedded"}],
          "clients": [{**CLIENT, "chain_ids": [1, CHAIN]}]},
         "clients.0.chain_ids: chain 1 has no authoritative RevocationRegistry"),
        # a chain id governed twice
        ({"chains": [{"chain_id": CHAIN, "rpc_url": "embedded", "revocation_registry_for": [1]},
                     {"chain_id": 1, "rpc_url": "http://127.0.0.1:9",
                      "revocation_registry": "0x" + "11" * 20}]},
         "chains.revocation_registry_for: chain id 1 would be governed by the "
         "RevocationRegistry of chain 31337 and of chain 1"),
        # revocation_registry_for on a chain without a registry
        ({"chains": [{"chain_id": 5, "rpc_url": "http://127.0.0.1:9",
                      "revocation_registry_for": [1]}]},
         "chains.0.revocation_registry_for: chain 5 has no revocation_registry"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, config: dict[str, Any], problem: str) -> None:
    import tomli_w

    path = tmp_path / "did-auth.toml"
    path.write_text(tomli_w.dumps(config))
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert len(exc.value.problems) == 1 and exc.value.problems[0].startswith(problem), (
        exc.value.problems
    )
