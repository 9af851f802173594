"""`POST /revocations/relay`: the per-account budget (`relay_per_account`, 10/h) is charged
only for a request whose signature verified, so nobody can spend a victim's budget with
garbage signatures posted under the victim's address and lock the victim out of revoking
its own sessions; garbage is still limited per client IP (`relay_per_ip`). The embedded
chain, whose funded first account relays."""

from __future__ import annotations

import os
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from tests.fixtures.servers import settings_for
from tests.revocation import TYPES, address_of
from tests.revocation.test_gate_and_relay import close_app, open_app


def _signed_revoke_all(w3: Web3, registry: str, key: str) -> dict[str, Any]:
    deadline = int(w3.eth.get_block("latest")["timestamp"]) + 600
    signable = encode_typed_data(
        domain_data={"name": "did-auth RevocationRegistry", "version": "1",
                     "chainId": 31337, "verifyingContract": registry},
        message_types={"RevokeAll": TYPES["RevokeAll"]},
        message_data={"account": address_of(key), "nonce": 0, "deadline": deadline},
    )
    return {"kind": "revokeAll", "account": address_of(key), "deadline": deadline,
            "signature": "0x" + bytes(Account.sign_message(signable, key).signature).hex(),
            "chain_id": 31337}


async def test_garbage_for_a_victim_does_not_spend_its_budget() -> None:
    a = await open_app(settings_for(chains=[{"chain_id": 31337, "rpc_url": "embedded"}]))
    try:
        base = a.svc.chains.client(31337)
        assert base is not None and base.embedded is not None
        chain = base.embedded
        w3 = chain.sync_w3()
        registry = Web3.to_checksum_address(chain.revocation_registry)
        victim = "0x" + os.urandom(32).hex()
        good = _signed_revoke_all(w3, registry, victim)
        garbage = {**good, "signature": "0x" + "11" * 65}
        for _ in range(12):  # more than relay_per_account (10/h), all for the victim
            r = await a.client.post("/revocations/relay", json=garbage)
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        r = await a.client.post("/revocations/relay", json=good)
        assert r.status_code == 200, r.text
        registry_contract = w3.eth.contract(address=registry, abi=[{
            "name": "revokedBefore", "type": "function", "stateMutability": "view",
            "inputs": [{"name": "account", "type": "address"}],
            "outputs": [{"name": "", "type": "uint256"}]}])
        assert registry_contract.functions.revokedBefore(address_of(victim)).call() > 0
        # the garbage sender is still limited, per client IP (relay_per_ip, 30/min)
        statuses = []
        for _ in range(30):
            r = await a.client.post("/revocations/relay", json=garbage)
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {400}, statuses
        assert int(r.headers["Retry-After"]) > 0
    finally:
        await close_app(a)
