"""A typed DID document (W3C DID Core 1.0 §5) as the did:ethr, did:pkh and did:key resolvers
build it, plus what a resolution learnt besides the document.

Only what authentication needs is modelled: verification methods with the key encodings the
three methods produce (`blockchainAccountId` CAIP-10, `publicKeyHex`, `publicKeyBase64`,
`publicKeyBase58`, `publicKeyPem`, `publicKeyMultibase`), the verification relationships, and
services. `to_json()` gives the plain JSON form (`application/did+json`, no `@context`) so that
documents can be compared field by field with the reference JavaScript resolvers.

DID Core §5.3.1 (authentication): "The authentication verification relationship is used to
specify how the DID subject is expected to be authenticated". Only methods referenced from
`authentication` may log in; `assertionMethod` keys (e.g. did:ethr `veriKey` delegates) may not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DidDocument", "Resolution", "Service", "VerificationMethod"]

# JSON member names of the key material fields, in the order they are emitted.
_KEY_FIELDS: tuple[tuple[str, str], ...] = (
    ("blockchain_account_id", "blockchainAccountId"),
    ("ethereum_address", "ethereumAddress"),
    ("public_key_hex", "publicKeyHex"),
    ("public_key_base64", "publicKeyBase64"),
    ("public_key_base58", "publicKeyBase58"),
    ("public_key_pem", "publicKeyPem"),
    ("public_key_multibase", "publicKeyMultibase"),
    ("value", "value"),
)


@dataclass(frozen=True, slots=True)
class VerificationMethod:
    """DID Core §5.2: `id`, `type`, `controller` and one form of key material.

    `valid_to` and `delegate` are not part of the JSON document: `valid_to` is the registry's
    `validTo` (seconds) for did:ethr delegates and attribute keys, `delegate` is True for any
    key other than the DID's controller (a bot key: it gets the client's `delegate_scopes`).
    """

    id: str
    type: str
    controller: str
    blockchain_account_id: str | None = None
    ethereum_address: str | None = None
    public_key_hex: str | None = None
    public_key_base64: str | None = None
    public_key_base58: str | None = None
    public_key_pem: str | None = None
    public_key_multibase: str | None = None
    value: str | None = None  # did:ethr attribute with an encoding the spec does not name
    valid_to: int | None = field(default=None, compare=False)
    delegate: bool = field(default=False, compare=False)

    @property
    def key_id(self) -> str:
        """A stable name of the key itself (not of its place in one document): the lower-case
        CAIP-10 account for address-based methods, else the method id. A session remembers
        it (`auth_key`) so that a revoked key's sessions can be found and re-checked."""
        if self.blockchain_account_id is not None:
            return self.blockchain_account_id.lower()
        if self.ethereum_address is not None:
            return self.ethereum_address.lower()
        return self.id

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type, "controller": self.controller}
        for attr, name in _KEY_FIELDS:
            v = getattr(self, attr)
            if v is not None:
                out[name] = v
        return out


@dataclass(frozen=True, slots=True)
class Service:
    """DID Core §5.4: `id`, `type`, `serviceEndpoint` (a string, a map or a list)."""

    id: str
    type: str
    service_endpoint: Any

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "serviceEndpoint": self.service_endpoint}


@dataclass(frozen=True, slots=True)
class DidDocument:
    """DID Core §5: relationships hold method ids (references), never embedded methods.

    A relationship that is None is absent from the JSON form; an empty tuple is emitted as
    `[]` (the did:ethr resolver always emits `verificationMethod`, `authentication` and
    `assertionMethod`, even when a deactivated DID leaves them empty).
    """

    id: str
    verification_method: tuple[VerificationMethod, ...] = ()
    authentication: tuple[str, ...] = ()
    assertion_method: tuple[str, ...] = ()
    key_agreement: tuple[str, ...] | None = None
    capability_invocation: tuple[str, ...] | None = None
    capability_delegation: tuple[str, ...] | None = None
    service: tuple[Service, ...] | None = None

    def method(self, method_id: str) -> VerificationMethod | None:
        for m in self.verification_method:
            if m.id == method_id:
                return m
        return None

    def _referenced(self, refs: tuple[str, ...]) -> Iterator[VerificationMethod]:
        seen: set[str] = set()
        for ref in refs:
            m = self.method(ref)
            if m is not None and m.id not in seen:
                seen.add(m.id)
                yield m

    def authentication_methods(self) -> tuple[VerificationMethod, ...]:
        """The methods `authentication` references (the only ones that may log in)."""
        return tuple(self._referenced(self.authentication))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "verificationMethod": [m.to_json() for m in self.verification_method],
            "authentication": list(self.authentication),
            "assertionMethod": list(self.assertion_method),
        }
        optional: Mapping[str, tuple[str, ...] | None] = {
            "keyAgreement": self.key_agreement,
            "capabilityInvocation": self.capability_invocation,
            "capabilityDelegation": self.capability_delegation,
        }
        for name, refs in optional.items():
            if refs is not None:
                out[name] = list(refs)
        if self.service is not None:
            out["service"] = [s.to_json() for s in self.service]
        return out


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of resolving a DID (DID Resolution §"DID resolution result", trimmed).

    - `deactivated`: DID document metadata `deactivated` (did:ethr: owner set to 0x0).
    - `block`, `timestamp`: the block the registry was read at, and the time validity was
      judged at (did:ethr only).
    - `version_id`: the block of the DID's latest registry change (0 when never changed).
    - `history_keys`: every key the DID's registry history ever named (former owners,
      revoked or expired delegates and attribute keys, assertion-only keys): a proof signed
      by one of these is refused as `access_denied` (a known key that may not log in now)
      rather than `invalid_grant` (a signature by no key of this DID at all).
    """

    document: DidDocument
    deactivated: bool = False
    block: int | None = None
    timestamp: int | None = None
    version_id: int | None = None
    history_keys: tuple[VerificationMethod, ...] = ()
