"""Session fixtures for the DID tests: the canonical ERC-1056 registry on the session's
Hardhat node (needs `-p tests.fixtures.hardhat` or the plugin in tests/conftest.py) and a
`Web3ChainReader` over an AsyncWeb3 connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from web3 import AsyncHTTPProvider, AsyncWeb3, Web3

from did_auth.adapters.chain.did_reader import Web3ChainReader
from did_auth.core.did.ethr import EthrResolver
from did_auth.core.did.resolver import DidResolver
from tests.core.did import CHAIN_ID, CountingReader, Registry
from tests.fixtures.hardhat import HardhatNode, deploy


@pytest.fixture(scope="session")
def registry(hardhat_node: HardhatNode, hardhat_w3: Web3) -> Registry:
    # The canonical EthereumDIDRegistry: bytecode and ABI of the npm ethr-did-registry build.
    address = deploy(hardhat_w3, "EthereumDIDRegistry")
    return Registry(hardhat_w3, hardhat_node.url, address)


@pytest.fixture(scope="session")
async def async_w3(hardhat_node: HardhatNode) -> AsyncIterator[Any]:
    w3 = AsyncWeb3(AsyncHTTPProvider(hardhat_node.url, request_kwargs={"timeout": 30}))
    yield w3
    await w3.provider.disconnect()


@pytest.fixture(scope="session")
def chain_reader(async_w3: Any) -> Web3ChainReader:
    return Web3ChainReader(async_w3)


@pytest.fixture
def counting_reader(chain_reader: Web3ChainReader) -> CountingReader:
    return CountingReader(chain_reader)


@pytest.fixture
def ethr_resolver(registry: Registry, counting_reader: CountingReader) -> EthrResolver:
    """A fresh resolver (empty cache) per test, reading through a call counter."""
    return EthrResolver(chain_id=CHAIN_ID, registry=registry.address, reader=counting_reader)


@pytest.fixture
def did_resolver(ethr_resolver: EthrResolver) -> DidResolver:
    return DidResolver({CHAIN_ID: ethr_resolver})
