"""EIP-191 personal_sign recovery and EIP-55 encoding, checked against eth-account / eth-utils."""

from __future__ import annotations

import random

import pytest
from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from eth_utils.address import to_checksum_address as reference_checksum

from did_auth.core.errors import DidAuthError, InvalidGrant
from did_auth.core.signatures import (
    MAX_SIGNATURE_BYTES,
    SECP256K1_HALF_N,
    SECP256K1_N,
    is_checksum_address,
    keccak256,
    parse_hex_signature,
    personal_message_hash,
    recover_personal,
    to_checksum_address,
)
from did_auth.core.signatures.eip191 import _keccak256_pycryptodome
from did_auth.core.siwe import recover_address

RNG = random.Random(191)
KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ACCOUNT = Account.from_key(KEY)
TEXT = "example.org wants you to sign in with your Ethereum account:\n" + ACCOUNT.address


def sign(message: bytes, key: bytes = KEY) -> bytes:
    return bytes(Account.sign_message(encode_defunct(primitive=message), key).signature)


def with_fields(
    sig: bytes, *, r: int | None = None, s: int | None = None, v: int | None = None
) -> bytes:
    r_ = int.from_bytes(sig[:32], "big") if r is None else r
    s_ = int.from_bytes(sig[32:64], "big") if s is None else s
    v_ = sig[64] if v is None else v
    return r_.to_bytes(32, "big") + s_.to_bytes(32, "big") + bytes((v_,))


# --- keccak / EIP-55 ------------------------------------------------------------------------


def test_keccak256_known_answers_and_backends_agree() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    for size in (0, 1, 31, 32, 135, 136, 137, 1000):
        data = RNG.randbytes(size)
        assert keccak256(data) == _keccak256_pycryptodome(data)


@pytest.mark.parametrize(
    "address",
    [
        # EIP-55's own test vectors.
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_eip55_spec_vectors(address: str) -> None:
    assert to_checksum_address(address.lower()) == address
    assert to_checksum_address(bytes.fromhex(address[2:])) == address
    assert is_checksum_address(address)
    assert not is_checksum_address(address.lower())
    assert not is_checksum_address("0x" + address[2:].upper())


def test_eip55_matches_eth_utils_on_random_addresses() -> None:
    for _ in range(500):
        raw = RNG.randbytes(20)
        expected = reference_checksum("0x" + raw.hex())
        assert to_checksum_address(raw) == expected
        assert is_checksum_address(expected)
        # Flip the case of one letter: no longer a checksum address.
        letters = [i for i, c in enumerate(expected) if i > 1 and c.isalpha()]
        if letters:
            i = RNG.choice(letters)
            flipped = expected[:i] + expected[i].swapcase() + expected[i + 1 :]
            assert not is_checksum_address(flipped)


def test_eip55_addresses_without_letters_are_their_own_checksum() -> None:
    assert is_checksum_address("0x" + "0" * 40)
    assert is_checksum_address("0x" + "1234567890" * 4)


@pytest.mark.parametrize(
    "bad", ["", "0x", "0x" + "g" * 40, "0X" + "a" * 40, "0x" + "a" * 39, "0x" + "a" * 41, None, 5]
)
def test_is_checksum_address_rejects_non_addresses(bad: object) -> None:
    assert not is_checksum_address(bad)  # type: ignore[arg-type]


# --- hashing and recovery ---------------------------------------------------------------------


def test_personal_message_hash_matches_eth_account() -> None:
    for size in (0, 1, 9, 10, 99, 100, 1000):
        data = RNG.randbytes(size)
        assert personal_message_hash(data) == _hash_eip191_message(encode_defunct(primitive=data))


def test_recover_from_eth_account_signatures() -> None:
    for _ in range(50):
        account = Account.create()
        message = RNG.randbytes(RNG.randrange(0, 300))
        sig = sign(message, bytes(account.key))
        assert recover_personal(message, sig) == account.address
        # The bare recovery id (v = 0/1) is accepted as well as 27/28.
        assert recover_personal(message, with_fields(sig, v=sig[64] - 27)) == account.address


def test_recover_address_accepts_hex_and_bytes() -> None:
    sig = sign(TEXT.encode())
    assert recover_address(TEXT, "0x" + sig.hex()) == ACCOUNT.address
    assert recover_address(TEXT, "0x" + sig.hex().upper()) == ACCOUNT.address
    assert recover_address(TEXT, sig) == ACCOUNT.address
    assert recover_address(TEXT + " ", sig) != ACCOUNT.address


def test_signatures_from_eth_account_are_low_s() -> None:
    for _ in range(50):
        sig = sign(RNG.randbytes(32))
        assert int.from_bytes(sig[32:64], "big") <= SECP256K1_HALF_N


def test_high_s_is_rejected() -> None:
    """Decision: s > n/2 is refused (EIP-2 canonical form). Its low-s twin recovers the same
    key, which is exactly the malleability being closed."""
    message = b"high-s"
    sig = sign(message)
    s = int.from_bytes(sig[32:64], "big")
    twin = with_fields(sig, s=SECP256K1_N - s, v=55 - sig[64])  # 27 <-> 28
    # libsecp256k1 itself happily recovers the twin to the same public key...
    compact = twin[:64] + bytes((twin[64] - 27,))
    public = PublicKey.from_signature_and_message(
        compact, personal_message_hash(message), hasher=None
    )
    address = to_checksum_address(keccak256(public.format(compressed=False)[1:])[12:])
    assert address == ACCOUNT.address
    # ... and we refuse it.
    with pytest.raises(InvalidGrant) as info:
        recover_personal(message, twin)
    assert info.value.reason == "high_s"
    # The boundary: s = n/2 is allowed by the range check (it just recovers some key).
    boundary = with_fields(sig, s=SECP256K1_HALF_N)
    try:
        recover_personal(message, boundary)
    except InvalidGrant as exc:
        assert exc.reason == "recovery_failed"


@pytest.mark.parametrize("length", [0, 1, 64, 66, 130])
def test_wrong_length_is_invalid_grant(length: int) -> None:
    with pytest.raises(InvalidGrant) as info:
        recover_personal(b"m", b"\x01" * length)
    assert info.value.reason == "malformed_signature"


@pytest.mark.parametrize("v", [2, 3, 26, 29, 35, 36, 37, 38, 255])
def test_bad_v_is_invalid_grant(v: int) -> None:
    with pytest.raises(InvalidGrant) as info:
        recover_personal(b"m", with_fields(sign(b"m"), v=v))
    assert info.value.reason == "bad_recovery_id"


@pytest.mark.parametrize(
    ("r", "s"),
    [
        (0, 1),
        (1, 0),
        (SECP256K1_N, 1),
        (1, SECP256K1_N),
        (2**256 - 1, 1),
        (1, 2**256 - 1),
    ],
)
def test_r_s_out_of_range_is_invalid_grant(r: int, s: int) -> None:
    with pytest.raises(InvalidGrant) as info:
        recover_personal(b"m", with_fields(sign(b"m"), r=r, s=s))
    assert info.value.reason in ("bad_signature_value", "high_s")


def test_r_not_on_curve_is_invalid_grant() -> None:
    sig = sign(b"m")
    failures = 0
    for r in range(1, 200):
        try:
            recover_personal(b"m", with_fields(sig, r=r))
        except InvalidGrant as exc:
            assert exc.reason == "recovery_failed"
            failures += 1
    assert failures > 0  # about half of all x coordinates are not on the curve


def test_random_signatures_never_raise_anything_else() -> None:
    for _ in range(300):
        blob = RNG.randbytes(65)
        try:
            address = recover_personal(b"fuzz", blob)
        except InvalidGrant:
            continue
        assert is_checksum_address(address)


@pytest.mark.parametrize("message", ["text", None, 7])
def test_non_bytes_message_is_invalid_grant(message: object) -> None:
    with pytest.raises(InvalidGrant):
        recover_personal(message, sign(b"m"))  # type: ignore[arg-type]


# --- hex parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0x",
        "abcd",
        "0X" + "ab" * 65,
        "0x" + "ab" * 64 + "a",  # odd length
        "0xzz" + "ab" * 64,
        "0x" + "ab" * 32 + " " + "ab" * 33,  # bytes.fromhex would skip the space
        "0x" + "ab" * 64 + "\n",
        " 0x" + "ab" * 65,
        "0x" + "٣" * 130,  # non-ASCII digits
        "0x" + "ab" * (MAX_SIGNATURE_BYTES + 1),
    ],
)
def test_parse_hex_signature_rejects_garbage(bad: str) -> None:
    with pytest.raises(InvalidGrant) as info:
        parse_hex_signature(bad)
    assert info.value.reason == "malformed_signature"


@pytest.mark.parametrize("bad", [None, 5, b"0xab"])
def test_parse_hex_signature_rejects_non_strings(bad: object) -> None:
    with pytest.raises(InvalidGrant):
        parse_hex_signature(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [1, 65, 66, 200, 1000, MAX_SIGNATURE_BYTES])
def test_parse_hex_signature_never_truncates(size: int) -> None:
    blob = RNG.randbytes(size)
    assert parse_hex_signature("0x" + blob.hex()) == blob


@pytest.mark.parametrize(
    "signature", ["0xzz", "0x" + "00" * 65, "0x" + "ab" * 200, "nothex", b"\x00" * 10]
)
def test_recover_address_raises_only_invalid_grant(signature: str | bytes) -> None:
    with pytest.raises(DidAuthError) as info:
        recover_address(TEXT, signature)
    assert type(info.value) is InvalidGrant
