"""`did-auth contracts deploy --rpc-url URL [--private-key-file PATH]` against the Hardhat node
(the key from a file or $DID_AUTH_DEPLOYER_KEY, never from the command line)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from web3 import Web3

from did_auth.adapters.chain.contracts import load_artifact
from did_auth.adapters.chain.deploy import CANONICAL_DID_REGISTRY
from did_auth.config.settings import load_settings
from tests.fixtures.hardhat import HardhatNode, contract_at, rpc
from tests.fixtures.redis_server import free_port

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "did_auth", "contracts", "deploy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **(env or {})},
    )


def key_file(tmp_path: Path, key: str) -> str:
    path = tmp_path / "deployer.key"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return str(path)


def check_deployment(w3: Web3, out: str, node: HardhatNode, deployer: str) -> dict[str, object]:
    config = tomllib.loads(out)
    (chain,) = config["chains"]
    assert chain["chain_id"] == 31337 and chain["rpc_url"] == node.url
    for key in ("did_registry", "revocation_registry"):
        assert Web3.is_checksum_address(chain[key])
        assert len(w3.eth.get_code(chain[key])) > 1000
    registry = contract_at(w3, "RevocationRegistry", chain["revocation_registry"])
    operator = registry.functions.OPERATOR_ROLE().call()
    assert registry.functions.hasRole(operator, deployer).call()
    assert registry.functions.hasRole(b"\x00" * 32, deployer).call()  # admin
    return chain  # type: ignore[no-any-return]


def test_deploy_with_the_nodes_first_account(
    hardhat_node: HardhatNode, hardhat_w3: Web3, tmp_path: Path
) -> None:
    result = run("--rpc-url", hardhat_node.url)
    assert result.returncode == 0, result.stderr
    chain = check_deployment(hardhat_w3, result.stdout, hardhat_node, hardhat_w3.eth.accounts[0])
    # the output pastes into a config as is
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text(result.stdout)
    settings = load_settings(cfg, environ={})
    assert settings.chain(31337) is not None
    assert settings.chain(31337).revocation_registry == chain["revocation_registry"]  # type: ignore[union-attr]


def test_deploy_with_a_private_key_reuses_a_canonical_did_registry(
    hardhat_node: HardhatNode, hardhat_w3: Web3, tmp_path: Path
) -> None:
    key = hardhat_node.private_keys[7]
    deployer = hardhat_node.accounts[7].address
    # Give the node the canonical ERC-1056 registry at its public address.
    runtime = load_artifact("EthereumDIDRegistry").deployed_bytecode
    rpc(hardhat_node.url, "hardhat_setCode", [CANONICAL_DID_REGISTRY, runtime])
    nonce = hardhat_w3.eth.get_transaction_count(deployer)
    result = run("--rpc-url", hardhat_node.url, "--private-key-file", key_file(tmp_path, key))
    assert result.returncode == 0, result.stderr
    chain = check_deployment(hardhat_w3, result.stdout, hardhat_node, deployer)
    assert chain["did_registry"] == CANONICAL_DID_REGISTRY
    assert hardhat_w3.eth.get_transaction_count(deployer) == nonce + 1  # only the registry


def test_deploy_with_the_key_from_the_environment(
    hardhat_node: HardhatNode, hardhat_w3: Web3
) -> None:
    key = hardhat_node.private_keys[8]
    deployer = hardhat_node.accounts[8].address
    result = run("--rpc-url", hardhat_node.url, env={"DID_AUTH_DEPLOYER_KEY": key})
    assert result.returncode == 0, result.stderr
    check_deployment(hardhat_w3, result.stdout, hardhat_node, deployer)


def test_a_key_on_the_command_line_is_refused(hardhat_node: HardhatNode) -> None:
    """A command line is visible to every local user (ps, /proc/<pid>/cmdline)."""
    key = hardhat_node.private_keys[7]
    result = run("--rpc-url", hardhat_node.url, "--private-key", key)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--private-key is refused" in lines[0], result.stderr
    assert "--private-key-file" in lines[0] and "DID_AUTH_DEPLOYER_KEY" in lines[0]
    assert key not in result.stderr


def test_unreachable_rpc_exits_1_without_traceback() -> None:
    result = run("--rpc-url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("did-auth: cannot reach"), result.stderr
    assert "Traceback" not in result.stderr


def test_bad_private_key_exits_1_without_traceback(
    hardhat_node: HardhatNode, tmp_path: Path
) -> None:
    result = run("--rpc-url", hardhat_node.url, "--private-key-file", key_file(tmp_path, "0x1234"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "private key" in lines[0], result.stderr
    result = run("--rpc-url", hardhat_node.url, "--private-key-file", str(tmp_path / "none"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"did-auth: --private-key-file {tmp_path / 'none'}: cannot read (No such file or directory)"
    )


def test_not_an_http_url_exits_1() -> None:
    result = run("--rpc-url", "embedded")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
