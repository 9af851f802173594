// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/**
 * EIP-6492 universal signature validation (counterfactual wallets), EIP-1271 and ecrecover,
 * written from the EIP text (https://eips.ethereum.org/EIPS/eip-6492, "Verifier side").
 * The external functions keep the EIP's names and ABI so any EIP-6492 client can call them.
 */

interface IERC1271Wallet {
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4);
}

/// @notice The wallet's isValidSignature reverted; `error` is its revert data.
error ERC1271Revert(bytes error);
/// @notice The 6492 factory / prepare call reverted; `error` is its revert data.
error ERC6492CallFailed(bytes error);
/// @notice The 6492 factory call succeeded but left no code at the signer's address.
error ERC6492DeploySilentlyFailed();

contract UniversalSigValidator {
    /// @dev A signature ending in these 32 bytes is EIP-6492-wrapped:
    /// abi.encode(address factory, bytes factoryCalldata, bytes innerSignature) ++ MAGIC.
    bytes32 private constant ERC6492_MAGIC = 0x6492649264926492649264926492649264926492649264926492649264926492;
    bytes4 private constant ERC1271_MAGIC = 0x1626ba7e;

    /**
     * @notice Validates without leaving side effects: when a counterfactual wallet had to be
     * deployed, the inner call reverts with a single byte carrying the verdict, undoing the
     * deployment. Other failures (a reverting wallet or factory) are re-thrown.
     */
    function isValidSig(address signer, bytes32 hash, bytes calldata signature) external returns (bool) {
        try this.isValidSigImpl(signer, hash, signature, false, false) returns (bool valid) {
            return valid;
        } catch (bytes memory reason) {
            if (reason.length == 1) return reason[0] == 0x01;
            assembly ("memory-safe") {
                revert(add(reason, 0x20), mload(reason))
            }
        }
    }

    /// @notice Same verdict as {isValidSig}, but a counterfactual wallet stays deployed.
    function isValidSigWithSideEffects(address signer, bytes32 hash, bytes calldata signature)
        external
        returns (bool)
    {
        return this.isValidSigImpl(signer, hash, signature, true, false);
    }

    /**
     * @notice The EIP-6492 verification order:
     *  1. a signature ending in the magic suffix is unwrapped; the factory (or "prepare") call
     *     runs first when the signer has no code yet, then EIP-1271 is asked about the inner
     *     signature;
     *  2. a signer with code is asked through EIP-1271 (signatures of any length);
     *  3. if a wrapped signature fails against an already-deployed wallet, the wrapped call is
     *     executed anyway (it may be a "prepare" call such as a migration) and EIP-1271 retried;
     *  4. only a signer without code is checked with ecrecover (65 bytes).
     * @param allowSideEffects false: report the verdict of a call that deployed code by
     *        reverting with one byte (0x01 valid, 0x00 invalid), see {isValidSig}.
     * @param tryPrepare run the wrapped call even though the signer already has code.
     */
    function isValidSigImpl(
        address signer,
        bytes32 hash,
        bytes calldata signature,
        bool allowSideEffects,
        bool tryPrepare
    ) public returns (bool) {
        if (!_isWrapped(signature)) {
            if (signer.code.length > 0) return _erc1271(signer, hash, signature);
            return _ecrecover(signer, hash, signature);
        }

        // Rule 1: run the wrapped call when the signer has no code yet (or on a rule-3 retry).
        bool called = tryPrepare || signer.code.length == 0;
        (bytes memory inner, bool callOk, bytes memory callError) = _unwrapAndCall(signer, signature, called);
        (bool valid, bool threw, bytes memory reason) = _ask1271(signer, hash, inner);

        // Rule 3: a wallet that already had code may need the wrapped "prepare" call first.
        if (!valid && !called) return isValidSigImpl(signer, hash, signature, allowSideEffects, true);
        if (!valid && tryPrepare && !callOk) revert ERC6492CallFailed(callError);
        if (threw) revert ERC1271Revert(reason);

        if (called && !allowSideEffects) {
            // The call changed state: undo it by reverting, the verdict travels as one byte.
            assembly ("memory-safe") {
                mstore(0, valid)
                revert(31, 1)
            }
        }
        return valid;
    }

    function _isWrapped(bytes calldata signature) private pure returns (bool) {
        return signature.length >= 32 && bytes32(signature[signature.length - 32:]) == ERC6492_MAGIC;
    }

    /// @dev Decodes abi.encode(address to, bytes data, bytes inner) ++ MAGIC and, if `call`,
    /// calls `to` with `data`. Afterwards the signer MUST have code.
    function _unwrapAndCall(address signer, bytes calldata signature, bool call)
        private
        returns (bytes memory inner, bool ok, bytes memory err)
    {
        address to;
        bytes memory data;
        (to, data, inner) = abi.decode(signature[:signature.length - 32], (address, bytes, bytes));
        if (call) {
            (ok, err) = to.call(data);
        }
        if (signer.code.length == 0) {
            if (call && !ok) revert ERC6492CallFailed(err);
            revert ERC6492DeploySilentlyFailed();
        }
    }

    function _ask1271(address signer, bytes32 hash, bytes memory signature)
        private
        view
        returns (bool valid, bool threw, bytes memory reason)
    {
        try IERC1271Wallet(signer).isValidSignature(hash, signature) returns (bytes4 magic) {
            valid = magic == ERC1271_MAGIC;
        } catch (bytes memory err) {
            threw = true;
            reason = err;
        }
    }

    function _erc1271(address signer, bytes32 hash, bytes calldata signature) private view returns (bool) {
        try IERC1271Wallet(signer).isValidSignature(hash, signature) returns (bytes4 magic) {
            return magic == ERC1271_MAGIC;
        } catch (bytes memory reason) {
            revert ERC1271Revert(reason);
        }
    }

    /// @dev Plain ecrecover: malformed signatures are invalid, never a revert.
    function _ecrecover(address signer, bytes32 hash, bytes calldata signature) private pure returns (bool) {
        if (signature.length != 65 || signer == address(0)) return false;
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27; // some signers encode the recovery id as 0/1
        if (v != 27 && v != 28) return false;
        return ecrecover(hash, v, r, s) == signer;
    }
}

/**
 * @notice Deployless validation: send this contract's creation code followed by
 * abi.encode(address signer, bytes32 hash, bytes signature) as the data of an `eth_call`
 * without a `to`. The constructor validates through a fresh {UniversalSigValidator} and the
 * call returns exactly one byte, 0x01 (valid) or 0x00 (invalid); failures revert. Nothing
 * needs to be deployed on the chain, and since it is a call, nothing ever is.
 */
contract ValidateSigOffchain {
    constructor(address signer, bytes32 hash, bytes memory signature) {
        bool valid = new UniversalSigValidator().isValidSigWithSideEffects(signer, hash, signature);
        assembly ("memory-safe") {
            mstore(0, valid)
            return(31, 1)
        }
    }
}
