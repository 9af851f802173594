// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/**
 * @notice TEST ONLY. A minimal contract wallet owned by one key, for EIP-1271 / EIP-6492 tests.
 *
 * `isValidSignature(hash, signature)` returns 0x1626ba7e iff
 *   - `signature.length == 65 + trailerLength`, and
 *   - its first 65 bytes are the owner's ECDSA signature (r ++ s ++ v, low-s) of `hash`
 *     itself (the raw 32-byte hash, no EIP-191 prefix added by the wallet).
 * Otherwise it returns 0xffffffff (it never reverts).
 *
 * Long-signature mode: with `trailerLength > 0` the owner's signature must be followed by
 * exactly `trailerLength` arbitrary bytes. A verifier that truncates signatures to 65 bytes
 * therefore gets "invalid" from such a wallet, which is what the tests check for.
 */
contract TestERC1271Wallet is IERC1271 {
    bytes4 private constant MAGIC = 0x1626ba7e;
    bytes4 private constant INVALID = 0xffffffff;

    address public immutable owner;
    uint256 public immutable trailerLength;

    constructor(address owner_, uint256 trailerLength_) {
        owner = owner_;
        trailerLength = trailerLength_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65 + trailerLength) return INVALID;
        (address recovered, ECDSA.RecoverError err, ) = ECDSA.tryRecoverCalldata(hash, signature[:65]);
        return err == ECDSA.RecoverError.NoError && recovered == owner ? MAGIC : INVALID;
    }
}
