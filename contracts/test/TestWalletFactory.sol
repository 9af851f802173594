// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {Create2} from "@openzeppelin/contracts/utils/Create2.sol";
import {TestERC1271Wallet} from "./TestERC1271Wallet.sol";

/**
 * @notice TEST ONLY. CREATE2 factory of {TestERC1271Wallet}s, so a wallet's address is known
 * before it exists (counterfactual wallets, EIP-6492). Deploying is idempotent: deploying an
 * existing wallet returns its address, as EIP-6492 factory calls may be repeated.
 */
contract TestWalletFactory {
    event WalletDeployed(address indexed wallet, address indexed owner, uint256 trailerLength, bytes32 salt);

    /// @notice Deploy (or find) the plain wallet of `owner` (65-byte signatures).
    function deploy(address owner, bytes32 salt) external returns (address) {
        return _deploy(owner, 0, salt);
    }

    /// @notice Deploy (or find) a long-signature wallet: owner signature + `trailerLength` bytes.
    function deployWithTrailer(address owner, uint256 trailerLength, bytes32 salt) external returns (address) {
        return _deploy(owner, trailerLength, salt);
    }

    /// @notice Address of the plain wallet of `owner` for `salt`, deployed or not.
    function computeAddress(address owner, bytes32 salt) external view returns (address) {
        return _address(owner, 0, salt);
    }

    /// @notice Address of the long-signature wallet of `owner`, deployed or not.
    function computeAddressWithTrailer(address owner, uint256 trailerLength, bytes32 salt)
        external
        view
        returns (address)
    {
        return _address(owner, trailerLength, salt);
    }

    function _deploy(address owner, uint256 trailerLength, bytes32 salt) private returns (address wallet) {
        wallet = _address(owner, trailerLength, salt);
        if (wallet.code.length == 0) {
            new TestERC1271Wallet{salt: salt}(owner, trailerLength);
            emit WalletDeployed(wallet, owner, trailerLength, salt);
        }
    }

    function _address(address owner, uint256 trailerLength, bytes32 salt) private view returns (address) {
        bytes32 initCodeHash =
            keccak256(abi.encodePacked(type(TestERC1271Wallet).creationCode, abi.encode(owner, trailerLength)));
        return Create2.computeAddress(salt, initCodeHash);
    }
}
