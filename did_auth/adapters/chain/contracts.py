"""Compiled contract artifacts shipped with the package (ABI + bytecode, no Node needed).

The JSON files in ``did_auth/adapters/chain/artifacts/`` are written by
``scripts/export_artifacts.js`` from a Hardhat compile of ``contracts/`` (and, for
``EthereumDIDRegistry``, copied from the ``ethr-did-registry`` npm package's own build);
``tests/contracts/test_artifacts.py`` checks that they match a fresh compile.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["ARTIFACT_NAMES", "Artifact", "load_artifact"]

#: Every artifact the package ships.
ARTIFACT_NAMES: tuple[str, ...] = (
    "EthereumDIDRegistry",
    "RevocationRegistry",
    "TestERC1271Wallet",
    "TestWalletFactory",
    "UniversalSigValidator",
    "ValidateSigOffchain",
)

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract. Shared between callers (cached): do not mutate ``abi``."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # creation code, 0x-prefixed hex
    deployed_bytecode: str  # runtime code, 0x-prefixed hex
    source: str  # contracts/<file>.sol, or npm:<package>@<version>/<path> for canonical builds


@cache
def load_artifact(name: str) -> Artifact:
    """Load ``artifacts/<name>.json``; raises ``KeyError`` for a name the package doesn't ship."""
    if not _NAME.fullmatch(name) or name not in ARTIFACT_NAMES:
        raise KeyError(f"unknown contract artifact {name!r}; known: {', '.join(ARTIFACT_NAMES)}")
    path = resources.files("did_auth.adapters.chain").joinpath("artifacts", f"{name}.json")
    text = path.read_text("utf-8")
    data = json.loads(text)
    abi, bytecode, deployed = data["abi"], data["bytecode"], data["deployedBytecode"]
    if not isinstance(abi, list) or not _HEX.fullmatch(bytecode) or not _HEX.fullmatch(deployed):
        raise ValueError(f"artifact {name!r} is malformed")
    return Artifact(
        name=str(data["contractName"]),
        abi=abi,
        bytecode=bytecode,
        deployed_bytecode=deployed,
        source=str(data["source"]),
    )
