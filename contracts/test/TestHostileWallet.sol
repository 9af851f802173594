// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/**
 * @notice TEST ONLY. A contract wallet that misbehaves on purpose, for the verifier's
 * resource-bound and error-handling tests. `isValidSignature` and every other call (so the
 * contract can also stand in for an EIP-6492 factory) do what `mode` says:
 *
 *   BURN_GAS     loop forever: the call runs until it is out of gas (or the verifier's
 *                wall-clock cap stops it)
 *   REVERT       revert with a custom error
 *   DIRTY_MAGIC  return one word starting with 0x1626ba7e whose other bytes are not zero
 *                (not the ABI encoding of bytes4 0x1626ba7e)
 *   SHORT_MAGIC  return the 4 bytes 0x1626ba7e, not ABI-encoded (shorter than a word)
 *   HUGE_RETURN  return 1 MiB of zero bytes
 *
 * None of these is the EIP-1271 magic value, so a verifier must refuse every one of them.
 */
contract TestHostileWallet {
    uint8 public constant BURN_GAS = 0;
    uint8 public constant REVERT = 1;
    uint8 public constant DIRTY_MAGIC = 2;
    uint8 public constant SHORT_MAGIC = 3;
    uint8 public constant HUGE_RETURN = 4;

    uint8 public immutable mode;

    error Refused(bytes32 hash);

    constructor(uint8 mode_) {
        require(mode_ <= HUGE_RETURN, "unknown mode");
        mode = mode_;
    }

    function isValidSignature(bytes32 hash, bytes calldata) external view returns (bytes4) {
        _misbehave(hash);
    }

    fallback() external {
        _misbehave(bytes32(0));
    }

    function _misbehave(bytes32 hash) private view {
        uint8 m = mode;
        if (m == BURN_GAS) {
            assembly ("memory-safe") {
                let i := 0
                for {} 1 {} {
                    i := add(i, 1)
                }
            }
        }
        if (m == REVERT) revert Refused(hash);
        if (m == DIRTY_MAGIC) {
            assembly ("memory-safe") {
                mstore(0, 0x1626ba7e000000000000000000000000000000000000000000000000000000ff)
                return(0, 32)
            }
        }
        if (m == SHORT_MAGIC) {
            assembly ("memory-safe") {
                mstore(0, 0x1626ba7e00000000000000000000000000000000000000000000000000000000)
                return(0, 4)
            }
        }
        assembly {
            return(0, 0x100000)
        }
    }
}
