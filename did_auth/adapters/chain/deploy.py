"""`did-auth contracts deploy`: put the registries on a chain and print the config for them.

Deploys the project's `RevocationRegistry` (admin and operator role: the deploying account,
docs/interface.md "Contracts") and, unless the chain already has the canonical ERC-1056
`EthereumDIDRegistry` at its well-known address, a fresh `EthereumDIDRegistry`. Prints a
`[[chains]]` TOML table ready to paste into a config file.

The deployer is the key read from `--private-key-file` or `$DID_AUTH_DEPLOYER_KEY` (never a
command-line argument; transactions signed locally, EIP-155 with the node's chain id) or,
without one, the node's first unlocked account (`eth_accounts`, as on Hardhat or anvil).
Every failure is a one-line `ContractsDeployError` (CLI exit 1, no traceback).
"""

from __future__ import annotations

import json
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.exceptions import Web3Exception

from did_auth.adapters.chain.contracts import load_artifact
from did_auth.core.errors import DidAuthError

__all__ = ["CANONICAL_DID_REGISTRY", "ContractsDeployError", "deploy_registries"]

#: Where `ethr-did-registry` is deployed on mainnet and most public networks (the npm
#: package's deployments list); reused when the chain has code there.
CANONICAL_DID_REGISTRY = "0xdCa7EF03e98e0DC2B855bE647C39ABe984fcF21B"
RPC_TIMEOUT = 30.0
RECEIPT_TIMEOUT = 180.0


class ContractsDeployError(DidAuthError):
    """Deploying the registries failed (unreachable RPC, bad key, reverted deployment)."""

    code = "deploy_failed"
    status = 500


class _Deployer:
    def __init__(self, w3: Web3, private_key: str | None) -> None:
        self.w3 = w3
        self.key = private_key
        if private_key is not None:
            try:
                self.address = Web3.to_checksum_address(Account.from_key(private_key).address)
            except (ValueError, TypeError):
                raise ContractsDeployError(
                    "the deployer key is not a valid secp256k1 private key (32 bytes of hex)"
                ) from None
        else:
            accounts = w3.eth.accounts
            if not accounts:
                raise ContractsDeployError(
                    "the node has no unlocked account: pass --private-key-file or set "
                    "DID_AUTH_DEPLOYER_KEY"
                )
            self.address = Web3.to_checksum_address(accounts[0])

    def deploy(self, name: str, *args: Any) -> str:
        art = load_artifact(name)
        ctor = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args)
        if self.key is None:
            tx_hash = ctor.transact({"from": self.address})
        else:
            tx = ctor.build_transaction(
                {
                    "from": self.address,
                    "nonce": self.w3.eth.get_transaction_count(self.address, "pending"),
                    "chainId": self.w3.eth.chain_id,
                }
            )
            signed = Account.sign_transaction(tx, self.key)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT)
        address = receipt.get("contractAddress")
        if receipt.get("status") != 1 or not address:
            raise ContractsDeployError(f"deploying {name} failed (transaction reverted)")
        return str(address)


def _toml(chain_id: int, rpc_url: str, did_registry: str, revocation_registry: str) -> str:
    # json.dumps produces a valid TOML basic string for any URL.
    return "\n".join(
        [
            "[[chains]]",
            f"chain_id = {chain_id}",
            f"rpc_url = {json.dumps(rpc_url)}",
            f'did_registry = "{did_registry}"',
            f'revocation_registry = "{revocation_registry}"',
            "confirmations = 0",
        ]
    )


def deploy_registries(rpc_url: str, private_key: str | None) -> str:
    """Deploy the registries on the chain at `rpc_url`; return the `[[chains]]` TOML."""
    if not rpc_url.startswith(("http://", "https://")):
        raise ContractsDeployError("--rpc-url must be an http(s) JSON-RPC URL")
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": RPC_TIMEOUT}))
    try:
        chain_id = int(w3.eth.chain_id)
    except (OSError, Web3Exception, ValueError) as exc:
        # requests' ConnectionError / Timeout are OSErrors; the URL is the user's own.
        raise ContractsDeployError(
            f"cannot reach the JSON-RPC node at {rpc_url} ({type(exc).__name__})"
        ) from None
    deployer = _Deployer(w3, private_key)
    try:
        revocation = deployer.deploy("RevocationRegistry", deployer.address)
        if w3.eth.get_code(Web3.to_checksum_address(CANONICAL_DID_REGISTRY)):
            did_registry = CANONICAL_DID_REGISTRY
        else:
            did_registry = deployer.deploy("EthereumDIDRegistry")
    except ContractsDeployError:
        raise
    except (OSError, Web3Exception, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ContractsDeployError(f"deployment failed: {message[:200]}") from None
    header = f"# did-auth registries on chain {chain_id}, deployed by {deployer.address}"
    return header + "\n" + _toml(chain_id, rpc_url, did_registry, revocation)
