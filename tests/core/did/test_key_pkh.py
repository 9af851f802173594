"""did:key and did:pkh identifiers and documents; did:ethr and generic DID syntax."""

from __future__ import annotations

import pytest
from coincurve import PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_account import Account

from did_auth.core.did import parse_did
from did_auth.core.did.ethr import parse_did_ethr
from did_auth.core.did.key import (
    b58decode,
    b58encode,
    decode_multikey,
    did_key,
    encode_multikey,
    parse_did_key,
    resolve_did_key,
)
from did_auth.core.did.pkh import parse_did_pkh, pkh_did, resolve_did_pkh
from did_auth.core.errors import InvalidRequest

# Vectors derived by the JavaScript stack (did-jwt bytesToMultibase + @noble/curves), see
# tests/interop/did_tools.mjs "identifiers": independent of our encoder.
SECP_PRIV = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
SECP_DID_KEY = "did:key:zQ3shZxBiP5i8nVm2ZKfXTGPE4p2kZNa8bAJjKczmySvnNFrf"
ED_SEED = bytes([1]) * 32
ED_DID_KEY = "did:key:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX"
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def ed_public(seed: bytes) -> bytes:
    return (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


# --------------------------------------------------------------------------- base58


@pytest.mark.parametrize(
    "raw", [b"", b"\0", b"\0\0\x01", b"hello world", bytes(range(256)), b"\xff" * 40]
)
def test_base58_round_trip(raw: bytes) -> None:
    assert b58decode(b58encode(raw)) == raw


def test_base58_known_vector() -> None:
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
    assert b58encode(b"\0\0\0\x28\x7f\xb4\xcd") == "111233QC4"
    with pytest.raises(ValueError):
        b58decode("0OIl")


# --------------------------------------------------------------------------- did:key


def test_did_key_matches_the_javascript_stack() -> None:
    pub = PrivateKey(bytes.fromhex(SECP_PRIV)).public_key.format(compressed=True)
    assert did_key("secp256k1", pub) == SECP_DID_KEY
    assert did_key("Ed25519", ed_public(ED_SEED)) == ED_DID_KEY
    assert SECP_DID_KEY.startswith("did:key:zQ3s") and ED_DID_KEY.startswith("did:key:z6Mk")


def test_did_key_document() -> None:
    parsed = parse_did_key(ED_DID_KEY)
    assert parsed.key_type == "Ed25519" and parsed.public_key == ed_public(ED_SEED)
    doc = resolve_did_key(parsed).document.to_json()
    mb = ED_DID_KEY.removeprefix("did:key:")
    vm_id = f"{ED_DID_KEY}#{mb}"
    assert doc == {
        "id": ED_DID_KEY,
        "verificationMethod": [
            {"id": vm_id, "type": "Multikey", "controller": ED_DID_KEY, "publicKeyMultibase": mb}
        ],
        "authentication": [vm_id],
        "assertionMethod": [vm_id],
        "capabilityInvocation": [vm_id],
        "capabilityDelegation": [vm_id],
    }


def test_did_key_round_trips_random_keys() -> None:
    for _ in range(20):
        pub = PrivateKey().public_key.format(compressed=True)
        assert parse_did_key(did_key("secp256k1", pub)).public_key == pub
        seed = PrivateKey().secret
        assert parse_did_key(did_key("Ed25519", ed_public(seed))).public_key == ed_public(seed)


@pytest.mark.parametrize(
    "bad",
    [
        "did:key:",
        "did:key:u7QFeDqgvrO0x9OWlSXGMS3rnVjqmRd1Nt_f49-t5Df6UGA",  # base64url multibase
        "did:key:z" + b58encode(b"\xec\x01" + bytes(32)),  # x25519-pub: not a signing key
        "did:key:z" + b58encode(b"\xed\x01" + bytes(31)),  # short Ed25519 key
        "did:key:z" + b58encode(b"\xed\x81\x00" + bytes(32)),  # non-minimal varint
        "did:key:z" + b58encode(b"\xe7\x01\x04" + bytes(64)),  # uncompressed secp256k1
        "did:key:z" + b58encode(b"\xe7\x01\x02" + b"\xff" * 32),  # x not on the curve
        "did:key:z1" + b58encode(b"\xed\x01" + bytes(range(32))),  # extra leading zero byte
        "did:key:1:z6Mkon3Necd6NkkyfoGoHxid2znGc59LU3K7mubaRcFbLfLX",  # versioned form
        ED_DID_KEY + "0",  # 0 is not base58
    ],
)
def test_did_key_rejects(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_did_key(bad)


def test_multikey_is_canonical_and_typed() -> None:
    raw = ed_public(ED_SEED)
    mb = encode_multikey("Ed25519", raw)
    assert decode_multikey(mb) == ("Ed25519", raw)
    with pytest.raises(ValueError):
        decode_multikey("f" + mb[1:])


# --------------------------------------------------------------------------- did:pkh


def test_did_pkh_parse_and_document() -> None:
    did = f"did:pkh:eip155:1:{ADDRESS.lower()}"
    parsed = parse_did_pkh(did)
    assert parsed.chain_id == 1 and parsed.address == ADDRESS
    doc = resolve_did_pkh(parsed).document.to_json()
    assert doc == {
        "id": did,
        "verificationMethod": [
            {
                "id": f"{did}#blockchainAccountId",
                "type": "EcdsaSecp256k1RecoveryMethod2020",
                "controller": did,
                "blockchainAccountId": f"eip155:1:{ADDRESS.lower()}",
            }
        ],
        "authentication": [f"{did}#blockchainAccountId"],
        "assertionMethod": [f"{did}#blockchainAccountId"],
    }
    assert parse_did_pkh(f"did:pkh:eip155:31337:{ADDRESS}").chain_id == 31337


def test_pkh_did_is_the_siwe_subject_form() -> None:
    assert pkh_did(31337, ADDRESS.lower()) == f"did:pkh:eip155:31337:{ADDRESS}"
    from did_auth.core.flows.siwe_login import pkh_did as siwe_sub

    assert siwe_sub(31337, ADDRESS) == pkh_did(31337, ADDRESS)


@pytest.mark.parametrize(
    "bad",
    [
        f"did:pkh:eip155:1:{ADDRESS[:-1]}d",  # mixed case, wrong checksum
        f"did:pkh:eip155:01:{ADDRESS}",  # CAIP-2 reference with a leading zero
        f"did:pkh:eip155:0:{ADDRESS}",
        f"did:pkh:eip155::{ADDRESS}",
        "did:pkh:solana:4sGjMW1sUnHzSxGspuhpqLDx6wiyjNtZ:AqsAhePP1z5uxhGNWiEaoVtCGpCdjRgQUcTc8T7rDzx9",
        f"did:pkh:eip155:1:{ADDRESS}00",
        f"did:pkh:bip122:1:{ADDRESS}",
    ],
)
def test_did_pkh_rejects(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_did_pkh(bad)


# --------------------------------------------------------------------------- did:ethr syntax


@pytest.mark.parametrize(
    ("did", "chain_id"),
    [
        (f"did:ethr:{ADDRESS}", 1),
        (f"did:ethr:mainnet:{ADDRESS}", 1),
        (f"did:ethr:0x1:{ADDRESS}", 1),
        (f"did:ethr:sepolia:{ADDRESS}", 11155111),
        (f"did:ethr:polygon:test:{ADDRESS}", 80001),
        (f"did:ethr:0x7a69:{ADDRESS}", 31337),
        (f"did:ethr:0x7a69:{ADDRESS.lower()}", 31337),
        (f"did:ethr:0x7a69:0x{ADDRESS[2:].upper()}", 31337),
    ],
)
def test_did_ethr_networks(did: str, chain_id: int) -> None:
    parsed = parse_did_ethr(did)
    assert parsed.chain_id == chain_id and parsed.address == ADDRESS and parsed.public_key is None


def test_did_ethr_public_key_identifier() -> None:
    priv = PrivateKey(bytes.fromhex(SECP_PRIV))
    pub = "0x" + priv.public_key.format(compressed=True).hex()
    parsed = parse_did_ethr(f"did:ethr:0x7a69:{pub}")
    assert parsed.public_key == pub
    assert parsed.address == Account.from_key(priv.secret).address == ADDRESS


@pytest.mark.parametrize(
    "bad",
    [
        f"did:ethr:0x7A69:{ADDRESS}",  # the reference resolver only knows 0x7a69
        f"did:ethr:0x07a69:{ADDRESS}",
        f"did:ethr:7a69:{ADDRESS}",
        f"did:ethr:31337:{ADDRESS}",
        f"did:ethr:nowhere:{ADDRESS}",
        f"did:ethr:0x7a69:{ADDRESS[:-1]}d",  # bad checksum
        f"did:ethr:0x7a69:{ADDRESS[:-1]}",
        "did:ethr:0x7a69:0x04" + "11" * 32,  # not compressed
        "did:ethr:0x7a69:0x02" + "ff" * 32,  # not a curve point
        "did:ethr:",
    ],
)
def test_did_ethr_rejects(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_did_ethr(bad)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        42,
        "",
        "did:web:example.com",
        f"did:ethr:0x7a69:{ADDRESS}#controller",
        f"did:ethr:0x7a69:{ADDRESS}?versionId=1",
        f"did:pkh:eip155:1:{ADDRESS}/path",
        "did:key:z" + "1" * 300,
        f"DID:ethr:{ADDRESS}",
    ],
)
def test_parse_did_rejects(bad: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_did(bad)
