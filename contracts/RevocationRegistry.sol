// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

/**
 * @title did-auth RevocationRegistry
 * @notice An account's kill switch, readable by every did-auth server and trading API.
 *
 * An account (an EOA or a contract wallet) can
 *  - revoke one id it owns (a session `sid`, a key id, an API client id): {revoke};
 *  - revoke everything authenticated before now: {revokeAll} sets
 *    `revokedBefore[account] = block.timestamp` (it only ever grows);
 *  - do either without gas by signing an EIP-712 message that anyone relays:
 *    {revokeSigned}, {revokeAllSigned}.
 * Holders of {OPERATOR_ROLE} can {suspend} / {unsuspend} an account (compliance freeze).
 * Nobody else can change an account's entries. Revocations are final; suspensions are not.
 *
 * EIP-712 domain: `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`
 * with name "did-auth RevocationRegistry", version "1", the chain's id and this contract's
 * address (also readable through EIP-5267 `eip712Domain()` and {DOMAIN_SEPARATOR}).
 *
 * Signed types (primary type names "Revoke" and "RevokeAll"):
 *   `Revoke(address account,bytes32 id,uint256 nonce,uint256 deadline)`
 *   `RevokeAll(address account,uint256 nonce,uint256 deadline)`
 * `nonce` MUST equal `nonces(account)` when the message is relayed; it is consumed on use, so
 * a signature works once. `deadline` is a unix time in seconds, inclusive. The signature is
 * checked with OpenZeppelin SignatureChecker: ECDSA (65 bytes, low-s) when `account` has no
 * code, EIP-1271 `isValidSignature` (any length) when it has.
 *
 * Events: every change emits one. {Revoked} and {RevokedAll} are emitted on every successful
 * call (re-revoking is harmless and keeps an audit trail of who asked); {Suspended} and
 * {Unsuspended} only when the state actually changes. Role changes emit AccessControl's
 * RoleGranted / RoleRevoked.
 */
contract RevocationRegistry is AccessControl, EIP712, Nonces {
    /// @notice Role allowed to suspend and unsuspend accounts.
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");

    /// @notice keccak256("Revoke(address account,bytes32 id,uint256 nonce,uint256 deadline)")
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("Revoke(address account,bytes32 id,uint256 nonce,uint256 deadline)");

    /// @notice keccak256("RevokeAll(address account,uint256 nonce,uint256 deadline)")
    bytes32 public constant REVOKE_ALL_TYPEHASH =
        keccak256("RevokeAll(address account,uint256 nonce,uint256 deadline)");

    /// @notice Sessions of `account` authenticated before this unix time are revoked (0: none).
    mapping(address account => uint256) public revokedBefore;

    mapping(address account => mapping(bytes32 id => bool)) private _revoked;
    mapping(address account => bool) private _suspended;

    /// @notice `account` revoked `id`; `by` is who sent the transaction (the account, or a relayer).
    event Revoked(address indexed account, bytes32 indexed id, address indexed by);
    /// @notice Everything of `account` authenticated before `before` (unix seconds) is revoked.
    event RevokedAll(address indexed account, uint256 before);
    /// @notice `operator` suspended `account`.
    event Suspended(address indexed account, address indexed operator);
    /// @notice `operator` lifted the suspension of `account`.
    event Unsuspended(address indexed account, address indexed operator);

    /// @notice The signed message's deadline has passed.
    error ExpiredSignature(uint256 deadline);
    /// @notice The signature is not `account`'s for this message and the account's current nonce.
    error InvalidSignature(address account);

    /// @param admin receives DEFAULT_ADMIN_ROLE (manages roles) and OPERATOR_ROLE.
    constructor(address admin) EIP712("did-auth RevocationRegistry", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    // ------------------------------------------------------------------ the account itself

    /// @notice Revoke one id of the caller.
    function revoke(bytes32 id) external {
        _revoke(msg.sender, id);
    }

    /// @notice Revoke everything of the caller authenticated before this block's timestamp.
    function revokeAll() external {
        _revokeAll(msg.sender);
    }

    // ------------------------------------------------------------------ relayed (gasless)

    /**
     * @notice Revoke `id` of `account`, authorised by `account`'s EIP-712 signature of
     * `Revoke(account, id, nonces(account), deadline)`. Anyone may relay it.
     */
    function revokeSigned(address account, bytes32 id, uint256 deadline, bytes calldata signature)
        external
    {
        _checkSigned(
            account,
            keccak256(abi.encode(REVOKE_TYPEHASH, account, id, _useNonce(account), deadline)),
            deadline,
            signature
        );
        _revoke(account, id);
    }

    /**
     * @notice {revokeAll} for `account`, authorised by its EIP-712 signature of
     * `RevokeAll(account, nonces(account), deadline)`. Anyone may relay it.
     */
    function revokeAllSigned(address account, uint256 deadline, bytes calldata signature) external {
        _checkSigned(
            account,
            keccak256(abi.encode(REVOKE_ALL_TYPEHASH, account, _useNonce(account), deadline)),
            deadline,
            signature
        );
        _revokeAll(account);
    }

    // ------------------------------------------------------------------ operators

    /// @notice Freeze `account`: no login, no refresh, live tokens die.
    function suspend(address account) external onlyRole(OPERATOR_ROLE) {
        if (!_suspended[account]) {
            _suspended[account] = true;
            emit Suspended(account, msg.sender);
        }
    }

    /// @notice Lift the freeze of `account`.
    function unsuspend(address account) external onlyRole(OPERATOR_ROLE) {
        if (_suspended[account]) {
            _suspended[account] = false;
            emit Unsuspended(account, msg.sender);
        }
    }

    // ------------------------------------------------------------------ views

    /// @notice Whether `account` revoked `id`.
    function isRevoked(address account, bytes32 id) external view returns (bool) {
        return _revoked[account][id];
    }

    /// @notice Whether `account` is suspended.
    function isSuspended(address account) external view returns (bool) {
        return _suspended[account];
    }

    /**
     * @notice Everything one login or refresh decision needs, in one call (one block):
     * whether `account` is suspended, its `revokedBefore`, and for each of `ids` whether
     * it is revoked.
     */
    function status(address account, bytes32[] calldata ids)
        external
        view
        returns (bool suspended, uint256 before, bool[] memory revoked)
    {
        suspended = _suspended[account];
        before = revokedBefore[account];
        revoked = new bool[](ids.length);
        for (uint256 i = 0; i < ids.length; ++i) {
            revoked[i] = _revoked[account][ids[i]];
        }
    }

    /// @notice The EIP-712 domain separator of this registry on this chain.
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ------------------------------------------------------------------ internals

    function _revoke(address account, bytes32 id) private {
        _revoked[account][id] = true;
        emit Revoked(account, id, msg.sender);
    }

    function _revokeAll(address account) private {
        // block.timestamp never decreases, so revokedBefore only grows.
        revokedBefore[account] = block.timestamp;
        emit RevokedAll(account, block.timestamp);
    }

    function _checkSigned(address account, bytes32 structHash, uint256 deadline, bytes calldata signature)
        private
        view
    {
        if (block.timestamp > deadline) revert ExpiredSignature(deadline);
        if (!SignatureChecker.isValidSignatureNowCalldata(account, _hashTypedDataV4(structHash), signature)) {
            revert InvalidSignature(account);
        }
    }
}
