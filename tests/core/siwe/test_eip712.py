"""did-auth's EIP-712 encoder (`did_auth.core.signatures.eip712`) against two independent
implementations: eth-account's `encode_typed_data` (Python) and ethers v6's
`TypedDataEncoder.hash` / `Wallet.signTypedData` (JavaScript, what dApps use), and the
EIP's own worked example. Signatures from ethers recover to the signer through did-auth's
digest recovery (low-s, v 27/28)."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from did_auth.core.errors import InvalidGrant
from did_auth.core.signatures.eip191 import recover_digest_raw
from did_auth.core.signatures.eip712 import (
    encode_type,
    typed_data_digest,
    withdrawal_digest,
    withdrawal_typed_data,
)

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "interop" / "eip712_sign.mjs"

# EIP-712's example (assets/eip-712/Example.js): Mail from Cow to Bob.
MAIL: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}
# The EIP's published values for that example.
MAIL_TYPE = "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
MAIL_DIGEST = "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"

# Every kind of member: atomic, dynamic, nested structs (referenced types sorted by name),
# arrays of atoms and of structs, fixed-size arrays, negative integers.
KITCHEN: dict[str, Any] = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "salt", "type": "bytes32"},
        ],
        "Order": [
            {"name": "maker", "type": "Party"},
            {"name": "legs", "type": "Leg[]"},
            {"name": "tags", "type": "string[]"},
            {"name": "limits", "type": "int16[2]"},
            {"name": "flag", "type": "bool"},
            {"name": "memo", "type": "bytes"},
            {"name": "ref", "type": "bytes4"},
            {"name": "size", "type": "uint8"},
        ],
        "Party": [{"name": "who", "type": "address"}, {"name": "label", "type": "string"}],
        "Leg": [{"name": "asset", "type": "Asset"}, {"name": "qty", "type": "int256"}],
        "Asset": [{"name": "symbol", "type": "string"}, {"name": "id", "type": "bytes32"}],
    },
    "primaryType": "Order",
    "domain": {"name": "venue ✓", "chainId": 8453, "salt": "0x" + "ab" * 32},
    "message": {
        "maker": {"who": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "label": "ünïcødé 🙂"},
        "legs": [
            {"asset": {"symbol": "ETH", "id": "0x" + "01" * 32}, "qty": -5},
            {"asset": {"symbol": "USDC", "id": "0x" + "02" * 32}, "qty": 10**30},
        ],
        "tags": ["a", "", "long " * 20],
        "limits": [-32768, 32767],
        "flag": True,
        "memo": "0xdeadbeef",
        "ref": "0x01020304",
        "size": 255,
    },
}


def eth_account_digest(data: dict[str, Any]) -> bytes:
    m = encode_typed_data(full_message=data)
    return keccak(b"\x19" + m.version + m.header + m.body)


def ours(data: dict[str, Any]) -> bytes:
    return typed_data_digest(data["domain"], data["primaryType"], data["message"], data["types"])


def random_withdrawals(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(712)
    alphabet = "".join(chr(c) for c in range(0x21, 0x7F))
    out = []
    for _ in range(n):
        def word(k: int) -> str:
            return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, k)))

        out.append(withdrawal_typed_data(
            chain_id=rnd.choice([1, 10, 8453, 31337, 2**53 + 1]),
            audience=word(40), asset=word(10), amount=f"{rnd.randint(1, 10**12)}.{rnd.randint(0, 99):02d}",
            destination="0x" + rnd.randbytes(20).hex(), network=word(20), nonce=word(22),
            expires_at=rnd.randint(0, 2**64),
        ))
    return out


def test_the_eip_example() -> None:
    assert encode_type("Mail", MAIL["types"]) == MAIL_TYPE
    assert ours(MAIL).hex() == MAIL_DIGEST
    assert eth_account_digest(MAIL).hex() == MAIL_DIGEST


@pytest.mark.parametrize("data", [MAIL, KITCHEN, *random_withdrawals(25)])
def test_same_digest_as_eth_account(data: dict[str, Any]) -> None:
    assert ours(data) == eth_account_digest(data)


def test_withdrawal_digest_is_the_typed_data_digest() -> None:
    fields: dict[str, Any] = {"chain_id": 31337, "audience": "trading-api", "asset": "USDC", "amount": "1.50",
              "destination": "0xabc", "network": "ethereum", "nonce": "N", "expires_at": 1}
    data = withdrawal_typed_data(**fields)
    assert data["types"]["Withdrawal"] == [
        {"name": n, "type": t} for n, t in (
            ("audience", "string"), ("asset", "string"), ("amount", "string"),
            ("destination", "string"), ("network", "string"), ("nonce", "string"),
            ("expiresAt", "uint256"))
    ]
    assert "verifyingContract" not in data["domain"]
    assert withdrawal_digest(**fields) == eth_account_digest(data)
    assert withdrawal_digest(**{**fields, "chain_id": 1}) != withdrawal_digest(**fields)


def _js_case(data: dict[str, Any], key: str) -> dict[str, Any]:
    types = {k: v for k, v in data["types"].items() if k != "EIP712Domain"}
    big = json.loads(json.dumps(data["message"], default=str))
    if data["primaryType"] == "Withdrawal":
        big["expiresAt"] = str(data["message"]["expiresAt"])  # beyond JS numbers: a string
    domain = {**data["domain"], "chainId": str(data["domain"]["chainId"])}
    return {"privateKey": key, "domain": domain, "types": types, "message": big}


def test_same_digest_and_signature_as_ethers() -> None:
    cases = [MAIL, *random_withdrawals(10)]
    kitchen = json.loads(json.dumps(KITCHEN))
    kitchen["message"]["legs"][1]["qty"] = str(10**30)
    keys = ["0x" + bytes(Account.create().key).hex() for _ in cases]
    payload = [_js_case(d, k) for d, k in zip(cases, keys, strict=True)]
    payload.append({**_js_case(KITCHEN, keys[0]), "message": kitchen["message"]})
    out = subprocess.run(
        ["node", str(SCRIPT)], input=json.dumps(payload), capture_output=True, text=True,
        cwd=ROOT, timeout=60, check=True,
    )
    results = json.loads(out.stdout)
    for data, key, got in zip([*cases, KITCHEN], [*keys, keys[0]], results, strict=True):
        digest = ours(data)
        assert got["digest"] == "0x" + digest.hex()
        signature = bytes.fromhex(got["signature"][2:])
        # RFC 6979 deterministic ECDSA: eth-account signs the same bytes ethers did.
        mine = Account.sign_message(encode_typed_data(full_message=data), key).signature
        assert bytes(mine) == signature
        assert recover_digest_raw(digest, signature) == bytes.fromhex(
            Account.from_key(key).address[2:]
        )


def test_values_are_checked_against_their_types() -> None:
    bad = [
        ("uint8", 256), ("uint8", -1), ("int8", 128), ("int8", -129), ("uint256", True),
        ("address", "0x1234"), ("bytes4", "0x0102"), ("bool", 1), ("string", b"x"),
        ("uint7", 1), ("Nope", 1),
    ]
    for type_name, value in bad:
        types = {"T": [{"name": "v", "type": type_name}]}
        with pytest.raises(ValueError):
            typed_data_digest({"chainId": 1}, "T", {"v": value}, types)
    with pytest.raises(ValueError):  # a missing member
        typed_data_digest({"chainId": 1}, "T", {}, {"T": [{"name": "v", "type": "uint8"}]})
    with pytest.raises(ValueError):  # an unknown domain field
        typed_data_digest({"chainId": 1, "x": 1}, "T", {"v": 1},
                          {"T": [{"name": "v", "type": "uint8"}]})


def test_digest_recovery_rules() -> None:
    acct = Account.create()
    digest = withdrawal_digest(chain_id=1, audience="a", asset="b", amount="1",
                               destination="d", network="n", nonce="x", expires_at=5)
    sig = bytes(Account.unsafe_sign_hash(digest, acct.key).signature)
    assert recover_digest_raw(digest, sig) == bytes.fromhex(acct.address[2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    high = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(InvalidGrant) as err:
        recover_digest_raw(digest, high)
    assert err.value.reason == "high_s"
    with pytest.raises(InvalidGrant):
        recover_digest_raw(digest[:31], sig)
