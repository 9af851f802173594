"""The committed contract artifacts are exactly what the toolchain produces today.

Recompiles ``contracts/`` with ``hardhat compile`` into a temporary artifacts/cache path (the
repository's own ``artifacts/`` and ``cache/`` are left alone), re-exports with
``scripts/export_artifacts.js`` and compares byte for byte; canonical artifacts
(EthereumDIDRegistry, Safe v1.4.1) must equal the npm packages' own builds.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from did_auth.adapters.chain.contracts import ARTIFACT_NAMES, load_artifact

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "did_auth" / "adapters" / "chain" / "artifacts"
TEST_DIR = ROOT / "tests" / "fixtures" / "artifacts"
HARDHAT = ROOT / "node_modules" / ".bin" / "hardhat"

OURS = {
    "RevocationRegistry": "contracts/RevocationRegistry.sol",
    "UniversalSigValidator": "contracts/UniversalSigValidator.sol",
    "ValidateSigOffchain": "contracts/UniversalSigValidator.sol",
    "TestERC1271Wallet": "contracts/test/TestERC1271Wallet.sol",
    "TestWalletFactory": "contracts/test/TestWalletFactory.sol",
    "TestHostileWallet": "contracts/test/TestHostileWallet.sol",
}
#: Ours, committed for the tests only (tests/fixtures/artifacts), not shipped in the package.
TEST_ONLY = {"TestHostileWallet"}
CANONICAL = {
    # name: (npm package, artifact inside it, committed copy's folder)
    "EthereumDIDRegistry": (
        "ethr-did-registry",
        "artifacts/contracts/EthereumDIDRegistry.sol/EthereumDIDRegistry.json",
        PACKAGE_DIR,
    ),
    "Safe": (
        "@safe-global/safe-contracts",
        "build/artifacts/contracts/Safe.sol/Safe.json",
        TEST_DIR,
    ),
    "SafeProxyFactory": (
        "@safe-global/safe-contracts",
        "build/artifacts/contracts/proxies/SafeProxyFactory.sol/SafeProxyFactory.json",
        TEST_DIR,
    ),
    "CompatibilityFallbackHandler": (
        "@safe-global/safe-contracts",
        "build/artifacts/contracts/handler/CompatibilityFallbackHandler.sol/"
        "CompatibilityFallbackHandler.json",
        TEST_DIR,
    ),
}


@dataclass
class Fresh:
    hardhat_dir: Path  # Hardhat's own artifacts of the fresh compile
    package_dir: Path  # export_artifacts.js output for did_auth/adapters/chain/artifacts
    test_dir: Path  # ... and for tests/fixtures/artifacts
    xdg_cache: Path  # where Hardhat would have put a downloaded compiler
    compile_output: str


def _run(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}"
    return out


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Fresh:
    assert HARDHAT.exists(), "node_modules is missing: run `npm ci` first"
    tmp = tmp_path_factory.mktemp("contracts-build")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARDHAT_")}
    env.update(
        CONTRACTS_ARTIFACTS_DIR=str(tmp / "hh-artifacts"),
        CONTRACTS_CACHE_DIR=str(tmp / "hh-cache"),
        XDG_CACHE_HOME=str(tmp / "xdg-cache"),
        HARDHAT_DISABLE_TELEMETRY_PROMPT="true",
    )
    compiled = _run([str(HARDHAT), "compile"], env)
    _run(
        [
            "node",
            "scripts/export_artifacts.js",
            "--no-compile",
            "--out",
            str(tmp / "package"),
            "--test-out",
            str(tmp / "tests"),
        ],
        env,
    )
    return Fresh(tmp / "hh-artifacts", tmp / "package", tmp / "tests", tmp / "xdg-cache", compiled)


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_compiled_offline_from_scratch(fresh: Fresh) -> None:
    assert "Compiled" in fresh.compile_output and "Solidity file" in fresh.compile_output
    assert "Downloading" not in fresh.compile_output
    # Hardhat keeps downloaded compilers under $XDG_CACHE_HOME/hardhat-nodejs: none appeared
    downloaded = list(fresh.xdg_cache.glob("**/compilers*"))
    assert downloaded == [], downloaded


def test_compiler_settings(fresh: Fresh) -> None:
    (build_info,) = (fresh.hardhat_dir / "build-info").glob("*.json")
    info = _json(build_info)
    assert info["solcVersion"] == "0.8.26"
    assert info["solcLongVersion"].startswith("0.8.26+commit.")
    settings = info["input"]["settings"]
    assert settings["evmVersion"] == "cancun"
    assert settings["optimizer"] == {"enabled": True, "runs": 200}
    assert settings["metadata"]["bytecodeHash"] == "none"


@pytest.mark.parametrize("name", sorted(OURS))
def test_committed_artifact_equals_fresh_compile(fresh: Fresh, name: str) -> None:
    source = OURS[name]
    hh = _json(fresh.hardhat_dir / source / f"{name}.json")
    committed = _json((TEST_DIR if name in TEST_ONLY else PACKAGE_DIR) / f"{name}.json")
    assert committed["source"] == source
    assert committed["abi"] == hh["abi"]
    assert committed["bytecode"] == hh["bytecode"]
    assert committed["deployedBytecode"] == hh["deployedBytecode"]


def test_export_is_byte_identical(fresh: Fresh) -> None:
    for committed_dir, fresh_dir in ((PACKAGE_DIR, fresh.package_dir), (TEST_DIR, fresh.test_dir)):
        committed = sorted(p.name for p in committed_dir.glob("*.json"))
        assert committed == sorted(p.name for p in fresh_dir.glob("*.json"))
        for name in committed:
            assert (committed_dir / name).read_bytes() == (fresh_dir / name).read_bytes(), (
                f"{committed_dir / name} is stale: run `node scripts/export_artifacts.js`"
            )


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_canonical_artifacts_are_the_npm_builds(name: str) -> None:
    package, inner, folder = CANONICAL[name]
    package_dir = ROOT / "node_modules" / package
    version = _json(package_dir / "package.json")["version"]
    original = _json(package_dir / inner)
    committed = _json(folder / f"{name}.json")
    assert committed["source"] == f"npm:{package}@{version}/{inner}"
    assert committed["abi"] == original["abi"]
    assert committed["bytecode"] == original["bytecode"]
    assert committed["deployedBytecode"] == original["deployedBytecode"]


def test_pinned_canonical_versions() -> None:
    assert "ethr-did-registry@1.3.0/" in _json(PACKAGE_DIR / "EthereumDIDRegistry.json")["source"]
    assert "@safe-global/safe-contracts@1.4.1/" in _json(TEST_DIR / "Safe.json")["source"]


def test_load_artifact() -> None:
    assert sorted(ARTIFACT_NAMES) == sorted(p.stem for p in PACKAGE_DIR.glob("*.json"))
    for name in ARTIFACT_NAMES:
        art = load_artifact(name)
        assert art.name == name
        assert art.bytecode.startswith("0x") and len(art.bytecode) > 2
        assert art.deployed_bytecode.startswith("0x") and len(art.deployed_bytecode) > 2
        kinds = {item.get("type") for item in art.abi}
        assert kinds & {"function", "constructor"}, kinds
    assert load_artifact("RevocationRegistry") is load_artifact("RevocationRegistry")  # cached
    for bad in ("Safe", "../contracts", "revocationregistry", ""):
        with pytest.raises(KeyError):
            load_artifact(bad)
