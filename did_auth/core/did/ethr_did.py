"""did:ethr identifiers (the did:ethr method specification, §"Method Specific Identifier").

    ethr-did = "did:ethr:" [ ethr-network ":" ] ( ethereum-address / public-key-hex )
    ethr-network = network name ("mainnet", "sepolia", ...) / "0x" hex chain id
    ethereum-address = "0x" 40HEXDIG        public-key-hex = "0x" 66HEXDIG

No network means mainnet. For a `public-key-hex` identifier "it MUST be represented in
compressed form"; the identity address is derived from it. Pure: coincurve and the
standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from coincurve import PublicKey

from did_auth.core.errors import InvalidRequest
from did_auth.core.signatures.eip191 import is_checksum_address, keccak256, to_checksum_address

__all__ = ["NETWORKS", "ZERO_ADDRESS", "EthrDid", "parse_did_ethr"]

#: Network names the reference resolver knows (its `deployments` table), plus `goerli`,
#: which the spec's ABNF names. Any other chain is written as its hex chain id.
NETWORKS: Final[dict[str, int]] = {
    "mainnet": 1,
    "goerli": 5,
    "sepolia": 11155111,
    "holesky": 17000,
    "gno": 100,
    "ewc": 246,
    "volta": 73799,
    "artis:tau1": 246785,
    "artis:sigma1": 246529,
    "polygon": 137,
    "polygon:test": 80001,
    "aurora": 1313161554,
    "linea:goerli": 59140,
}

ZERO_ADDRESS: Final = "0x" + "00" * 20
_ID_RE: Final = re.compile(r"0x(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{66})")
_HEX_CHAIN_RE: Final = re.compile(r"0x[1-9a-f][0-9a-f]{0,15}")
_MAX_DID_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class EthrDid:
    did: str
    network: str  # as written; "" when the DID names none (mainnet)
    chain_id: int
    address: str  # the identity, EIP-55
    public_key: str | None  # the identifier when it is a public key, exactly as written


def _checked_address(text: str) -> str:
    """ethers `getAddress` semantics: a mixed-case address must be a valid EIP-55 checksum;
    all lower or all upper case is accepted as is."""
    body = text[2:]
    mixed = body != body.lower() and body != body.upper()
    if mixed and not is_checksum_address(text):
        raise InvalidRequest("did:ethr address has a wrong EIP-55 checksum", reason="did_syntax")
    return to_checksum_address("0x" + body.lower())


def _address_of_public_key(public_key: bytes) -> str:
    return to_checksum_address(keccak256(PublicKey(public_key).format(compressed=False)[1:])[-20:])


def parse_did_ethr(did: str) -> EthrDid:
    """Parse a bare did:ethr (no path, query or fragment). Raises InvalidRequest."""
    if not did.startswith("did:ethr:") or len(did) > _MAX_DID_CHARS:
        raise InvalidRequest("not a did:ethr", reason="did_syntax")
    parts = did[len("did:ethr:") :].split(":")
    ident, network = parts[-1], ":".join(parts[:-1])
    if _ID_RE.fullmatch(ident) is None:
        raise InvalidRequest(
            "did:ethr identifier must be 0x + 40 hex digits (address) or 0x + 66 (public key)",
            reason="did_syntax",
        )
    if network == "":
        chain_id = NETWORKS["mainnet"]
    elif network in NETWORKS:
        chain_id = NETWORKS[network]
    elif _HEX_CHAIN_RE.fullmatch(network):
        # The reference resolver looks networks up by `0x${chainId.toString(16)}`: lower
        # case, no leading zeros. Other spellings would be aliases it cannot resolve.
        chain_id = int(network, 16)
    else:
        raise InvalidRequest(f"unknown did:ethr network {network!r}", reason="did_network")
    public_key: str | None = None
    if len(ident) == 68:
        # Spec: a public-key-hex identifier "MUST be represented in compressed form".
        raw = bytes.fromhex(ident[2:])
        if raw[0] not in (2, 3):
            raise InvalidRequest("did:ethr public key must be compressed", reason="did_syntax")
        try:
            address = _address_of_public_key(raw)
        except ValueError:
            raise InvalidRequest(
                "did:ethr public key is not a secp256k1 point", reason="did_syntax"
            ) from None
        public_key = ident
    else:
        address = _checked_address(ident)
    return EthrDid(
        did=did, network=network, chain_id=chain_id, address=address, public_key=public_key
    )
