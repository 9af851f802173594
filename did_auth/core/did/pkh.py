"""did:pkh (W3C CCG "did:pkh Method Specification"): a DID that is a CAIP-10 account id.

    did:pkh:<CAIP-10 account_id>    e.g. did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a

CAIP-10: `account_id = chain_id + ":" + account_address`; CAIP-2: `chain_id = namespace + ":"
+ reference`. Only the `eip155` namespace (EVM chains; reference = the decimal chain id) is
supported. The document has one verification method, `#blockchainAccountId`, of type
`EcdsaSecp256k1RecoveryMethod2020`, referenced from `authentication` and `assertionMethod`:
a proof is accepted when the secp256k1 key recovered from its signature has this address.
Resolution needs no network. did:pkh is also the `sub` of SIWE logins (`pkh_did`).

The address may be all lower case or EIP-55 mixed case; mixed case with a wrong checksum is
refused (EIP-55: a mixed-case address is a checksum and must verify).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from did_auth.core.did.document import DidDocument, Resolution, VerificationMethod
from did_auth.core.errors import InvalidRequest
from did_auth.core.signatures.eip191 import is_checksum_address, to_checksum_address

__all__ = ["PkhDid", "parse_did_pkh", "pkh_did", "resolve_did_pkh"]

# CAIP-2 eip155 reference: a decimal chain id, no leading zero; CAIP-2 caps it at 32 chars.
_PKH_RE: Final = re.compile(r"did:pkh:eip155:([1-9][0-9]{0,31}):(0x[0-9a-fA-F]{40})")


@dataclass(frozen=True, slots=True)
class PkhDid:
    did: str
    chain_id: int
    address: str  # EIP-55
    account_id: str  # CAIP-10, exactly as written in the DID


def pkh_did(chain_id: int, address: str) -> str:
    """did:pkh:eip155:<chainId>:<EIP-55 address> (the form SIWE logins use as `sub`)."""
    return f"did:pkh:eip155:{int(chain_id)}:{to_checksum_address(address)}"


def parse_did_pkh(did: str) -> PkhDid:
    m = _PKH_RE.fullmatch(did)
    if m is None:
        raise InvalidRequest(
            "not a supported did:pkh (did:pkh:eip155:<chain id>:<0x address>)",
            reason="did_syntax",
        )
    chain, address = m.group(1), m.group(2)
    body = address[2:]
    if body != body.lower() and not is_checksum_address(address):
        raise InvalidRequest("did:pkh address has a wrong EIP-55 checksum", reason="did_syntax")
    return PkhDid(
        did=did,
        chain_id=int(chain),
        address=to_checksum_address(address),
        account_id=f"eip155:{chain}:{address}",
    )


def resolve_did_pkh(parsed: PkhDid) -> Resolution:
    vm_id = f"{parsed.did}#blockchainAccountId"
    method = VerificationMethod(
        id=vm_id,
        type="EcdsaSecp256k1RecoveryMethod2020",
        controller=parsed.did,
        blockchain_account_id=parsed.account_id,
    )
    doc = DidDocument(
        id=parsed.did,
        verification_method=(method,),
        authentication=(vm_id,),
        assertion_method=(vm_id,),
    )
    return Resolution(document=doc)
