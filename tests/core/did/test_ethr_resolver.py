"""The did:ethr resolver against the canonical ERC-1056 registry on a Hardhat node."""

from __future__ import annotations

import base64
import socket
from typing import Any

import pytest
from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from did_auth.adapters.chain.did_reader import Web3ChainReader
from did_auth.core.did.ethr import EthrResolver, parse_did_ethr, snapshot_code
from did_auth.core.did.resolver import DidResolver
from did_auth.core.errors import InvalidRequest, TemporarilyUnavailable
from tests.core.did import CHAIN_ID, CountingReader, Key, Registry, b32
from tests.fixtures.hardhat import rpc

ZERO = "0x" + "00" * 20


def acct(address: str) -> str:
    return f"eip155:{CHAIN_ID}:{address}"


async def test_unchanged_identity_costs_one_call(
    ethr_resolver: EthrResolver, counting_reader: CountingReader
) -> None:
    k = Key.new()
    res = await ethr_resolver.resolve(parse_did_ethr(k.ethr))
    assert counting_reader.calls == {"call": 1}
    assert res.document.to_json() == {
        "id": k.ethr,
        "verificationMethod": [
            {
                "id": f"{k.ethr}#controller",
                "type": "EcdsaSecp256k1RecoveryMethod2020",
                "controller": k.ethr,
                "blockchainAccountId": acct(k.address),
            }
        ],
        "authentication": [f"{k.ethr}#controller"],
        "assertionMethod": [f"{k.ethr}#controller"],
    }
    assert not res.deactivated and res.version_id == 0
    assert res.block is not None and res.timestamp is not None


async def test_delegates_with_validity_and_revocation(
    registry: Registry, ethr_resolver: EthrResolver, counting_reader: CountingReader
) -> None:
    owner, bot, auditor = Key.new(), Key.new(), Key.new()
    did = parse_did_ethr(owner.ethr)
    registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 3600)
    t_add = registry.chain_time()
    registry.add_delegate(owner, owner.address, "veriKey", auditor.address, 7200)
    res = await ethr_resolver.resolve(did)
    d = owner.ethr
    assert res.document.to_json() == {
        "id": d,
        "verificationMethod": [
            {
                "id": f"{d}#controller",
                "type": "EcdsaSecp256k1RecoveryMethod2020",
                "controller": d,
                "blockchainAccountId": acct(owner.address),
            },
            {
                "id": f"{d}#delegate-1",
                "type": "EcdsaSecp256k1RecoveryMethod2020",
                "controller": d,
                "blockchainAccountId": acct(bot.address),
            },
            {
                "id": f"{d}#delegate-2",
                "type": "EcdsaSecp256k1RecoveryMethod2020",
                "controller": d,
                "blockchainAccountId": acct(auditor.address),
            },
        ],
        "authentication": [f"{d}#controller", f"{d}#delegate-1"],
        "assertionMethod": [f"{d}#controller", f"{d}#delegate-1", f"{d}#delegate-2"],
    }
    delegate = res.document.method(f"{d}#delegate-1")
    assert delegate is not None and delegate.delegate and delegate.valid_to == t_add + 3600
    controller = res.document.method(f"{d}#controller")
    assert controller is not None and not controller.delegate
    assert [m.id for m in res.document.authentication_methods()] == [
        f"{d}#controller",
        f"{d}#delegate-1",
    ]

    # Validity is judged at the later of the block's time and the caller's clock.
    later = await ethr_resolver.resolve(did, now=t_add + 3601)
    assert [m.id for m in later.document.authentication_methods()] == [f"{d}#controller"]
    assert later.document.assertion_method == (f"{d}#controller", f"{d}#delegate-2")

    registry.revoke_delegate(owner, owner.address, "sigAuth", bot.address)
    res = await ethr_resolver.resolve(did, now=registry.chain_time() + 1)
    assert res.document.authentication == (f"{d}#controller",)
    assert [m.id for m in res.document.verification_method] == [
        f"{d}#controller",
        f"{d}#delegate-2",
    ]
    # The revoked key is still known (so a proof it signs is `access_denied`).
    assert acct(bot.address) in {k.blockchain_account_id for k in res.history_keys}

    # Re-adding numbers the delegate after every earlier delegate event (reference order).
    registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 3600)
    res = await ethr_resolver.resolve(did)
    assert res.document.authentication == (f"{d}#controller", f"{d}#delegate-4")


async def test_attributes_keys_and_services(
    registry: Registry, ethr_resolver: EthrResolver
) -> None:
    owner = Key.new()
    d = owner.ethr
    secp = bytes.fromhex(Key.new().public_compressed[2:])
    ed = bytes(range(32))
    registry.set_attribute(owner, owner.address, "did/pub/Secp256k1/veriKey/hex", secp, 3600)
    registry.set_attribute(owner, owner.address, "did/pub/Ed25519/veriKey/base64", ed, 3600)
    registry.set_attribute(owner, owner.address, "did/pub/Ed25519/sigAuth/base58", ed, 3600)
    registry.set_attribute(owner, owner.address, "did/pub/X25519/enc/base64", ed[::-1], 3600)
    url = b"https://hubs.example.com/a"
    registry.set_attribute(owner, owner.address, "did/svc/HubService", url, 3600)
    registry.set_attribute(owner, owner.address, "did/svc/Messaging", b'{"uri":"x"}', 3600)
    registry.set_attribute(owner, owner.address, "some/other/attr", b"ignored", 3600)
    doc = (await ethr_resolver.resolve(parse_did_ethr(d))).document.to_json()
    vms = {vm["id"].split("#")[1]: vm for vm in doc["verificationMethod"]}
    assert vms["delegate-1"] == {
        "id": f"{d}#delegate-1",
        "type": "EcdsaSecp256k1VerificationKey2019",
        "controller": d,
        "publicKeyHex": secp.hex(),
    }
    assert vms["delegate-2"]["type"] == "Ed25519VerificationKey2018"
    assert vms["delegate-2"]["publicKeyBase64"] == base64.b64encode(ed).decode()
    assert vms["delegate-3"]["publicKeyBase58"]
    assert vms["delegate-4"]["type"] == "X25519KeyAgreementKey2019"
    assert doc["authentication"] == [f"{d}#controller", f"{d}#delegate-3"]
    assert doc["assertionMethod"] == [
        f"{d}#controller",
        f"{d}#delegate-1",
        f"{d}#delegate-2",
        f"{d}#delegate-3",
    ]
    assert doc["keyAgreement"] == [f"{d}#delegate-4"]
    assert doc["service"] == [
        {"id": f"{d}#service-1", "type": "HubService", "serviceEndpoint": url.decode()},
        {"id": f"{d}#service-2", "type": "Messaging", "serviceEndpoint": {"uri": "x"}},
    ]

    registry.revoke_attribute(owner, owner.address, "did/pub/Ed25519/veriKey/base64", ed)
    registry.revoke_attribute(owner, owner.address, "did/svc/HubService", url)
    doc = (await ethr_resolver.resolve(parse_did_ethr(d))).document.to_json()
    assert [vm["id"].split("#")[1] for vm in doc["verificationMethod"]] == [
        "controller",
        "delegate-1",
        "delegate-3",
        "delegate-4",
    ]
    assert [s["id"].split("#")[1] for s in doc["service"]] == ["service-2"]


async def test_owner_change_and_public_key_identifier(
    registry: Registry, ethr_resolver: EthrResolver
) -> None:
    owner, new_owner = Key.new(), Key.new()
    did = f"did:ethr:0x7a69:{owner.public_compressed}"
    doc = (await ethr_resolver.resolve(parse_did_ethr(did))).document
    assert doc.authentication == (f"{did}#controller", f"{did}#controllerKey")
    key = doc.method(f"{did}#controllerKey")
    assert key is not None and key.public_key_hex == owner.public_compressed[2:]
    assert key.type == "EcdsaSecp256k1VerificationKey2019"

    registry.change_owner(owner, owner.address, new_owner.address)
    res = await ethr_resolver.resolve(parse_did_ethr(did))
    assert res.document.authentication == (f"{did}#controller",)
    controller = res.document.method(f"{did}#controller")
    assert controller is not None and controller.blockchain_account_id == acct(new_owner.address)
    assert acct(owner.address) in {k.blockchain_account_id for k in res.history_keys}

    # The new owner (not the identity key) manages the identity from now on.
    registry.add_delegate(new_owner, owner.address, "sigAuth", Key.new().address, 60)
    res = await ethr_resolver.resolve(parse_did_ethr(did))
    assert len(res.document.authentication) == 2


async def test_deactivation(registry: Registry, ethr_resolver: EthrResolver) -> None:
    owner = Key.new()
    registry.add_delegate(owner, owner.address, "sigAuth", Key.new().address, 3600)
    registry.change_owner(owner, owner.address, ZERO)
    res = await ethr_resolver.resolve(parse_did_ethr(owner.ethr))
    assert res.deactivated
    assert res.document.to_json() == {
        "id": owner.ethr,
        "verificationMethod": [],
        "authentication": [],
        "assertionMethod": [],
    }
    # identityOwner() hides deactivation (it answers the identity itself for owner 0x0): the
    # identity key can even write again, and the DID stays deactivated.
    registry.add_delegate(owner, owner.address, "sigAuth", Key.new().address, 3600)
    res = await ethr_resolver.resolve(parse_did_ethr(owner.ethr))
    assert res.deactivated and res.document.authentication == ()


async def test_warm_resolution_costs_one_call(
    registry: Registry, ethr_resolver: EthrResolver, counting_reader: CountingReader
) -> None:
    owner = Key.new()
    bots = [Key.new() for _ in range(3)]
    for i, bot in enumerate(bots):
        registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 100 + i)
    registry.mine()  # the latest change is then older than the block we read at
    did = parse_did_ethr(owner.ethr)
    cold = await ethr_resolver.resolve(did)
    assert counting_reader.calls == {"call": 1, "logs": 3}
    counting_reader.reset()
    warm = await ethr_resolver.resolve(did)
    assert counting_reader.calls == {"call": 1}
    assert warm.document == cold.document
    # A new change moves `changed`: the cache key changes and the walk runs again.
    registry.revoke_delegate(owner, owner.address, "sigAuth", bots[0].address)
    counting_reader.reset()
    after = await ethr_resolver.resolve(did, now=registry.chain_time() + 1)
    assert counting_reader.calls == {"call": 1, "logs": 4}
    assert len(after.document.authentication) == 3


async def test_several_changes_in_one_block(
    registry: Registry, ethr_resolver: EthrResolver
) -> None:
    owner, a, b = Key.new(), Key.new(), Key.new()
    registry.fund(owner)
    w3 = registry.w3
    fns = [
        registry.contract.functions.addDelegate(owner.address, b32("sigAuth"), a.address, 3600),
        registry.contract.functions.addDelegate(owner.address, b32("veriKey"), b.address, 3600),
        registry.contract.functions.revokeDelegate(owner.address, b32("sigAuth"), a.address),
    ]
    nonce = w3.eth.get_transaction_count(owner.address)
    rpc(registry.node_url, "evm_setAutomine", [False])
    try:
        hashes = []
        for i, fn in enumerate(fns):
            tx = fn.build_transaction(
                {"from": owner.address, "nonce": nonce + i, "gas": 200_000, "chainId": CHAIN_ID}
            )
            signed = Account.sign_transaction(tx, owner.private)
            hashes.append(w3.eth.send_raw_transaction(signed.raw_transaction))
        rpc(registry.node_url, "evm_mine", [])
    finally:
        rpc(registry.node_url, "evm_setAutomine", [True])
    blocks = {w3.eth.wait_for_transaction_receipt(h)["blockNumber"] for h in hashes}
    assert len(blocks) == 1
    res = await ethr_resolver.resolve(parse_did_ethr(owner.ethr), now=registry.chain_time() + 1)
    d = owner.ethr
    assert res.document.authentication == (f"{d}#controller",)
    assert res.document.assertion_method == (f"{d}#controller", f"{d}#delegate-2")


async def test_chain_id_mismatch_fails_closed(registry: Registry, chain_reader: Any) -> None:
    k = Key.new()
    wrong = EthrResolver(chain_id=1, registry=registry.address, reader=chain_reader)
    with pytest.raises(TemporarilyUnavailable):
        await wrong.resolve(parse_did_ethr(f"did:ethr:{k.address}"))


async def test_registry_without_code_fails_closed(chain_reader: Any) -> None:
    k = Key.new()
    nowhere = EthrResolver(chain_id=CHAIN_ID, registry=Key.new().address, reader=chain_reader)
    with pytest.raises(TemporarilyUnavailable):
        await nowhere.resolve(parse_did_ethr(k.ethr))


async def test_unreachable_node_fails_closed(registry: Registry) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    w3 = AsyncWeb3(
        AsyncHTTPProvider(f"http://127.0.0.1:{port}", exception_retry_configuration=None)
    )
    resolver = EthrResolver(
        chain_id=CHAIN_ID, registry=registry.address, reader=Web3ChainReader(w3, timeout=5)
    )
    with pytest.raises(TemporarilyUnavailable):
        await resolver.resolve(parse_did_ethr(Key.new().ethr))
    await w3.provider.disconnect()


async def test_missing_logs_fail_closed(registry: Registry, chain_reader: Any) -> None:
    owner = Key.new()
    registry.add_delegate(owner, owner.address, "sigAuth", Key.new().address, 3600)

    class NoLogs(CountingReader):
        async def logs(self, address: str, topics: Any, block: int) -> list[dict[str, Any]]:
            return []

    resolver = EthrResolver(
        chain_id=CHAIN_ID, registry=registry.address, reader=NoLogs(chain_reader)
    )
    with pytest.raises(TemporarilyUnavailable):
        await resolver.resolve(parse_did_ethr(owner.ethr))


async def test_logs_that_disagree_with_identity_owner_fail_closed(
    registry: Registry, chain_reader: Any
) -> None:
    owner = Key.new()
    registry.add_delegate(owner, owner.address, "veriKey", Key.new().address, 3600)
    stale = registry.block_number()
    registry.change_owner(owner, owner.address, Key.new().address)

    class StaleIndex(CountingReader):
        """A node whose answer hides the newest change (the owner change) from the walk
        while identityOwner() shows the new owner."""

        async def call(self, to: str | None, data: bytes, block: Any = "latest") -> bytes:
            raw = await self.inner.call(to, data, block)
            return raw[:96] + stale.to_bytes(32, "big") + raw[128:160] + bytes(32)

    resolver = EthrResolver(
        chain_id=CHAIN_ID, registry=registry.address, reader=StaleIndex(chain_reader)
    )
    with pytest.raises(TemporarilyUnavailable):
        await resolver.resolve(parse_did_ethr(owner.ethr))
    # Served honestly, the same identity resolves.
    honest = EthrResolver(chain_id=CHAIN_ID, registry=registry.address, reader=chain_reader)
    assert (await honest.resolve(parse_did_ethr(owner.ethr))).document.authentication


async def test_did_resolver_dispatch(did_resolver: DidResolver) -> None:
    k = Key.new()
    assert (await did_resolver.resolve(k.ethr)).document.id == k.ethr
    pkh = f"did:pkh:eip155:1:{k.address}"
    assert (await did_resolver.resolve(pkh)).document.id == pkh
    with pytest.raises(InvalidRequest):
        did_resolver.parse(f"did:ethr:sepolia:{k.address}")  # no registry configured there


def test_snapshot_code_is_small_and_deterministic() -> None:
    a, b = Key.new().address, Key.new().address
    code = snapshot_code(a, b)
    assert code == snapshot_code(a, b) and len(code) < 200
    assert bytes.fromhex(a[2:].lower()) in code and bytes.fromhex(b[2:].lower()) in code


async def test_embedded_eth_tester_chain() -> None:
    """The reader works over web3's in-process eth-tester chain (`rpc_url = "embedded"`)."""
    from web3 import AsyncEthereumTesterProvider

    from did_auth.adapters.chain.contracts import load_artifact

    w3 = AsyncWeb3(AsyncEthereumTesterProvider())
    art = load_artifact("EthereumDIDRegistry")
    sender = (await w3.eth.accounts)[0]
    tx_hash = (
        await w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        .constructor()
        .transact({"from": sender})
    )
    address = (await w3.eth.wait_for_transaction_receipt(tx_hash))["contractAddress"]
    contract = w3.eth.contract(address=address, abi=art.abi)
    bot = Key.new()
    await contract.functions.addDelegate(sender, b32("sigAuth"), bot.address, 3600).transact(
        {"from": sender}
    )
    chain_id = await w3.eth.chain_id
    reader = Web3ChainReader(w3, call_from=sender)
    resolver = EthrResolver(chain_id=chain_id, registry=address, reader=reader)
    did = f"did:ethr:{hex(chain_id)}:{sender}"
    doc = (await resolver.resolve(parse_did_ethr(did))).document
    assert doc.authentication == (f"{did}#controller", f"{did}#delegate-1")


async def test_from_settings_with_a_registry_known_at_start_up(
    hardhat_node: Any, registry: Registry, chain_reader: Any
) -> None:
    from tests.fixtures.servers import settings_for

    settings = settings_for(chains=[{"chain_id": CHAIN_ID, "rpc_url": hardhat_node.url}])
    assert DidResolver.from_settings(settings, {CHAIN_ID: chain_reader}).ethr == {}
    resolver = DidResolver.from_settings(
        settings, {CHAIN_ID: chain_reader}, registries={CHAIN_ID: registry.address}
    )
    k = Key.new()
    assert (await resolver.resolve(k.ethr)).document.id == k.ethr
    late = DidResolver()
    late.add_ethr(CHAIN_ID, registry.address, chain_reader)
    assert (await late.resolve(k.ethr)).document.authentication == (f"{k.ethr}#controller",)


async def test_warm_resolution_is_one_json_rpc_request(
    hardhat_node: Any, registry: Registry
) -> None:
    """Counted at the provider: web3's middleware must not add requests (eth_chainId)."""
    sent: list[str] = []

    class Logging(AsyncHTTPProvider):
        async def make_request(self, method: Any, params: Any) -> Any:
            sent.append(str(method))
            return await super().make_request(method, params)

    w3 = AsyncWeb3(Logging(hardhat_node.url))
    resolver = EthrResolver(
        chain_id=CHAIN_ID, registry=registry.address, reader=Web3ChainReader(w3)
    )
    owner = Key.new()
    registry.add_delegate(owner, owner.address, "sigAuth", Key.new().address, 3600)
    registry.mine()
    await resolver.resolve(parse_did_ethr(owner.ethr))
    assert sent == ["eth_call", "eth_getLogs"]
    sent.clear()
    await resolver.resolve(parse_did_ethr(owner.ethr))
    assert sent == ["eth_call"]
    await w3.provider.disconnect()
