"""The RevocationRegistry over JSON-RPC: the gasless relay (and, re-exported, the reads).

The pinned status reads (`RegistryReader`, `dedicated_client`) are in
`did_auth.adapters.chain.registry_reader` and re-exported here.

`Relayer` submits `revokeSigned` / `revokeAllSigned` for anyone who holds an account's
EIP-712 signature, paid by the chain's `relayer_private_key` (on the embedded development
chain, its funded first account when none is configured). It never spends gas on garbage:
the signature is checked off-chain first against the account's current nonce (EOA: ECDSA
recovery of the EIP-712 digest, low-s, v 27/28, as OpenZeppelin's ECDSA; a contract
account: EIP-1271 `isValidSignature` in an `eth_call`), then the transaction is simulated
(`eth_estimateGas`), and only then signed and sent. Sends on one chain are serialised
(one pending nonce at a time per process).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from coincurve import PublicKey
from eth_abi.abi import decode, encode

from did_auth.adapters.chain.client import (
    ChainClient,
    ChainRegistry,
    RpcCall,
    RpcError,
)
from did_auth.adapters.chain.registry_events import as_bytes
from did_auth.adapters.chain.registry_reader import (
    ADDRESS,
    BYTES32,
    RegistryReader,
    dedicated_client,
    registry_addresses,
)
from did_auth.config.settings import ChainConfig
from did_auth.core.errors import InvalidGrant, InvalidRequest, TemporarilyUnavailable
from did_auth.core.signatures import eip1271
from did_auth.core.signatures.eip191 import SECP256K1_HALF_N, keccak256, to_checksum_address

__all__ = [
    "REVOKE_ALL_TYPEHASH",
    "REVOKE_TYPEHASH",
    "RegistryReader",
    "Relayer",
    "dedicated_client",
    "registry_addresses",
    "revocation_digest",
]

log = logging.getLogger("did_auth.adapters.chain.registries")

_NONCES: Final = keccak256(b"nonces(address)")[:4]
_REVOKE_SIGNED: Final = keccak256(b"revokeSigned(address,bytes32,uint256,bytes)")[:4]
_REVOKE_ALL_SIGNED: Final = keccak256(b"revokeAllSigned(address,uint256,bytes)")[:4]
_EXPIRED: Final = keccak256(b"ExpiredSignature(uint256)")[:4]
_INVALID: Final = keccak256(b"InvalidSignature(address)")[:4]

DOMAIN_TYPEHASH: Final = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
REVOKE_TYPEHASH: Final = keccak256(
    b"Revoke(address account,bytes32 id,uint256 nonce,uint256 deadline)"
)
REVOKE_ALL_TYPEHASH: Final = keccak256(b"RevokeAll(address account,uint256 nonce,uint256 deadline)")
DOMAIN_NAME: Final = "did-auth RevocationRegistry"
DOMAIN_VERSION: Final = "1"



# ------------------------------------------------------------------------------ relayer


def revocation_digest(
    *,
    chain_id: int,
    registry: str,
    account: str,
    nonce: int,
    deadline: int,
    id_: bytes | None,
) -> bytes:
    """The EIP-712 digest of `Revoke(account, id, nonce, deadline)` (with `id_`) or
    `RevokeAll(account, nonce, deadline)` (without), domain "did-auth RevocationRegistry" v1."""
    domain = keccak256(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak256(DOMAIN_NAME.encode()),
                keccak256(DOMAIN_VERSION.encode()),
                chain_id,
                registry,
            ],
        )
    )
    if id_ is None:
        struct = keccak256(
            encode(
                ["bytes32", "address", "uint256", "uint256"],
                [REVOKE_ALL_TYPEHASH, account, nonce, deadline],
            )
        )
    else:
        struct = keccak256(
            encode(
                ["bytes32", "address", "bytes32", "uint256", "uint256"],
                [REVOKE_TYPEHASH, account, id_, nonce, deadline],
            )
        )
    return keccak256(b"\x19\x01" + domain + struct)


def _ecrecover(digest: bytes, signature: bytes) -> str | None:
    """OpenZeppelin ECDSA semantics: 65 bytes, v 27/28, low s; lower-case address or None."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        return None
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if r == 0 or s == 0 or s > SECP256K1_HALF_N:
        return None
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes((signature[64] - 27,)), digest, hasher=None
        )
    except Exception:
        return None
    return "0x" + keccak256(public.format(compressed=False)[1:])[12:].hex()


def _revert_selector(exc: BaseException) -> bytes | None:
    data: Any = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if data is None and exc.args:
        arg = exc.args[-1] if len(exc.args) > 1 else exc.args[0]
        data = arg if isinstance(arg, str) and arg.startswith("0x") else None
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        try:
            return bytes.fromhex(data[2:10])
        except ValueError:
            return None
    return None


class Relayer:
    """Relays signed revocations (`revokeSigned` / `revokeAllSigned`) on chain."""

    def __init__(self, chains: ChainRegistry, reader: RegistryReader) -> None:
        self.chains = chains
        self.reader = reader
        self._locks: dict[int, asyncio.Lock] = {}

    def _relayer_key(self, config: ChainConfig) -> str | None:
        if config.relayer_private_key:
            return config.relayer_private_key
        if config.rpc_url == "embedded":  # development chain: its funded first account
            base = self.chains.client(config.chain_id)
            if base is not None and base.embedded is not None:
                return base.embedded.private_keys[0]
        return None

    async def relay(
        self,
        *,
        chain_id: int,
        kind: str,
        account: str,
        id_: str | None,
        deadline: int,
        signature: bytes,
        on_verified: Callable[[], Awaitable[None]] | None = None,
    ) -> str:
        """Check, simulate and send; returns the transaction hash (0x-hex). `on_verified`
        runs once the signature has been checked, before the send (the caller charges the
        account's budget there: it may raise to refuse)."""
        config = self.chains.settings.chain(chain_id)
        if config is None:
            raise InvalidRequest(f"chain {chain_id} is not configured", reason="chain_unknown")
        registry = self.reader.registry_address(chain_id)
        if registry is None:
            raise InvalidRequest(
                f"chain {chain_id} has no revocation registry", reason="no_registry"
            )
        key = self._relayer_key(config)
        if key is None:
            raise InvalidRequest("no relayer configured", reason="no_relayer")
        if kind not in ("revoke", "revokeAll"):
            raise InvalidRequest('kind must be "revoke" or "revokeAll"')
        if not ADDRESS.match(account):
            raise InvalidRequest("account must be a 0x address")
        raw_id: bytes | None = None
        if kind == "revoke":
            if id_ is None or not BYTES32.match(id_):
                raise InvalidRequest("id must be 0x + 64 hex digits (bytes32)")
            raw_id = bytes.fromhex(id_[2:])
        elif id_ is not None:
            raise InvalidRequest("revokeAll takes no id")
        account = to_checksum_address(account.lower())
        registry = to_checksum_address(registry.lower())
        client = self.reader.client(chain_id)
        await self._precheck(
            client, chain_id, registry, account, raw_id, deadline, signature
        )
        if on_verified is not None:
            await on_verified()
        if raw_id is not None:
            data = _REVOKE_SIGNED + encode(
                ["address", "bytes32", "uint256", "bytes"], [account, raw_id, deadline, signature]
            )
        else:
            data = _REVOKE_ALL_SIGNED + encode(
                ["address", "uint256", "bytes"], [account, deadline, signature]
            )
        lock = self._locks.setdefault(chain_id, asyncio.Lock())
        async with lock:
            return await self._send(client, chain_id, registry, key, data)

    async def _precheck(
        self,
        client: ChainClient,
        chain_id: int,
        registry: str,
        account: str,
        raw_id: bytes | None,
        deadline: int,
        signature: bytes,
    ) -> None:
        nonces_data = _NONCES + encode(["address"], [account])
        nonces_call = {"to": registry, "data": "0x" + nonces_data.hex()}

        def calls(tag: str) -> Sequence[RpcCall]:
            return [("eth_call", [nonces_call, tag]), ("eth_getCode", [account, tag])]

        nonce_raw, code = await client.read(calls)
        if isinstance(nonce_raw, RpcError) or not isinstance(nonce_raw, str):
            raise TemporarilyUnavailable(
                f"the revocation registry of chain {chain_id} did not answer",
                reason="registry_revert",
            )
        try:
            (nonce,) = decode(["uint256"], as_bytes(nonce_raw))
        except Exception:
            raise TemporarilyUnavailable(
                f"the revocation registry of chain {chain_id} did not answer",
                reason="registry_no_data",
            ) from None
        digest = revocation_digest(
            chain_id=chain_id,
            registry=registry,
            account=account,
            nonce=int(nonce),
            deadline=deadline,
            id_=raw_id,
        )
        if not isinstance(code, str) or code in ("0x", "0x0", ""):
            if _ecrecover(digest, signature) != account.lower():
                raise InvalidGrant(
                    "the signature is not the account's EIP-712 signature of this revocation "
                    "with its current nonce",
                    reason="relay_signature",
                )
            return
        from did_auth.adapters.chain.wallet_signatures import capped_call, capped_read

        # The account's code is the signer's choice: gas- and time-capped like login checks.
        call = capped_call(
            client,
            {
                "to": account,
                "data": "0x" + eip1271.is_valid_signature_calldata(digest, signature).hex(),
            },
        )

        def wallet(tag: str) -> Sequence[RpcCall]:
            return [("eth_call", [call, tag])]

        (answer,) = await capped_read(client, wallet, "EIP-1271 signature")
        if (
            isinstance(answer, RpcError)
            or not isinstance(answer, str)
            or not eip1271.is_magic_value(as_bytes(answer))
        ):
            raise InvalidGrant(
                "the contract account did not accept the signature (EIP-1271)",
                reason="relay_signature_1271",
            )

    async def _send(
        self, client: ChainClient, chain_id: int, registry: str, key: str, data: bytes
    ) -> str:
        from eth_account import Account
        from web3.exceptions import ContractLogicError, Web3RPCError

        w3 = client.w3
        sender = Account.from_key(key)
        tx: dict[str, Any] = {
            "from": sender.address,
            "to": registry,
            "data": "0x" + data.hex(),
            "chainId": chain_id,
            "value": 0,
        }
        try:
            gas = await w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError, ValueError) as exc:
            selector = _revert_selector(exc)
            if selector == _EXPIRED:
                raise InvalidGrant(
                    "the signed revocation has expired", reason="relay_expired"
                ) from None
            if selector == _INVALID:
                raise InvalidGrant(
                    "the registry does not accept this signature", reason="relay_signature"
                ) from None
            if isinstance(exc, ContractLogicError):
                raise InvalidGrant(
                    "the revocation would revert on chain", reason="relay_revert"
                ) from None
            log.warning("chain %s: relay gas estimate failed: %s", chain_id, type(exc).__name__)
            raise TemporarilyUnavailable(
                f"the RPC of chain {chain_id} could not simulate the revocation",
                reason="relay_estimate",
            ) from None
        latest = await w3.eth.get_block("latest")
        base_fee = int(latest.get("baseFeePerGas", 0) or 0)
        try:
            tip = int(await w3.eth.max_priority_fee)
        except Exception:
            tip = 10**9
        tx.update(
            gas=int(gas) * 5 // 4 + 20_000,
            nonce=await w3.eth.get_transaction_count(sender.address, "pending"),
            maxPriorityFeePerGas=tip,
            maxFeePerGas=2 * base_fee + tip,
        )
        del tx["from"]
        signed = sender.sign_transaction(tx)
        try:
            tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
        except (Web3RPCError, ValueError) as exc:
            log.warning("chain %s: relaying failed: %s", chain_id, type(exc).__name__)
            raise TemporarilyUnavailable(
                f"chain {chain_id} refused the relayed transaction", reason="relay_send"
            ) from None
        return "0x" + bytes(tx_hash).hex()
