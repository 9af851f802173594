"""examples/bot_login.py on embedded defaults: `did-auth serve` with no config, no Hardhat.
The owner authorises the bot key through the embedded chain's JSON-RPC endpoint
(`/dev/rpc`), the bot logs in over HTTP and calls examples/trading_api.py's /account.
An unreachable RPC is one line on stderr; with a config file there is no /dev/rpc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w
from eth_account import Account

from did_auth.config.settings import load_settings
from did_auth.core.errors import ConfigError
from tests.core.did import ROOT, Key
from tests.core.did.test_bot_example import BOT, TRADING_API, Stack, wait_http
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import config_dict, start_server, stop_server


@pytest.fixture(scope="module")
def embedded_stack() -> Iterator[Stack]:
    server = start_server({})  # no config: the embedded defaults
    api_port = free_port()
    api = subprocess.Popen(
        [sys.executable, str(TRADING_API), "--issuer", server.url, "--audience", "trading-api",
         "--port", str(api_port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{api_port}/healthz", api)
        yield Stack(issuer=server.url, api=f"http://127.0.0.1:{api_port}")
    finally:
        api.terminate()
        api.wait(10)
        stop_server(server)


def rpc(url: str, method: str, params: list[object]) -> object:
    reply = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=30
    ).json()
    assert "error" not in reply, reply
    return reply["result"]


def run_bot(stack: Stack, did: str, bot: Key, *extra: str, **env: str
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BOT), "--issuer", stack.issuer, "--client-id", "demo",
         "--did", did, "--api", stack.api, *extra],
        env={**os.environ, "BOT_PRIVATE_KEY": bot.hex, **env},
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )


def test_bot_authorises_and_logs_in_through_the_dev_rpc(embedded_stack: Stack) -> None:
    dev_rpc = embedded_stack.issuer + "/dev/rpc"
    info = httpx.get(dev_rpc).json()
    assert info["chain_id"] == 31337 and info["did_registry"].startswith("0x")
    assert rpc(dev_rpc, "eth_chainId", []) == "0x7a69"
    # One of eth-tester's funded accounts (private keys 1, 2, ...) pays the owner's gas,
    # signed here: /dev/rpc signs nothing (no eth_sendTransaction), only raw transactions.
    funder = Account.from_key((5).to_bytes(32, "big"))
    owner, bot = Key.new(), Key.new()
    nonce = int(str(rpc(dev_rpc, "eth_getTransactionCount", [funder.address, "latest"])), 16)
    signed = funder.sign_transaction({"to": owner.address, "value": 10**18, "gas": 21000,
                                      "gasPrice": 10**10, "chainId": 31337, "nonce": nonce})
    tx = rpc(dev_rpc, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
    assert rpc(dev_rpc, "eth_getTransactionReceipt", [tx])["status"] == "0x1"  # type: ignore[index]
    refused = httpx.post(dev_rpc, json={"jsonrpc": "2.0", "id": 2, "method": "eth_sendTransaction",
                                        "params": [{"from": funder.address}]}).json()
    assert refused["error"]["code"] == -32601

    out = run_bot(embedded_stack, owner.ethr, bot, "--authorize", "--rpc-url", dev_rpc,
                  "--validity", "3600", "--scope", "account:read", OWNER_PRIVATE_KEY=owner.hex)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["sub"] == owner.ethr
    assert "authorised" in out.stderr and "scope 'account:read'" in out.stderr

    # Only eth_*: eth-tester's controls (time travel, snapshots) are not reachable.
    reply = httpx.post(dev_rpc, json={"jsonrpc": "2.0", "id": 7, "method": "evm_snapshot",
                                      "params": []}).json()
    assert reply["id"] == 7 and reply["error"]["code"] == -32601
    bad = httpx.post(dev_rpc, content=b"not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    plain = httpx.post(dev_rpc, content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["error"] == "invalid_request"


def test_an_rpc_error_is_one_line(embedded_stack: Stack) -> None:
    owner, bot = Key.new(), Key.new()
    dead = f"http://127.0.0.1:{free_port()}/"
    out = run_bot(embedded_stack, owner.ethr, bot, "--authorize", "--rpc-url", dead,
                  "--registry", "0x" + "11" * 20, OWNER_PRIVATE_KEY=owner.hex)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error: --authorize")

    # An owner with no ETH: the node's error (insufficient funds), one line too.
    poor = Account.create()
    out = run_bot(embedded_stack, f"did:ethr:0x7a69:{poor.address}", bot, "--authorize",
                  "--rpc-url", embedded_stack.issuer + "/dev/rpc",
                  OWNER_PRIVATE_KEY=poor.key.hex())
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr


def test_no_dev_rpc_with_a_config_file(tmp_path: Path) -> None:
    server = start_server(config_dict(chains=[{"chain_id": 31337, "rpc_url": "embedded"}]))
    try:
        assert httpx.post(server.url + "/dev/rpc", json={}).status_code == 404
    finally:
        stop_server(server)
    # A config file cannot turn it on either.
    with pytest.raises(ConfigError) as refused:
        cfg = tmp_path / "did-auth.toml"
        cfg.write_text(tomli_w.dumps(config_dict(
            chains=[{"chain_id": 31337, "rpc_url": "embedded"}], dev_rpc=True)))
        load_settings(cfg, environ={})
    assert any(p.startswith("dev_rpc:") for p in refused.value.problems)
