"""Decentralized identifiers for login: did:ethr (ERC-1056 registry), did:pkh, did:key.

- `parse_did`, `DidResolver` (`did_auth.core.did.resolver`): W3C DID Core §3.1 syntax and §7.1
  resolution, dispatched by method; did:ethr reads its chain through a `ChainReader`
  (`did_auth.core.did.chain_reader`; the adapter
  `did_auth.adapters.chain.did_reader.Web3ChainReader` wraps any `web3.AsyncWeb3`).
- `EthrResolver` (`did_auth.core.did.ethr`): the did:ethr method specification, building the
  same document as the reference resolver `ethr-did-resolver`.
- `parse_proof`, `verify_proof`, `match_signer`, `sign_proof` (`did_auth.core.did.jwt_proof`):
  did-jwt style proofs (ES256K, ES256K-R, EdDSA) checked against `authentication` keys.
- `DidDocument`, `VerificationMethod`, `Resolution` (`did_auth.core.did.document`).

Importing this package does not import web3.
"""

from did_auth.core.did.chain_reader import ChainReader
from did_auth.core.did.document import DidDocument, Resolution, Service, VerificationMethod
from did_auth.core.did.ethr import EthrDid, EthrResolver, parse_did_ethr
from did_auth.core.did.jwt_proof import (
    DidProof,
    check_claims,
    match_signer,
    parse_proof,
    sign_proof,
    verify_proof,
)
from did_auth.core.did.key import KeyDid, did_key, parse_did_key
from did_auth.core.did.pkh import PkhDid, parse_did_pkh, pkh_did
from did_auth.core.did.resolver import DidResolver, ParsedDid, parse_did

__all__ = [
    "ChainReader",
    "DidDocument",
    "DidProof",
    "DidResolver",
    "EthrDid",
    "EthrResolver",
    "KeyDid",
    "ParsedDid",
    "PkhDid",
    "Resolution",
    "Service",
    "VerificationMethod",
    "check_claims",
    "did_key",
    "match_signer",
    "parse_did",
    "parse_did_ethr",
    "parse_did_key",
    "parse_did_pkh",
    "parse_proof",
    "pkh_did",
    "sign_proof",
    "verify_proof",
]
