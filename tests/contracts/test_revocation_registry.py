"""contracts/RevocationRegistry.sol on a real Hardhat node, driven from Python (web3).

Covers: revoke / revokeAll and their events, the gasless EIP-712 variants for an EOA and an
EIP-1271 wallet (including a signature longer than 65 bytes), replayed / expired / wrong
signatures, OPERATOR_ROLE-only suspension, role grant/revoke events, and the views.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract

from tests.fixtures.hardhat import (
    REVERT_ERRORS,
    HardhatNode,
    deploy,
    deploy_receipt,
    reverted_with,
    send,
    transact,
)

DOMAIN_NAME = "did-auth RevocationRegistry"
DOMAIN_VERSION = "1"
REVOKE_TYPE = "Revoke(address account,bytes32 id,uint256 nonce,uint256 deadline)"
REVOKE_ALL_TYPE = "RevokeAll(address account,uint256 nonce,uint256 deadline)"
TYPES = {
    "Revoke": [
        {"name": "account", "type": "address"},
        {"name": "id", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "RevokeAll": [
        {"name": "account", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}
OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
DEFAULT_ADMIN_ROLE = b"\x00" * 32


@dataclass
class Env:
    w3: Web3
    keys: tuple[str, ...]
    registry: Contract
    deploy_receipt: Any

    @property
    def admin(self) -> str:
        return self.keys[0]

    def addr(self, i: int) -> str:
        return Account.from_key(self.keys[i]).address

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


@pytest.fixture(scope="module")
def env(hardhat_node: HardhatNode, hardhat_w3: Web3) -> Env:
    keys = hardhat_node.private_keys
    admin = Account.from_key(keys[0]).address
    registry, receipt = deploy_receipt(hardhat_w3, "RevocationRegistry", admin, sender_key=keys[0])
    return Env(hardhat_w3, keys, registry, receipt)


def new_id() -> bytes:
    return os.urandom(32)


def typed_message(env: Env, primary: str, message: dict[str, Any]) -> SignableMessage:
    domain = {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": env.w3.eth.chain_id,
        "verifyingContract": env.registry.address,
    }
    return encode_typed_data(
        domain_data=domain, message_types={primary: TYPES[primary]}, message_data=message
    )


def digest_of(msg: SignableMessage) -> bytes:
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


def sign_revoke(
    env: Env, key: str, account: str, id_: bytes, deadline: int, nonce: int | None = None
) -> bytes:
    """An EOA's EIP-712 signature of Revoke(account, id, nonce, deadline)."""
    if nonce is None:
        nonce = env.registry.functions.nonces(account).call()
    msg = typed_message(
        env, "Revoke", {"account": account, "id": id_, "nonce": nonce, "deadline": deadline}
    )
    return bytes(Account.sign_message(msg, key).signature)


def revoke_all_digest(env: Env, account: str, deadline: int) -> bytes:
    nonce = env.registry.functions.nonces(account).call()
    msg = typed_message(
        env, "RevokeAll", {"account": account, "nonce": nonce, "deadline": deadline}
    )
    return digest_of(msg)


def events(env: Env, receipt: Any, name: str) -> list[Any]:
    return list(getattr(env.registry.events, name)().process_receipt(receipt))


# ------------------------------------------------------------------ deployment, domain, roles


def test_constructor_grants_admin_and_operator_roles(env: Env) -> None:
    admin = env.addr(0)
    reg = env.registry.functions
    assert reg.hasRole(DEFAULT_ADMIN_ROLE, admin).call()
    assert reg.hasRole(OPERATOR_ROLE, admin).call()
    assert reg.OPERATOR_ROLE().call() == OPERATOR_ROLE
    granted = events(env, env.deploy_receipt, "RoleGranted")
    assert {(e.args.role, e.args.account) for e in granted} == {
        (DEFAULT_ADMIN_ROLE, admin),
        (OPERATOR_ROLE, admin),
    }


def test_eip712_domain_and_type_hashes(env: Env) -> None:
    reg = env.registry.functions
    _fields, name, version, chain_id, verifying, _salt, _ext = reg.eip712Domain().call()
    assert (name, version) == (DOMAIN_NAME, DOMAIN_VERSION)
    assert chain_id == env.w3.eth.chain_id == 31337
    assert verifying == env.registry.address
    msg = typed_message(env, "RevokeAll", {"account": env.addr(1), "nonce": 0, "deadline": 0})
    assert reg.DOMAIN_SEPARATOR().call() == msg.header
    assert reg.REVOKE_TYPEHASH().call() == keccak(text=REVOKE_TYPE)
    assert reg.REVOKE_ALL_TYPEHASH().call() == keccak(text=REVOKE_ALL_TYPE)


# ------------------------------------------------------------------ the account itself


def test_revoke_one_id(env: Env) -> None:
    user, other = env.addr(1), env.addr(2)
    sid, unrelated = new_id(), new_id()
    reg = env.registry.functions
    assert not reg.isRevoked(user, sid).call()
    receipt = transact(env.w3, reg.revoke(sid), env.keys[1])
    (ev,) = events(env, receipt, "Revoked")
    assert (ev.args.account, ev.args.id, ev.args.by) == (user, sid, user)
    assert reg.isRevoked(user, sid).call()
    assert not reg.isRevoked(user, unrelated).call()
    assert not reg.isRevoked(other, sid).call()  # ids are per account
    # revoking again is harmless and still logged
    again = transact(env.w3, reg.revoke(sid), env.keys[1])
    assert len(events(env, again, "Revoked")) == 1
    assert reg.isRevoked(user, sid).call()


def test_revoke_all_sets_revoked_before_to_the_block_time(env: Env) -> None:
    user = env.addr(1)
    reg = env.registry.functions
    receipt = transact(env.w3, reg.revokeAll(), env.keys[1])
    mined_at = env.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    (ev,) = events(env, receipt, "RevokedAll")
    assert (ev.args.account, ev.args.before) == (user, mined_at)
    assert reg.revokedBefore(user).call() == mined_at
    assert reg.revokedBefore(env.addr(2)).call() == 0  # per account

    later = transact(env.w3, reg.revokeAll(), env.keys[1])
    later_at = env.w3.eth.get_block(later["blockNumber"])["timestamp"]
    assert later_at >= mined_at
    assert reg.revokedBefore(user).call() == later_at


def test_status_reads_one_decision_in_one_call(env: Env) -> None:
    user = env.addr(5)
    a, b = new_id(), new_id()
    reg = env.registry.functions
    assert reg.status(user, [a, b]).call() == [False, 0, [False, False]]
    transact(env.w3, reg.revoke(b), env.keys[5])
    receipt = transact(env.w3, reg.revokeAll(), env.keys[5])
    at = env.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    transact(env.w3, reg.suspend(user), env.admin)
    assert reg.status(user, [a, b]).call() == [True, at, [False, True]]
    assert reg.status(user, []).call() == [True, at, []]
    transact(env.w3, reg.unsuspend(user), env.admin)


# ------------------------------------------------------------------ gasless, EOA


def test_revoke_signed_by_eoa_relayed_by_anyone(env: Env) -> None:
    user, relayer = env.addr(6), env.addr(2)
    reg = env.registry.functions
    sid, deadline = new_id(), env.now() + 3600
    nonce = reg.nonces(user).call()
    sig = sign_revoke(env, env.keys[6], user, sid, deadline)
    receipt = transact(env.w3, reg.revokeSigned(user, sid, deadline, sig), env.keys[2])
    (ev,) = events(env, receipt, "Revoked")
    assert (ev.args.account, ev.args.id, ev.args.by) == (user, sid, relayer)
    assert reg.isRevoked(user, sid).call()
    assert not reg.isRevoked(relayer, sid).call()
    assert reg.nonces(user).call() == nonce + 1


def test_revoke_all_signed_by_eoa(env: Env) -> None:
    user = env.addr(6)
    reg = env.registry.functions
    deadline = env.now() + 3600
    msg_digest = revoke_all_digest(env, user, deadline)
    sig = bytes(Account.unsafe_sign_hash(msg_digest, env.keys[6]).signature)
    # the same signature via eth_account's own EIP-712 encoder
    nonce = reg.nonces(user).call()
    typed = typed_message(env, "RevokeAll", {"account": user, "nonce": nonce, "deadline": deadline})
    assert bytes(Account.sign_message(typed, env.keys[6]).signature) == sig
    receipt = transact(env.w3, reg.revokeAllSigned(user, deadline, sig), env.keys[2])
    at = env.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    (ev,) = events(env, receipt, "RevokedAll")
    assert (ev.args.account, ev.args.before) == (user, at)
    assert reg.revokedBefore(user).call() == at
    assert reg.nonces(user).call() == nonce + 1


def test_replayed_signature_is_rejected(env: Env) -> None:
    user = env.addr(7)
    reg = env.registry.functions
    sid, deadline = new_id(), env.now() + 3600
    sig = sign_revoke(env, env.keys[7], user, sid, deadline)
    transact(env.w3, reg.revokeSigned(user, sid, deadline, sig), env.keys[2])
    nonce = reg.nonces(user).call()
    with pytest.raises(REVERT_ERRORS) as err:
        transact(env.w3, reg.revokeSigned(user, sid, deadline, sig), env.keys[2])
    assert reverted_with(err.value, "InvalidSignature(address)", user)
    assert reg.nonces(user).call() == nonce  # a failed attempt consumes nothing

    deadline2 = env.now() + 3600
    sig_all = bytes(
        Account.unsafe_sign_hash(revoke_all_digest(env, user, deadline2), env.keys[7]).signature
    )
    transact(env.w3, reg.revokeAllSigned(user, deadline2, sig_all), env.keys[2])
    with pytest.raises(REVERT_ERRORS) as err:
        transact(env.w3, reg.revokeAllSigned(user, deadline2, sig_all), env.keys[3])
    assert reverted_with(err.value, "InvalidSignature(address)", user)


def test_signature_for_an_old_or_future_nonce_is_rejected(env: Env) -> None:
    user = env.addr(7)
    reg = env.registry.functions
    sid, deadline = new_id(), env.now() + 3600
    nonce = reg.nonces(user).call()
    for wrong in (nonce + 1, max(nonce - 1, 0) if nonce else nonce + 2):
        sig = sign_revoke(env, env.keys[7], user, sid, deadline, nonce=wrong)
        with pytest.raises(REVERT_ERRORS) as err:
            transact(env.w3, reg.revokeSigned(user, sid, deadline, sig), env.keys[2])
        assert reverted_with(err.value, "InvalidSignature(address)", user)
    assert not reg.isRevoked(user, sid).call()


def test_expired_deadline_is_rejected(env: Env) -> None:
    user = env.addr(8)
    reg = env.registry.functions
    sid = new_id()
    deadline = env.now() - 1
    sig = sign_revoke(env, env.keys[8], user, sid, deadline)
    with pytest.raises(REVERT_ERRORS) as err:
        transact(env.w3, reg.revokeSigned(user, sid, deadline, sig), env.keys[2])
    assert reverted_with(err.value, "ExpiredSignature(uint256)", deadline)
    sig_all = bytes(
        Account.unsafe_sign_hash(revoke_all_digest(env, user, deadline), env.keys[8]).signature
    )
    with pytest.raises(REVERT_ERRORS) as err:
        transact(env.w3, reg.revokeAllSigned(user, deadline, sig_all), env.keys[2])
    assert reverted_with(err.value, "ExpiredSignature(uint256)", deadline)
    assert not reg.isRevoked(user, sid).call()
    assert reg.revokedBefore(user).call() == 0


def test_deadline_is_inclusive(env: Env) -> None:
    user = env.addr(8)
    reg = env.registry.functions
    sid = new_id()
    deadline = env.now() + 100
    sig = sign_revoke(env, env.keys[8], user, sid, deadline)
    # the transaction is mined in a block whose timestamp is exactly the deadline
    env.w3.provider.make_request("evm_setNextBlockTimestamp", [deadline])  # type: ignore[arg-type]
    tx = reg.revokeSigned(user, sid, deadline, sig).build_transaction(
        {"from": env.addr(2), "gas": 200_000}
    )
    receipt = send(env.w3, dict(tx), env.keys[2])  # gas given: no estimate
    assert receipt["status"] == 1
    assert env.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == deadline
    assert reg.isRevoked(user, sid).call()


def test_wrong_signer_is_rejected(env: Env) -> None:
    victim, attacker = env.addr(9), env.addr(3)
    reg = env.registry.functions
    sid, deadline = new_id(), env.now() + 3600
    # the attacker signs a revocation of the victim's id, and of the victim's everything
    forged = sign_revoke(env, env.keys[3], victim, sid, deadline)
    with pytest.raises(REVERT_ERRORS) as err:
        transact(env.w3, reg.revokeSigned(victim, sid, deadline, forged), env.keys[3])
    assert reverted_with(err.value, "InvalidSignature(address)", victim)
    forged_all = bytes(
        Account.unsafe_sign_hash(revoke_all_digest(env, victim, deadline), env.keys[3]).signature
    )
    with pytest.raises(REVERT_ERRORS):
        transact(env.w3, reg.revokeAllSigned(victim, deadline, forged_all), env.keys[3])
    # the victim's own signature, but bound to other parameters
    good = sign_revoke(env, env.keys[9], victim, sid, deadline)
    for args in (
        (victim, new_id(), deadline, good),  # another id
        (victim, sid, deadline + 1, good),  # another deadline
        (attacker, sid, deadline, good),  # another account
        (victim, sid, deadline, good[:64]),  # truncated
    ):
        with pytest.raises(REVERT_ERRORS):
            transact(env.w3, reg.revokeSigned(*args), env.keys[3])
    # signed for another chain's or another registry's domain
    other_domain = encode_typed_data(
        domain_data={
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": 1,
            "verifyingContract": env.registry.address,
        },
        message_types={"Revoke": TYPES["Revoke"]},
        message_data={"account": victim, "id": sid, "nonce": 0, "deadline": deadline},
    )
    cross = bytes(Account.sign_message(other_domain, env.keys[9]).signature)
    with pytest.raises(REVERT_ERRORS):
        transact(env.w3, reg.revokeSigned(victim, sid, deadline, cross), env.keys[3])
    assert not reg.isRevoked(victim, sid).call()
    assert reg.revokedBefore(victim).call() == 0
    assert reg.nonces(victim).call() == 0


# ------------------------------------------------------------------ gasless, EIP-1271 wallet


def test_revoke_signed_by_erc1271_wallet(env: Env) -> None:
    owner_key = env.keys[10]
    owner = env.addr(10)
    wallet = deploy(env.w3, "TestERC1271Wallet", owner, 0, sender_key=env.admin)
    reg = env.registry.functions
    sid, deadline = new_id(), env.now() + 3600
    msg = typed_message(
        env, "Revoke", {"account": wallet, "id": sid, "nonce": 0, "deadline": deadline}
    )
    # the wallet validates the owner's signature of the EIP-712 digest itself
    sig = bytes(Account.unsafe_sign_hash(digest_of(msg), owner_key).signature)
    receipt = transact(env.w3, reg.revokeSigned(wallet, sid, deadline, sig), env.keys[2])
    (ev,) = events(env, receipt, "Revoked")
    assert (ev.args.account, ev.args.id) == (wallet, sid)
    assert reg.isRevoked(wallet, sid).call()
    assert not reg.isRevoked(owner, sid).call()
    assert reg.nonces(wallet).call() == 1
    # the owner's key cannot act for the wallet through the EOA path, nor a stranger's
    bad = bytes(
        Account.unsafe_sign_hash(revoke_all_digest(env, wallet, deadline), env.keys[11]).signature
    )
    with pytest.raises(REVERT_ERRORS) as err:
        transact(env.w3, reg.revokeAllSigned(wallet, deadline, bad), env.keys[2])
    assert reverted_with(err.value, "InvalidSignature(address)", wallet)


def test_long_wallet_signature_is_passed_whole(env: Env) -> None:
    owner_key = env.keys[10]
    wallet = deploy(env.w3, "TestERC1271Wallet", env.addr(10), 48, sender_key=env.admin)
    reg = env.registry.functions
    deadline = env.now() + 3600
    digest = revoke_all_digest(env, wallet, deadline)
    sig = bytes(Account.unsafe_sign_hash(digest, owner_key).signature) + os.urandom(48)
    with pytest.raises(REVERT_ERRORS):  # the 65-byte prefix alone is not enough
        transact(env.w3, reg.revokeAllSigned(wallet, deadline, sig[:65]), env.keys[2])
    receipt = transact(env.w3, reg.revokeAllSigned(wallet, deadline, sig), env.keys[2])
    at = env.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert reg.revokedBefore(wallet).call() == at


# ------------------------------------------------------------------ operators


def test_only_operators_suspend_and_unsuspend(env: Env) -> None:
    target, outsider = env.addr(12), env.addr(13)
    reg = env.registry.functions
    for fn in (reg.suspend(target), reg.unsuspend(target)):
        with pytest.raises(REVERT_ERRORS) as err:
            transact(env.w3, fn, env.keys[13])
        assert reverted_with(
            err.value, "AccessControlUnauthorizedAccount(address,bytes32)", outsider, OPERATOR_ROLE
        )
    # an account cannot lift its own suspension either
    transact(env.w3, reg.suspend(target), env.admin)
    with pytest.raises(REVERT_ERRORS):
        transact(env.w3, reg.unsuspend(target), env.keys[12])
    assert reg.isSuspended(target).call()
    transact(env.w3, reg.unsuspend(target), env.admin)


def test_suspend_unsuspend_events_and_view(env: Env) -> None:
    target, operator = env.addr(14), env.addr(0)
    reg = env.registry.functions
    assert not reg.isSuspended(target).call()
    receipt = transact(env.w3, reg.suspend(target), env.admin)
    (ev,) = events(env, receipt, "Suspended")
    assert (ev.args.account, ev.args.operator) == (target, operator)
    assert reg.isSuspended(target).call()
    # no state change, no event
    assert events(env, transact(env.w3, reg.suspend(target), env.admin), "Suspended") == []
    # a suspended account can still revoke (the kill switch always works)
    sid = new_id()
    transact(env.w3, reg.revoke(sid), env.keys[14])
    assert reg.isRevoked(target, sid).call()

    receipt = transact(env.w3, reg.unsuspend(target), env.admin)
    (ev,) = events(env, receipt, "Unsuspended")
    assert (ev.args.account, ev.args.operator) == (target, operator)
    assert not reg.isSuspended(target).call()
    assert events(env, transact(env.w3, reg.unsuspend(target), env.admin), "Unsuspended") == []


def test_operator_role_grant_and_revoke(env: Env) -> None:
    new_op, target = env.addr(15), env.addr(16)
    reg = env.registry.functions
    # only the admin manages the role
    with pytest.raises(REVERT_ERRORS) as err:
        transact(env.w3, reg.grantRole(OPERATOR_ROLE, new_op), env.keys[15])
    assert reverted_with(
        err.value, "AccessControlUnauthorizedAccount(address,bytes32)", new_op, DEFAULT_ADMIN_ROLE
    )
    receipt = transact(env.w3, reg.grantRole(OPERATOR_ROLE, new_op), env.admin)
    (ev,) = events(env, receipt, "RoleGranted")
    assert (ev.args.role, ev.args.account, ev.args.sender) == (OPERATOR_ROLE, new_op, env.addr(0))
    receipt = transact(env.w3, reg.suspend(target), env.keys[15])
    (ev,) = events(env, receipt, "Suspended")
    assert ev.args.operator == new_op

    receipt = transact(env.w3, reg.revokeRole(OPERATOR_ROLE, new_op), env.admin)
    (ev,) = events(env, receipt, "RoleRevoked")
    assert (ev.args.role, ev.args.account, ev.args.sender) == (OPERATOR_ROLE, new_op, env.addr(0))
    assert not reg.hasRole(OPERATOR_ROLE, new_op).call()
    with pytest.raises(REVERT_ERRORS):
        transact(env.w3, reg.unsuspend(target), env.keys[15])
    assert reg.isSuspended(target).call()
    transact(env.w3, reg.unsuspend(target), env.admin)


def test_operators_cannot_revoke_for_an_account(env: Env) -> None:
    """Only the account (or its signature) changes its revocations: the registry has no
    operator path to them, and another account's revoke() only touches its own entries."""
    victim = env.addr(17)
    reg = env.registry.functions
    names = {f["name"] for f in env.registry.abi if f.get("type") == "function"}
    assert {"revoke", "revokeAll", "revokeSigned", "revokeAllSigned"} <= names
    sid = new_id()
    transact(env.w3, reg.revoke(sid), env.admin)
    transact(env.w3, reg.revokeAll(), env.admin)
    assert not reg.isRevoked(victim, sid).call()
    assert reg.revokedBefore(victim).call() == 0
