"""The WebAuthn Level 2 ceremonies' cryptography, through the `webauthn` package (py_webauthn):
option documents, parsing of what the browser returns, attestation and assertion checks.

Every library call of the passkey flow is here, and every library exception becomes one of
did-auth's errors (`InvalidRequest` for what cannot be parsed, `InvalidGrant` for what does
not verify), so that `did_auth.core.flows.passkeys` only decides. Pure: no store, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    ClientDataType,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from did_auth.core.errors import InvalidGrant, InvalidRequest

__all__ = [
    "Asserted",
    "Registered",
    "RelyingParty",
    "b64url",
    "check_assertion",
    "check_registration",
    "creation_options",
    "from_b64url",
    "parse_assertion",
    "parse_registration",
    "request_options",
]

_Credential = TypeVar("_Credential", RegistrationCredential, AuthenticationCredential)

# COSE algorithms accepted for new credentials (WebAuthn L2 §5.4 pubKeyCredParams, in the
# RP's order of preference): ES256 (-7), EdDSA (-8), RS256 (-257).
_ALGS: Final = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
_MAX_FIELD_CHARS: Final = 16 * 1024
_TRANSPORTS: Final = frozenset(t.value for t in AuthenticatorTransport)


@dataclass(frozen=True)
class RelyingParty:
    rp_id: str
    rp_name: str
    origins: tuple[str, ...]
    timeout_ms: int


@dataclass(frozen=True)
class Registered:
    credential_id: str  # base64url
    public_key: str  # base64url of the COSE key
    sign_count: int
    backup_eligible: bool  # BE: a synced (multi-device) passkey
    backed_up: bool  # BS
    aaguid: str
    fmt: str


@dataclass(frozen=True)
class Asserted:
    sign_count: int
    backup_eligible: bool
    backed_up: bool


def b64url(raw: bytes) -> str:
    return bytes_to_base64url(raw)


def from_b64url(value: str) -> bytes:
    return base64url_to_bytes(value)


def _descriptors(credentials: Sequence[Mapping[str, Any]]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(str(c["id"])),
            transports=[AuthenticatorTransport(t) for t in c.get("transports") or ()
                        if t in _TRANSPORTS] or None,
        )
        for c in credentials
    ]


def creation_options(
    rp: RelyingParty,
    *,
    user_id: bytes,
    user_name: str,
    display_name: str,
    challenge: bytes,
    exclude: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptions (JSON, base64url) for `navigator.credentials.create`:
    user verification required, a discoverable credential preferred, no attestation asked
    (the factor is the key, not the device model), existing credentials excluded."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.rp_name,
        user_id=user_id,
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=rp.timeout_ms,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(exclude),
        supported_pub_key_algs=_ALGS,
    )
    out: dict[str, Any] = orjson.loads(options_to_json(options))
    return out


def request_options(
    rp: RelyingParty, *, challenge: bytes, allow: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions (JSON) for `navigator.credentials.get`: only the
    account's credentials, user verification required."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        timeout=rp.timeout_ms,
        allow_credentials=_descriptors(allow),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    out: dict[str, Any] = orjson.loads(options_to_json(options))
    return out


def _check_size(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRequest(f"{name} must be the PublicKeyCredential as a JSON object")
    response = value.get("response")
    if not isinstance(response, Mapping):
        raise InvalidRequest(f"{name}.response must be an object")
    for field in (value.get("id"), value.get("rawId"), *response.values()):
        if isinstance(field, str) and len(field) > _MAX_FIELD_CHARS:
            raise InvalidRequest(f"{name} has a member over {_MAX_FIELD_CHARS} characters")
    return value


def _challenge_of(client_data_json: bytes, kind: ClientDataType) -> bytes:
    try:
        client = parse_client_data_json(client_data_json)
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise InvalidRequest("clientDataJSON is not valid", reason="passkey_malformed") from exc
    if client.type != kind:
        # WebAuthn L2 §7.1 step 7 / §7.2 step 11: "Verify that the value of C.type is
        # webauthn.create" (registration) / "webauthn.get" (assertion).
        raise InvalidGrant(f"clientDataJSON.type is not {kind.value}", reason="passkey_invalid")
    return client.challenge


def _parse_credential(
    value: object,
    member: str,
    parse: Callable[[dict[str, Any]], _Credential],
    kind: ClientDataType,
) -> tuple[_Credential, bytes]:
    """The credential in the request's `member`, parsed by `parse`, and the challenge of its
    client data (whose type must be `kind`)."""
    data = _check_size(value, member)
    try:
        credential = parse(dict(data))
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise InvalidRequest(f"{member} is not a valid PublicKeyCredential",
                             reason="passkey_malformed") from exc
    return credential, _challenge_of(credential.response.client_data_json, kind)


def parse_registration(value: object) -> tuple[RegistrationCredential, bytes]:
    """The credential `navigator.credentials.create` returned, and its client data's
    challenge (to find the outstanding challenge it answers)."""
    return _parse_credential(value, "credential", parse_registration_credential_json,
                             ClientDataType.WEBAUTHN_CREATE)


def parse_assertion(value: object) -> tuple[AuthenticationCredential, bytes]:
    """The credential `navigator.credentials.get` returned, and its client data's challenge."""
    return _parse_credential(value, "webauthn", parse_authentication_credential_json,
                             ClientDataType.WEBAUTHN_GET)


def check_registration(
    rp: RelyingParty, credential: RegistrationCredential, challenge: bytes
) -> Registered:
    """WebAuthn L2 §7.1 "Registering a New Credential", by py_webauthn: steps 7-9 (type,
    challenge, origin), 13 (rpIdHash = SHA-256 of the RP ID), 14-15 (UP and UV: "If user
    verification is required for this registration, verify that the User Verified bit of
    the flags in authData is set"), 16 (alg among pubKeyCredParams) and 19 (attestation
    statement of its format; attestation "none" is what we ask for)."""
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
            require_user_presence=True,
            require_user_verification=True,
            supported_pub_key_algs=_ALGS,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise InvalidGrant(f"the passkey registration does not verify: {_short(exc)}",
                           reason="passkey_invalid") from exc
    return Registered(
        credential_id=b64url(verified.credential_id),
        public_key=b64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
        aaguid=verified.aaguid,
        fmt=str(getattr(verified.fmt, "value", verified.fmt)),
    )


def check_assertion(
    rp: RelyingParty,
    credential: AuthenticationCredential,
    challenge: bytes,
    public_key: str,
) -> Asserted:
    """WebAuthn L2 §7.2 "Verifying an Authentication Assertion", by py_webauthn: steps 11-13
    (type, challenge, origin), 15 (rpIdHash), 16-17 (UP, and UV: "If user verification is
    required for this assertion, verify that the User Verified bit of the flags in authData
    is set") and 20 (the signature over authenticatorData || SHA-256(clientDataJSON) with
    the stored public key). The sign counter (step 21) is the caller's decision: the library
    is given 0 as the stored count, which disables its own comparison."""
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
            credential_public_key=base64url_to_bytes(public_key),
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise InvalidGrant(f"the passkey assertion does not verify: {_short(exc)}",
                           reason="passkey_invalid") from exc
    return Asserted(
        sign_count=verified.new_sign_count,
        backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
    )


def _short(exc: Exception) -> str:
    text = str(exc).split("\n", 1)[0]
    return text[:200] if text else type(exc).__name__
