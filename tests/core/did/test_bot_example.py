"""examples/bot_login.py end to end: a bot with a sigAuth delegate key logs in over HTTP
(/did/challenge, /did/verify) and calls examples/trading_api.py's /account.

did-auth runs as a real `did-auth serve` process with the DID registry on the Hardhat node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.core.did import CHAIN_ID, ROOT, Key, Registry
from tests.fixtures.hardhat import HardhatNode
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import config_dict, start_server, stop_server

BOT = ROOT / "examples" / "bot_login.py"
TRADING_API = ROOT / "examples" / "trading_api.py"


@dataclass
class Stack:
    issuer: str
    api: str


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@pytest.fixture(scope="module")
def stack(hardhat_node: HardhatNode, registry: Registry) -> Iterator[Stack]:
    server = start_server(config_dict(
        chains=[
            {"chain_id": CHAIN_ID, "rpc_url": hardhat_node.url, "did_registry": registry.address}
        ],
    ))
    issuer = server.url
    api_port = free_port()
    api = subprocess.Popen(
        [
            sys.executable,
            str(TRADING_API),
            "--issuer",
            issuer,
            "--audience",
            "trading-api",
            "--port",
            str(api_port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(issuer + "/healthz")
        wait_http(f"http://127.0.0.1:{api_port}/healthz", api)
        yield Stack(issuer=issuer, api=f"http://127.0.0.1:{api_port}")
    finally:
        api.terminate()
        api.wait(10)
        stop_server(server)


def run_bot(
    stack: Stack, did: str, bot: Key, *extra: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(BOT),
            "--issuer",
            stack.issuer,
            "--client-id",
            "dapp",
            "--did",
            did,
            "--api",
            stack.api,
            *extra,
        ],
        env={**os.environ, "BOT_PRIVATE_KEY": bot.hex, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_bot_logs_in_with_a_delegate_key_and_calls_the_api(
    stack: Stack, registry: Registry, hardhat_node: HardhatNode
) -> None:
    owner, bot = Key.new(), Key.new()
    registry.fund(owner)
    # The owner authorises the bot key through the example's demo option.
    out = run_bot(
        stack,
        owner.ethr,
        bot,
        "--authorize",
        "--rpc-url",
        hardhat_node.url,
        "--registry",
        registry.address,
        "--validity",
        "3600",
        "--scope",
        "account:read trade:write",
        OWNER_PRIVATE_KEY=owner.hex,
    )
    assert out.returncode == 0, out.stderr
    account = json.loads(out.stdout)
    assert account["sub"] == owner.ethr
    assert "scope 'account:read trade:write'" in out.stderr

    # A delegate never gets wallet:withdraw (delegate_scopes), whatever it asks for.
    out = run_bot(stack, owner.ethr, bot, "--scope", "wallet:withdraw")
    assert out.returncode == 1 and "invalid_scope" in out.stderr

    # The owner revokes the key on chain: the next login is refused.
    registry.revoke_delegate(owner, owner.address, "sigAuth", bot.address)
    out = run_bot(stack, owner.ethr, bot)
    assert out.returncode == 1 and "access_denied" in out.stderr, out.stderr


def test_a_key_that_was_never_authorised_is_refused(stack: Stack) -> None:
    owner, stranger = Key.new(), Key.new()
    out = run_bot(stack, owner.ethr, stranger)
    assert out.returncode == 1 and "invalid_grant" in out.stderr, out.stderr
