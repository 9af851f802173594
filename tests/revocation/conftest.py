"""Session fixture: a RevocationRegistry and an ERC-1056 registry of our own on the session's
Hardhat node (deployed once; admin/operator, funder and relayer are dev accounts 17-19)."""

from __future__ import annotations

import pytest
from web3 import Web3

from tests.fixtures.hardhat import HardhatNode, deploy_receipt
from tests.revocation import RevChain, address_of


@pytest.fixture(scope="session")
def rev_chain(hardhat_node: HardhatNode, hardhat_w3: Web3) -> RevChain:
    keys = hardhat_node.private_keys
    admin, funder, relayer = keys[19], keys[18], keys[17]
    registry, _ = deploy_receipt(
        hardhat_w3, "RevocationRegistry", address_of(admin), sender_key=admin
    )
    did, _ = deploy_receipt(hardhat_w3, "EthereumDIDRegistry", sender_key=admin)
    return RevChain(
        node=hardhat_node,
        w3=hardhat_w3,
        registry=registry,
        did=did,
        admin_key=admin,
        funder_key=funder,
        relayer_key=relayer,
    )
