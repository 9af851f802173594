"""Who signed, on the message's own chain: EOA (EIP-191), EIP-1271 and EIP-6492 wallets.

`ChainSignatureChecker` implements `did_auth.core.flows.signatures.SignatureChecker`. The hash
every path verifies is the EIP-191 `personal_sign` hash of the exact EIP-4361 text (`check`)
or a 32-byte digest the wallet signed as is, an EIP-712 typed-data hash (`check_digest`).
Order:

1. EIP-6492 §Verifier side: a signature ending in the magic suffix MUST be checked first, by
   simulating the wallet's deployment: the deployless `ValidateSigOffchain` runs in one
   `eth_call` (nothing is deployed) and answers exactly 0x01 for valid.
2. A 65-byte signature that recovers (low-s, via libsecp256k1) to the message's address is
   accepted with no RPC at all. Only the key of that address can produce it, so asking the
   chain whether the address also has code (an EIP-7702 account) cannot change the answer.
3. Anything else (recovery fails or names another address, any other length) goes whole,
   never truncated, to EIP-1271 `isValidSignature(hash, signature)`, which must return
   exactly 0x1626ba7e. An address without code is `InvalidGrant`.

Resource caps (the wallet's code, or a 6492 factory call, is chosen by whoever signs): every
`eth_call` here carries the chain's `verify_gas_limit` as its `gas` and is capped at
`verify_timeout` seconds of wall clock (`ChainClient.read(..., timeout=)`; the embedded chain
stops its EVM there). Running out of gas, reverting, returning anything but the exact
answer, or not finishing within the cap on a reachable RPC is a failed proof
(`InvalidGrant`, which the login flow counts for the source's back-off); only an unreachable
RPC is `TemporarilyUnavailable`. The wall-clock verdict is a choice: with the gas cap
bounding an honest node's work (well under a second on geth for 5M gas), a node that took
the request but cannot answer in time is spending that time on the wallet's code (on a
single-threaded development node such as Hardhat, that code may even keep it busy past
any probe). A node that cannot be connected to within the cap is unreachable: 503.

Chains: EOA signatures need no chain, so a chain without a `[[chains]]` entry still works
for them (docs/interface.md); there, a 65-byte signature that does not recover to the
address is `InvalidGrant` (it is presumably an EOA's), and a wrapped or other-length
signature is `InvalidRequest` ("chain not configured"). An unreachable RPC is
`TemporarilyUnavailable` (raised by the chain client): never an accepted login.

RPC cost (confirmations = 0): EOA 0; EIP-1271 cold 2 (`eth_blockNumber`, then one batch
`eth_getCode` + `eth_call` pinned to that block), warm 1 (`eth_call`); EIP-6492 1. A chain
with `confirmations > 0` adds one `eth_blockNumber` to the warm and 6492 paths.

"Has code" cache: positive answers only, per (chain, address), for `code_ttl` seconds.
Contract code does not disappear (SELFDESTRUCT only clears code created in the same
transaction since EIP-6780), so a positive entry stays true; a negative entry would turn a
wallet deployed a second later into a failed login for the whole TTL, so absence is never
cached. Even a stale entry is harmless: a call to an address without code returns no data,
which is never the magic value.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Unpack

from eth_abi.abi import encode

from did_auth.adapters.chain.client import (
    BlockCalls,
    ChainClient,
    ChainRegistry,
    ExecutionTimeout,
    RpcCall,
)
from did_auth.adapters.chain.contracts import load_artifact
from did_auth.core.errors import InvalidGrant, InvalidRequest, RateLimited
from did_auth.core.flows.signatures import SignedDigest, SignedMessage
from did_auth.core.signatures import eip1271, eip6492
from did_auth.core.signatures.eip191 import (
    personal_message_hash,
    recover_digest_raw,
    recover_personal_raw,
)

__all__ = [
    "ChainSignatureChecker",
    "capped_call",
    "capped_read",
    "deployless_validation_calldata",
]

DEFAULT_CODE_TTL: Final = 60.0
DEFAULT_CODE_CACHE_SIZE: Final = 10_000
_VALID: Final = b"\x01"


def deployless_validation_calldata(signer: str, digest: bytes, signature: bytes) -> str:
    """`eth_call` data (no `to`) running ValidateSigOffchain(signer, digest, signature)."""
    creation = load_artifact("ValidateSigOffchain").bytecode
    return creation + encode(["address", "bytes32", "bytes"], [signer, digest, signature]).hex()


def _bytes(result: object) -> bytes | None:
    """Return data of an eth_call; None when it failed (reverted, ran out of gas, ...) or the
    answer is not hex data."""
    if not isinstance(result, str):
        return None
    try:
        return bytes.fromhex(result[2:] if result.startswith("0x") else result)
    except ValueError:
        return None


def capped_call(client: ChainClient, call: dict[str, str]) -> dict[str, str]:
    """`call` with the chain's gas cap for signature checks (the `gas` of the call object)."""
    return {**call, "gas": hex(client.config.verify_gas_limit)}


async def capped_read(client: ChainClient, calls: BlockCalls, what: str) -> list[Any]:
    """`client.read(calls)` within the chain's `verify_timeout`; a reachable RPC that does not
    answer in time is a failed proof (`InvalidGrant`, reason `signature_timeout`)."""
    try:
        return await client.read(calls, timeout=client.config.verify_timeout)
    except ExecutionTimeout as exc:
        raise InvalidGrant(
            f"the {what} check did not finish within {exc.timeout:g} s",
            reason="signature_timeout",
        ) from None


class ChainSignatureChecker:
    """EOA, EIP-1271 and EIP-6492 signatures, each verified on the message's chain."""

    def __init__(
        self,
        registry: ChainRegistry,
        *,
        code_ttl: float = DEFAULT_CODE_TTL,
        code_cache_size: int = DEFAULT_CODE_CACHE_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.code_ttl = code_ttl
        self._code_cache_size = code_cache_size
        self._monotonic = monotonic
        # (chain id, lower-case address) -> monotonic expiry of "has code".
        self._has_code: OrderedDict[tuple[int, str], float] = OrderedDict()
        # (chain id, source IP) -> contract-signature checks running (one event loop).
        self._running: dict[tuple[int, str], int] = {}

    async def check(self, *, source: str | None = None, **signed: Unpack[SignedMessage]) -> None:
        message = signed["message"]
        await self._check(
            signed["chain_id"],
            signed["address"],
            personal_message_hash(message),
            bytes(signed["signature"]),
            source,
            eoa=lambda sig: recover_personal_raw(message, sig),
        )

    async def check_digest(
        self, *, source: str | None = None, **signed: Unpack[SignedDigest]
    ) -> None:
        """The signature of an EIP-712 digest (no EIP-191 prefix): the same three paths,
        with `digest` as the hash EIP-1271 / EIP-6492 are asked about."""
        digest = bytes(signed["digest"])
        if len(digest) != 32:
            raise InvalidGrant("the signed digest must be 32 bytes", reason="malformed_message")
        await self._check(
            signed["chain_id"],
            signed["address"],
            digest,
            bytes(signed["signature"]),
            source,
            eoa=lambda sig: recover_digest_raw(digest, sig),
        )

    async def _check(
        self,
        chain_id: int,
        address: str,
        digest: bytes,
        sig: bytes,
        source: str | None,
        *,
        eoa: Callable[[bytes], bytes],
    ) -> None:
        if eip6492.is_wrapped(sig):
            wrapped_on = self._client_for_contract(chain_id)
            with self._in_flight(wrapped_on, source):
                await self._check_6492(wrapped_on, address, digest, sig)
            return
        if len(sig) == 65 and self._eoa_signed(eoa, sig, address):
            return
        client = self.registry.client(chain_id)
        if client is None:
            if len(sig) == 65:
                raise InvalidGrant(
                    "signature does not match the message's address", reason="signature"
                )
            raise InvalidRequest(
                f"chain {chain_id} is not configured: contract-wallet signatures need it",
                reason="chain_unknown",
            )
        with self._in_flight(client, source):
            await self._check_1271(client, address, digest, sig)

    @contextmanager
    def _in_flight(self, client: ChainClient, source: str | None) -> Iterator[None]:
        """At most `contract_checks_in_flight_per_ip` contract-signature checks of one source
        at once on the embedded chain: its one EVM thread serves every login, and a check
        costs what the signer chooses (up to verify_timeout). More are refused at once
        (429 slow_down) rather than queued in front of other sources' logins."""
        cap = self.registry.settings.rate_limits.contract_checks_in_flight_per_ip
        if client.embedded is None or source is None or cap <= 0:
            yield
            return
        key = (client.chain_id, source)
        running = self._running.get(key, 0)
        if running >= cap:
            raise RateLimited(
                "a contract-wallet signature check of this client is still running",
                retry_after=math.ceil(client.config.verify_timeout),
                reason="contract_checks_in_flight",
            )
        self._running[key] = running + 1
        try:
            yield
        finally:
            left = self._running[key] - 1
            if left:
                self._running[key] = left
            else:
                del self._running[key]

    # ------------------------------------------------------------------------- paths

    def _client_for_contract(self, chain_id: int) -> ChainClient:
        client = self.registry.client(chain_id)
        if client is None:
            raise InvalidRequest(
                f"chain {chain_id} is not configured: contract-wallet signatures need it",
                reason="chain_unknown",
            )
        return client

    @staticmethod
    def _eoa_signed(recover: Callable[[bytes], bytes], signature: bytes, address: str) -> bool:
        try:
            signer = recover(signature)
        except InvalidGrant:  # malformed / high-s / no point: maybe a contract's signature
            return False
        return signer == bytes.fromhex(address[2:])

    async def _check_6492(
        self, client: ChainClient, address: str, digest: bytes, signature: bytes
    ) -> None:
        call = capped_call(
            client, {"data": deployless_validation_calldata(address, digest, signature)}
        )

        def calls(tag: str) -> Sequence[RpcCall]:
            return [("eth_call", [call, tag])]

        # EIP-6492: a wrapped signature means "do an `eth_call` to a multicall contract that
        # will call the factory first with the `factoryCalldata`": the factory and its
        # calldata are the signer's choice, so the call runs under the gas and time caps.
        (result,) = await capped_read(client, calls, "EIP-6492 signature")
        if _bytes(result) != _VALID:
            raise InvalidGrant(
                "the EIP-6492 signature is not valid for this address on this chain",
                reason="signature_6492",
            )

    async def _check_1271(
        self, client: ChainClient, address: str, digest: bytes, signature: bytes
    ) -> None:
        call = capped_call(
            client,
            {
                "to": address,
                "data": "0x" + eip1271.is_valid_signature_calldata(digest, signature).hex(),
            },
        )
        key = (client.chain_id, address.lower())
        if self._cached_has_code(key):

            def warm(tag: str) -> Sequence[RpcCall]:
                return [("eth_call", [call, tag])]

            (result,) = await capped_read(client, warm, "EIP-1271 signature")
        else:

            def cold(tag: str) -> Sequence[RpcCall]:
                return [("eth_getCode", [address, tag]), ("eth_call", [call, tag])]

            code, result = await capped_read(client, cold, "EIP-1271 signature")
            if not isinstance(code, str) or code in ("0x", "0x0", ""):
                raise InvalidGrant(
                    "signature does not match the message's address", reason="signature"
                )
            self._remember_has_code(key)
        returned = _bytes(result)
        # EIP-1271: isValidSignature "MUST return the bytes4 magic value 0x1626ba7e when
        # function passes"; a revert, running out of gas, or any other data is "not valid".
        # (EIP-1271 warns callers against hardcoding a small gas amount for on-chain calls;
        # off chain the cap is a generous, configurable bound on an attacker's contract.)
        if returned is None or not eip1271.is_magic_value(returned):
            raise InvalidGrant(
                "the contract wallet did not accept the signature (EIP-1271)",
                reason="signature_1271",
            )

    # --------------------------------------------------------------------- code cache

    def _cached_has_code(self, key: tuple[int, str]) -> bool:
        expiry = self._has_code.get(key)
        if expiry is None:
            return False
        if expiry <= self._monotonic():
            del self._has_code[key]
            return False
        return True

    def _remember_has_code(self, key: tuple[int, str]) -> None:
        self._has_code[key] = self._monotonic() + self.code_ttl
        self._has_code.move_to_end(key)
        while len(self._has_code) > self._code_cache_size:
            self._has_code.popitem(last=False)

    def forget(self) -> None:
        """Drop the "has code" cache (tests, and after a chain reorganisation)."""
        self._has_code.clear()
