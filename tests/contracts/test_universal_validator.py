"""EIP-6492 universal validator (contracts/UniversalSigValidator.sol) on Hardhat and py-evm.

The deployless ``ValidateSigOffchain`` is run with ``eth_call`` and no ``to``: nothing of it
is deployed, and it answers one byte, 0x01 valid / 0x00 invalid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak
from web3 import Web3

from tests.fixtures.hardhat import (
    REVERT_ERRORS,
    contract_at,
    deploy,
    load_test_artifact,
    reverted_with,
    transact,
)

MAGIC_6492 = bytes.fromhex("64926492" * 8)
VALID, INVALID = b"\x01", b"\x00"


@dataclass
class Chain:
    name: str
    w3: Web3
    keys: tuple[str, ...]
    factory: Any  # bound TestWalletFactory

    @property
    def deployer(self) -> str:
        return self.keys[0]


@pytest.fixture(scope="module", params=["hardhat", "pyevm"])
def chain(request: pytest.FixtureRequest) -> Chain:
    if request.param == "hardhat":
        node = request.getfixturevalue("hardhat_node")
        w3, keys = request.getfixturevalue("hardhat_w3"), node.private_keys
    else:
        evm = request.getfixturevalue("evm_chain")
        w3, keys = evm.w3, evm.private_keys
    factory = contract_at(
        w3, "TestWalletFactory", deploy(w3, "TestWalletFactory", sender_key=keys[0])
    )
    return Chain(request.param, w3, keys, factory)


def siwe_hash(text: str = "example.com wants you to sign in") -> bytes:
    """The EIP-191 hash a wallet signs for a SIWE message."""
    msg = encode_defunct(text=text)
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


def sign_hash(key: str, digest: bytes) -> bytes:
    return bytes(Account.unsafe_sign_hash(digest, key).signature)


def offchain(chain: Chain, signer: str, digest: bytes, signature: bytes) -> bytes:
    """Run ValidateSigOffchain in one eth_call, with no deployed validator."""
    code = load_test_artifact("ValidateSigOffchain").bytecode
    args = encode(["address", "bytes32", "bytes"], [signer, digest, signature])
    return bytes(chain.w3.eth.call({"data": code + args.hex()}))


def wrap_6492(factory: str, calldata: str | bytes, inner: bytes) -> bytes:
    data = bytes.fromhex(calldata[2:]) if isinstance(calldata, str) else calldata
    return encode(["address", "bytes", "bytes"], [factory, data, inner]) + MAGIC_6492


def counterfactual(chain: Chain, owner: str, trailer: int = 0) -> tuple[str, str]:
    """A fresh wallet address of ``owner`` (not deployed) and the factory calldata deploying it."""
    salt = os.urandom(32)
    f = chain.factory
    if trailer:
        address = f.functions.computeAddressWithTrailer(owner, trailer, salt).call()
        calldata = f.encode_abi("deployWithTrailer", args=[owner, trailer, salt])
    else:
        address = f.functions.computeAddress(owner, salt).call()
        calldata = f.encode_abi("deploy", args=[owner, salt])
    assert chain.w3.eth.get_code(address) == b""
    return address, calldata


# ------------------------------------------------------------------------------ EOA


def test_eoa_signature(chain: Chain) -> None:
    signer = Account.from_key(chain.keys[3])
    digest = siwe_hash()
    assert offchain(chain, signer.address, digest, sign_hash(signer.key.hex(), digest)) == VALID


def test_eoa_wrong_signer(chain: Chain) -> None:
    signer, other = Account.from_key(chain.keys[3]), Account.from_key(chain.keys[4])
    digest = siwe_hash()
    assert offchain(chain, signer.address, digest, sign_hash(other.key.hex(), digest)) == INVALID
    # right key, other message
    assert (
        offchain(chain, signer.address, siwe_hash("x"), sign_hash(chain.keys[3], digest)) == INVALID
    )


def test_eoa_malformed_signature_is_invalid_not_a_revert(chain: Chain) -> None:
    signer = Account.from_key(chain.keys[3])
    digest = siwe_hash()
    sig = sign_hash(chain.keys[3], digest)
    assert offchain(chain, signer.address, digest, sig[:64]) == INVALID
    assert offchain(chain, signer.address, digest, sig + b"\x00") == INVALID
    assert offchain(chain, signer.address, digest, b"") == INVALID


def test_eoa_recovery_id_0_1_accepted(chain: Chain) -> None:
    signer = Account.from_key(chain.keys[3])
    digest = siwe_hash()
    sig = bytearray(sign_hash(chain.keys[3], digest))
    sig[64] -= 27
    assert offchain(chain, signer.address, digest, bytes(sig)) == VALID


# ------------------------------------------------------------------------------ EIP-1271


def test_deployed_wallet_signature(chain: Chain) -> None:
    owner = Account.from_key(chain.keys[5])
    wallet = deploy(chain.w3, "TestERC1271Wallet", owner.address, 0, sender_key=chain.deployer)
    digest = siwe_hash()
    sig = sign_hash(chain.keys[5], digest)
    assert offchain(chain, wallet, digest, sig) == VALID
    # the owner's signature is not the wallet's identity for ecrecover: 1271 comes first
    assert offchain(chain, owner.address, digest, sig) == VALID
    assert offchain(chain, wallet, digest, sign_hash(chain.keys[6], digest)) == INVALID


def test_long_signature_reaches_the_wallet_untruncated(chain: Chain) -> None:
    owner = Account.from_key(chain.keys[5])
    wallet = deploy(chain.w3, "TestERC1271Wallet", owner.address, 32, sender_key=chain.deployer)
    digest = siwe_hash()
    sig = sign_hash(chain.keys[5], digest) + os.urandom(32)
    assert len(sig) == 97
    w = contract_at(chain.w3, "TestERC1271Wallet", wallet)
    assert w.functions.isValidSignature(digest, sig).call() == bytes.fromhex("1626ba7e")
    assert offchain(chain, wallet, digest, sig) == VALID
    assert offchain(chain, wallet, digest, sig[:65]) == INVALID


# ------------------------------------------------------------------------------ EIP-6492


def test_counterfactual_wallet_6492(chain: Chain) -> None:
    owner = Account.from_key(chain.keys[7])
    wallet, calldata = counterfactual(chain, owner.address)
    digest = siwe_hash()
    wrapped = wrap_6492(chain.factory.address, calldata, sign_hash(chain.keys[7], digest))
    assert offchain(chain, wallet, digest, wrapped) == VALID
    assert chain.w3.eth.get_code(wallet) == b""  # an eth_call deploys nothing
    bad = wrap_6492(chain.factory.address, calldata, sign_hash(chain.keys[8], digest))
    assert offchain(chain, wallet, digest, bad) == INVALID


def test_counterfactual_long_signature_wallet_6492(chain: Chain) -> None:
    owner = Account.from_key(chain.keys[7])
    wallet, calldata = counterfactual(chain, owner.address, trailer=40)
    digest = siwe_hash()
    inner = sign_hash(chain.keys[7], digest) + os.urandom(40)
    assert (
        offchain(chain, wallet, digest, wrap_6492(chain.factory.address, calldata, inner)) == VALID
    )
    short = wrap_6492(chain.factory.address, calldata, inner[:65])
    assert offchain(chain, wallet, digest, short) == INVALID


def test_6492_signature_still_valid_after_deployment(chain: Chain) -> None:
    owner = Account.from_key(chain.keys[7])
    wallet, calldata = counterfactual(chain, owner.address)
    digest = siwe_hash()
    wrapped = wrap_6492(chain.factory.address, calldata, sign_hash(chain.keys[7], digest))
    # deploy it for real (the same calldata), then the wrapped signature checks the live wallet
    chain.w3.eth.wait_for_transaction_receipt(
        chain.w3.eth.send_transaction(
            {"from": chain.w3.eth.accounts[0], "to": chain.factory.address, "data": calldata}
        )
    )
    assert chain.w3.eth.get_code(wallet) != b""
    assert offchain(chain, wallet, digest, wrapped) == VALID
    bad = wrap_6492(chain.factory.address, calldata, sign_hash(chain.keys[8], digest))
    assert offchain(chain, wallet, digest, bad) == INVALID


def test_6492_for_another_address_reverts(chain: Chain) -> None:
    owner = Account.from_key(chain.keys[7])
    _, calldata = counterfactual(chain, owner.address)
    other, _ = counterfactual(chain, owner.address)  # never deployed by this calldata
    digest = siwe_hash()
    wrapped = wrap_6492(chain.factory.address, calldata, sign_hash(chain.keys[7], digest))
    with pytest.raises(REVERT_ERRORS) as err:
        offchain(chain, other, digest, wrapped)
    assert reverted_with(err.value, "ERC6492DeploySilentlyFailed()")


# ------------------------------------------------------------------------------ deployed validator


def test_deployed_validator_is_free_of_side_effects(chain: Chain) -> None:
    w3 = chain.w3
    validator = contract_at(
        w3, "UniversalSigValidator", deploy(w3, "UniversalSigValidator", sender_key=chain.deployer)
    )
    owner = Account.from_key(chain.keys[7])
    digest = siwe_hash()
    wallet, calldata = counterfactual(chain, owner.address)
    wrapped = wrap_6492(chain.factory.address, calldata, sign_hash(chain.keys[7], digest))

    assert validator.functions.isValidSig(wallet, digest, wrapped).call() is True
    bad = wrap_6492(chain.factory.address, calldata, sign_hash(chain.keys[8], digest))
    assert validator.functions.isValidSig(wallet, digest, bad).call() is False
    eoa = Account.from_key(chain.keys[3])
    assert validator.functions.isValidSig(
        eoa.address, digest, sign_hash(chain.keys[3], digest)
    ).call()

    # isValidSig in a mined transaction: the deployment it needed is rolled back
    transact(w3, validator.functions.isValidSig(wallet, digest, wrapped), chain.deployer)
    assert w3.eth.get_code(wallet) == b""
    # isValidSigWithSideEffects keeps it
    transact(
        w3, validator.functions.isValidSigWithSideEffects(wallet, digest, wrapped), chain.deployer
    )
    assert w3.eth.get_code(wallet) != b""
    assert validator.functions.isValidSig(wallet, digest, wrapped).call() is True
