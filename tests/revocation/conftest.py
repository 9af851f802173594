"""Session fixture: a RevocationRegistry and an ERC-1056 registry of our own on the session's
Hardhat node (deployed once; admin/operator, funder and relayer are dev accounts 17-19)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from tests.fixtures.hardhat import HardhatNode, deploy_receipt
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import config_dict, start_server, stop_server
from tests.revocation import RevChain, address_of
from tests.revocation.sse import StreamServers


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


# ----------------------------------------------------------------- the revocation stream


@pytest.fixture(scope="session")
def stream_servers(redis_server: RedisServer) -> Iterator[StreamServers]:
    """Two `did-auth serve` processes on one Redis database (replicas A and B): A allows
    4 revocation streams per client address, B 3 streams in all (the bounds under test)."""
    kek = str(Path(tempfile.mkdtemp(prefix="did-auth-stream-")) / "kek.bin")
    redis_url = redis_server.own_db(5)

    def config(**limits: int) -> dict[str, Any]:
        cfg = config_dict(redis_url=redis_url, key_encryption_key_file=kek)
        cfg["rate_limits"] = {**cfg["rate_limits"], **limits}
        return cfg

    a = start_server(config(revocation_streams_per_ip=4))
    try:
        b = start_server(config(revocation_streams=3))
    except Exception:
        stop_server(a)
        raise
    yield StreamServers(a, b, redis_url, kek)
    stop_server(a)
    stop_server(b)
