"""Benchmark contract-wallet signature verification: did-auth vs signinwithethereum.

    .venv/bin/python scripts/bench/contract_wallet_login.py [--ops 200] [--repeats 5]

Starts its own `hardhat node` (tests.fixtures.hardhat), deploys a TestERC1271Wallet and a
TestWalletFactory, and verifies the same SIWE message signed by

  * an EIP-1271 wallet (deployed), and
  * an EIP-6492 counterfactual wallet (factory + calldata, never deployed),

with each verifier against the same node over loopback HTTP:

  ours                ChainSignatureChecker.check(...) (AsyncWeb3 / aiohttp keep-alive),
                      "has code" cache warm: 1 round trip (eth_call) per check;
  ours, cold          the same with the cache dropped before every check: 2 round trips
                      (eth_blockNumber; eth_getCode + eth_call pinned to it, one batch);
  signinwithethereum  SiweMessage.verify(signature, provider=HTTPProvider(url)) (web3 sync,
                      requests), the package's documented EIP-1271 / EIP-6492 path; the message
                      object is parsed once, outside the timed loop. It pins web3 < 8, so it
                      runs in `.venv-oracle` (tests.oracle), which times its loop in-process.

Each row runs --ops sequential verifications, --repeats times (rows interleaved), and the
median µs/op is printed with the ratio signinwithethereum / ours. Absolute numbers are
dominated by Hardhat's own request handling; the ratio is the point.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak
from web3 import Web3

from did_auth.adapters.chain.client import ChainRegistry
from did_auth.adapters.chain.wallet_signatures import ChainSignatureChecker
from did_auth.config.settings import Settings
from tests.fixtures.hardhat import _kill_group, contract_at, deploy, start_hardhat_node
from tests.oracle import SiweOracle

CHAIN = 31337
MAGIC_6492 = bytes.fromhex("6492" * 16)


def siwe_text(address: str) -> str:
    return "\n".join(
        [
            "app.example.com wants you to sign in with your Ethereum account:",
            address,
            "",
            "Sign in to the trading venue.",
            "",
            "URI: https://app.example.com/login",
            "Version: 1",
            f"Chain ID: {CHAIN}",
            "Nonce: 32891756abcdef01",
            "Issued At: 2030-01-01T00:00:00.000Z",
        ]
    )


def personal_hash(text: str) -> bytes:
    msg = encode_defunct(text=text)
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


def timed_oracle(oracle: SiweOracle, text: str, signature: bytes, url: str, ops: int) -> float:
    """µs per signinwithethereum verify(), timed inside the oracle process."""
    ns = oracle.time("verify", text, "0x" + signature.hex(), ops, provider_url=url)
    return ns / ops / 1000


async def timed_async(fn: Callable[[], Awaitable[None]], ops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(ops):
        await fn()
    return (time.perf_counter_ns() - start) / ops / 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    node = start_hardhat_node()
    oracle = SiweOracle()
    registry = ChainRegistry(
        Settings.model_validate({"chains": [{"chain_id": CHAIN, "rpc_url": node.url}]})
    )
    try:
        w3 = Web3(Web3.HTTPProvider(node.url))
        owner = Account.create()

        wallet = deploy(w3, "TestERC1271Wallet", owner.address, 0)
        text_1271 = siwe_text(wallet)
        sig_1271 = bytes(Account.unsafe_sign_hash(personal_hash(text_1271), owner.key).signature)

        factory_address = deploy(w3, "TestWalletFactory")
        factory = contract_at(w3, "TestWalletFactory", factory_address)
        salt = os.urandom(32)
        counterfactual = factory.functions.computeAddress(owner.address, salt).call()
        calldata = bytes.fromhex(factory.encode_abi("deploy", args=[owner.address, salt])[2:])
        text_6492 = siwe_text(counterfactual)
        inner = bytes(Account.unsafe_sign_hash(personal_hash(text_6492), owner.key).signature)
        sig_6492 = (
            encode(["address", "bytes", "bytes"], [factory_address, calldata, inner]) + MAGIC_6492
        )
        assert w3.eth.get_code(counterfactual) == b""

        await registry.start()
        checker = ChainSignatureChecker(registry)
        client = registry.require(CHAIN)

        async def ours_1271() -> None:
            await checker.check(
                chain_id=CHAIN, address=wallet, message=text_1271.encode(), signature=sig_1271
            )

        async def ours_1271_cold() -> None:
            checker.forget()
            await ours_1271()

        async def ours_6492() -> None:
            await checker.check(
                chain_id=CHAIN,
                address=counterfactual,
                message=text_6492.encode(),
                signature=sig_6492,
            )

        def theirs_1271(ops: int) -> float:
            return timed_oracle(oracle, text_1271, sig_1271, node.url, ops)

        def theirs_6492(ops: int) -> float:
            return timed_oracle(oracle, text_6492, sig_6492, node.url, ops)

        # Both sides accept both signatures (and warm up connections and caches).
        for fn in (ours_1271, ours_1271_cold, ours_6492):
            await fn()
        theirs_1271(1)
        theirs_6492(1)
        before = client.rpc_round_trips
        await ours_1271()
        warm_rt = client.rpc_round_trips - before
        before = client.rpc_round_trips
        await ours_1271_cold()
        cold_rt = client.rpc_round_trips - before
        before = client.rpc_round_trips
        await ours_6492()
        rt_6492 = client.rpc_round_trips - before

        rows: dict[str, list[float]] = {
            k: []
            for k in (
                "1271 ours",
                "1271 ours cold",
                "1271 signinwithethereum",
                "6492 ours",
                "6492 signinwithethereum",
            )
        }
        for _ in range(args.repeats):
            rows["1271 ours"].append(await timed_async(ours_1271, args.ops))
            rows["1271 ours cold"].append(await timed_async(ours_1271_cold, args.ops))
            rows["1271 signinwithethereum"].append(theirs_1271(args.ops))
            rows["6492 ours"].append(await timed_async(ours_6492, args.ops))
            rows["6492 signinwithethereum"].append(theirs_6492(args.ops))
        med = {k: statistics.median(v) for k, v in rows.items()}

        print(f"hardhat node {node.url}; {args.ops} ops x {args.repeats} repeats, median")
        print(
            f"round trips per check (ours): 1271 warm {warm_rt}, 1271 cold {cold_rt}, "
            f"6492 {rt_6492}"
        )
        print(f"{'row':<28}{'us/op':>12}")
        for name, value in med.items():
            print(f"{name:<28}{value:>12.0f}")
        r1271 = med["1271 signinwithethereum"] / med["1271 ours"]
        r1271c = med["1271 signinwithethereum"] / med["1271 ours cold"]
        r6492 = med["6492 signinwithethereum"] / med["6492 ours"]
        print(f"ratio signinwithethereum/ours  EIP-1271 warm: {r1271:.2f}x")
        print(f"ratio signinwithethereum/ours  EIP-1271 cold: {r1271c:.2f}x")
        print(f"ratio signinwithethereum/ours  EIP-6492:      {r6492:.2f}x")
    finally:
        await registry.close()
        oracle.close()
        _kill_group(node.process)


if __name__ == "__main__":
    asyncio.run(main())
