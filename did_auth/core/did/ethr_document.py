"""The did:ethr DID document built from an identity's ERC-1056 history, exactly as the
reference resolver (npm `ethr-did-resolver`, `resolver.ts`) builds it.

"Only events with a `validTo` in seconds greater or equal to the current time should be
included in the DID document." `veriKey` delegates become `assertionMethod` keys; `sigAuth`
delegates are also `authentication` keys. `did/pub/<alg>/<purpose>/<encoding>` attributes
add keys (`sigAuth` → authentication, `enc` → keyAgreement, else assertionMethod);
`did/svc/<type>` adds a service. A `DIDOwnerChanged` to the zero address deactivates the
DID for good.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from did_auth.core.did.document import DidDocument, Service, VerificationMethod
from did_auth.core.did.ethr_did import ZERO_ADDRESS
from did_auth.core.did.ethr_events import AttributeChanged, DelegateChanged, Event, OwnerChanged
from did_auth.core.did.key import b58encode

__all__ = ["RECOVERY_2020", "SECP256K1_2019", "EthrState", "build_document"]

# Verification method types (reference `verificationMethodTypes`).
RECOVERY_2020: Final = "EcdsaSecp256k1RecoveryMethod2020"
SECP256K1_2019: Final = "EcdsaSecp256k1VerificationKey2019"
# did/pub/<alg>/<purpose>: purpose short names and the legacy type names they expand to.
_LEGACY_ATTR_TYPES: Final = {
    "sigAuth": "SignatureAuthentication2018",
    "veriKey": "VerificationKey2018",
    "enc": "KeyAgreementKey2019",
}
_LEGACY_ALGO_MAP: Final = {
    "Secp256k1VerificationKey2018": SECP256K1_2019,
    "Ed25519SignatureAuthentication2018": "Ed25519VerificationKey2018",
    "Secp256k1SignatureAuthentication2018": SECP256K1_2019,
    "RSAVerificationKey2018": "RSAVerificationKey2018",
    "Ed25519VerificationKey2018": "Ed25519VerificationKey2018",
    "X25519KeyAgreementKey2019": "X25519KeyAgreementKey2019",
}
# JavaScript's \w (no `u` flag) is ASCII; fullmatch plays the part of ^...$.
_ATTR_RE: Final = re.compile(r"did/(pub|svc)/(\w+)(/(\w+))?(/(\w+))?", re.ASCII)


@dataclass(frozen=True, slots=True)
class EthrState:
    document: DidDocument
    deactivated: bool
    controller: str  # EIP-55; the zero address when deactivated
    version_id: int
    history_keys: tuple[VerificationMethod, ...]


def _account(chain_id: int, address: str) -> str:
    return f"eip155:{chain_id}:{address}"


def _attribute_key(
    did: str, vm_id: str, algorithm: str, purpose: str | None, encoding: str | None, value: bytes
) -> VerificationMethod:
    """A `did/pub/<algorithm>/<purpose>/<encoding>` attribute as a verification method."""
    legacy = f"{algorithm}{_LEGACY_ATTR_TYPES.get(purpose, purpose)}" if purpose else algorithm
    vm_type = _LEGACY_ALGO_MAP.get(legacy, algorithm)
    fields: dict[str, Any] = {}
    if encoding in (None, "hex"):
        fields["public_key_hex"] = value.hex()
    elif encoding == "base64":
        fields["public_key_base64"] = base64.b64encode(value).decode()
    elif encoding == "base58":
        fields["public_key_base58"] = b58encode(value)
    elif encoding == "pem":
        fields["public_key_pem"] = value.decode("utf-8")
    else:
        fields["value"] = value.hex()
    return VerificationMethod(id=vm_id, type=vm_type, controller=did, delegate=True, **fields)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # JSON.parse rejects NaN / Infinity


def _service_endpoint(value: bytes) -> Any:
    text = value.decode("utf-8")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except ValueError:
        return text


def build_document(
    did: str,
    address: str,
    controller_key: str | None,
    history: Sequence[Event],
    chain_id: int,
    now: int,
) -> EthrState:
    """The document for `history` (oldest first) with validity judged at `now` (seconds).

    Mirrors the reference resolver's `wrapDidDocument`, including its numbering
    (`#delegate-N` counts every delegate and `did/pub` event, `#service-N` every `did/svc`
    event) and ordering (a key re-added after its removal moves to the end). Raises
    ValueError for attribute values the reference cannot decode either (bad UTF-8).
    """
    controller = address
    deactivated = False
    delegate_count = 0
    service_count = 0
    version_id = 0
    auth: dict[tuple[str, str, str], str] = {}
    key_agreement: dict[tuple[str, str, str], str] = {}
    signing: dict[tuple[str, str, str], str] = {}
    pks: dict[tuple[str, str, str], VerificationMethod] = {}
    services: dict[tuple[str, str, str], Service] = {}
    known: list[VerificationMethod] = []

    def history_key(**fields: Any) -> None:
        known.append(
            VerificationMethod(
                id=f"{did}#history-{len(known) + 1}",
                type=fields.pop("type", RECOVERY_2020),
                controller=did,
                delegate=True,
                **fields,
            )
        )

    history_key(blockchain_account_id=_account(chain_id, address))
    if controller_key is not None:
        history_key(type=SECP256K1_2019, public_key_hex=controller_key[2:])

    for event in history:
        version_id = max(version_id, event.block)
        if isinstance(event, OwnerChanged):
            controller = event.owner
            if event.owner == ZERO_ADDRESS:
                deactivated = True
                break
            history_key(blockchain_account_id=_account(chain_id, event.owner))
            continue
        if isinstance(event, DelegateChanged):
            index = ("DIDDelegateChanged", event.delegate_type or "undefined", event.delegate)
            history_key(blockchain_account_id=_account(chain_id, event.delegate))
        else:
            index = ("DIDAttributeChanged", event.name, "0x" + event.value.hex())
        if event.valid_to and event.valid_to >= now:
            if isinstance(event, DelegateChanged):
                delegate_count += 1
                vm_id = f"{did}#delegate-{delegate_count}"
                if event.delegate_type in ("sigAuth", "veriKey"):
                    if event.delegate_type == "sigAuth":
                        auth[index] = vm_id
                    pks[index] = VerificationMethod(
                        id=vm_id,
                        type=RECOVERY_2020,
                        controller=did,
                        blockchain_account_id=_account(chain_id, event.delegate),
                        valid_to=event.valid_to,
                        delegate=True,
                    )
                    signing[index] = vm_id
                continue
            m = _ATTR_RE.fullmatch(event.name)
            if m is None:
                continue
            section, algorithm, purpose, encoding = m.group(1), m.group(2), m.group(4), m.group(6)
            if section == "pub":
                delegate_count += 1
                vm_id = f"{did}#delegate-{delegate_count}"
                pk = replace(
                    _attribute_key(did, vm_id, algorithm, purpose, encoding, event.value),
                    valid_to=event.valid_to,
                )
                pks[index] = pk
                if purpose == "sigAuth":
                    auth[index] = vm_id
                    signing[index] = vm_id
                elif purpose == "enc":
                    key_agreement[index] = vm_id
                else:
                    signing[index] = vm_id
                history_key(**_key_fields(pk))
            else:
                service_count += 1
                services[index] = Service(
                    id=f"{did}#service-{service_count}",
                    type=algorithm,
                    service_endpoint=_service_endpoint(event.value),
                )
        else:
            if isinstance(event, DelegateChanged) or event.name.startswith("did/pub/"):
                delegate_count += 1
                m = _ATTR_RE.fullmatch(event.name) if isinstance(event, AttributeChanged) else None
                if m is not None and isinstance(event, AttributeChanged):
                    try:
                        pk = _attribute_key(
                            did, "", m.group(2), m.group(4), m.group(6), event.value
                        )
                    except ValueError:  # a revoked key the reference never decodes
                        pass
                    else:
                        history_key(**_key_fields(pk))
            elif event.name.startswith("did/svc/"):
                service_count += 1
            auth.pop(index, None)
            signing.pop(index, None)
            pks.pop(index, None)
            services.pop(index, None)

    keys = tuple(known)
    if deactivated:
        return EthrState(
            document=DidDocument(id=did),
            deactivated=True,
            controller=ZERO_ADDRESS,
            version_id=version_id,
            history_keys=keys,
        )
    methods = [
        VerificationMethod(
            id=f"{did}#controller",
            type=RECOVERY_2020,
            controller=did,
            blockchain_account_id=_account(chain_id, controller),
        )
    ]
    authentication = [f"{did}#controller"]
    assertion = [f"{did}#controller"]
    if controller_key is not None and controller == address:
        methods.append(
            VerificationMethod(
                id=f"{did}#controllerKey",
                type=SECP256K1_2019,
                controller=did,
                public_key_hex=controller_key[2:],
            )
        )
        authentication.append(f"{did}#controllerKey")
        assertion.append(f"{did}#controllerKey")
    doc = DidDocument(
        id=did,
        verification_method=(*methods, *pks.values()),
        authentication=(*authentication, *auth.values()),
        assertion_method=(*assertion, *signing.values()),
        key_agreement=tuple(key_agreement.values()) or None,
        service=tuple(services.values()) or None,
    )
    return EthrState(
        document=doc,
        deactivated=False,
        controller=controller,
        version_id=version_id,
        history_keys=keys,
    )


def _key_fields(m: VerificationMethod) -> dict[str, Any]:
    names = (
        "blockchain_account_id",
        "ethereum_address",
        "public_key_hex",
        "public_key_base64",
        "public_key_base58",
        "public_key_pem",
        "public_key_multibase",
        "value",
    )
    out: dict[str, Any] = {n: getattr(m, n) for n in names if getattr(m, n) is not None}
    if m.type:
        out["type"] = m.type
    return out
