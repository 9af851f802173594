"""RFC 9396 Rich Authorization Requests: did-auth's one `authorization_details` type,
`withdrawal`, read strictly from a `POST /transactions/authorize` body.

RFC 9396 §5: "The AS MUST refuse to process any unknown authorization details type or
authorization details not conforming to the respective type definition. The AS MUST abort
processing and respond with an error invalid_authorization_details to the client if any of
the following are true of the objects in the authorization_details structure: contains an
unknown authorization details type value, is an object of known type but containing
unknown fields, contains fields of the wrong type for the authorization details type,
contains fields with invalid values for the authorization details type, or is missing
required fields for the authorization details type."

The `withdrawal` type (the interface's contract): exactly the string fields `audience`,
`asset`, `amount`, `destination`, `network` besides `type`. Its values are what the wallet
shows the user and what the API compares byte for byte, so they are kept narrow:

* every value is 1 to N characters of visible ASCII (0x21-0x7E): no spaces, no control,
  bidirectional or look-alike Unicode characters that could make a wallet prompt read
  differently from what is signed;
* `amount` is a positive decimal string: digits, optionally a point and digits, no sign,
  no exponent, no leading zero before other digits (`0.5`, `12`, `1.50`; not `.5`, `1e3`,
  `+1`, `01`, `0`, `0.00`). It stays a string: `1.5` and `1.50` are different approvals;
* one entry, exactly: a token approves one withdrawal.

Everything else in the body is `invalid_request` (RFC 6749 §5.2): unknown members, a
missing or mistyped `nonce`, `expires_at`, `signature`. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from did_auth.core.errors import InvalidAuthorizationDetails, InvalidGrant, InvalidRequest
from did_auth.core.signatures.eip191 import MAX_SIGNATURE_BYTES, parse_hex_signature

__all__ = [
    "WITHDRAWAL",
    "WithdrawalApproval",
    "WithdrawalDetails",
    "parse_withdrawal_approval",
]

#: The `type` value (RFC 9396 §2) of a withdrawal, and the only one did-auth supports.
WITHDRAWAL: Final = "withdrawal"
# Field -> maximum length.
_FIELDS: Final = {
    "audience": 256,
    "asset": 32,
    "amount": 78,
    "destination": 128,
    "network": 64,
}
_VISIBLE: Final = re.compile(r"[\x21-\x7e]+")
# A positive decimal: no sign, no exponent, no leading zero before other digits.
_DECIMAL: Final = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_BODY: Final = frozenset(
    {"authorization_details", "nonce", "expires_at", "signature", "otp", "webauthn"}
)
_MAX_NONCE: Final = 64
_MAX_SIGNATURE_HEX: Final = 2 + 2 * MAX_SIGNATURE_BYTES


@dataclass(frozen=True, slots=True)
class WithdrawalDetails:
    """One `withdrawal` authorization detail, exactly as the client sent it."""

    audience: str
    asset: str
    amount: str
    destination: str
    network: str

    def as_json(self) -> dict[str, str]:
        """The RFC 9396 object (`type` first), as it goes into the token and the response."""
        return {
            "type": WITHDRAWAL,
            "audience": self.audience,
            "asset": self.asset,
            "amount": self.amount,
            "destination": self.destination,
            "network": self.network,
        }


@dataclass(frozen=True, slots=True)
class WithdrawalApproval:
    """A parsed `POST /transactions/authorize` body (the second factor stays in `body`)."""

    details: WithdrawalDetails
    nonce: str
    expires_at: int
    signature: bytes
    body: Mapping[str, Any]


def _details(value: object) -> WithdrawalDetails:
    if not isinstance(value, list) or len(value) != 1:
        raise InvalidAuthorizationDetails(
            "authorization_details must be an array of exactly one object",
            reason="details_shape",
        )
    entry = value[0]
    if not isinstance(entry, dict):
        raise InvalidAuthorizationDetails(
            "authorization_details[0] must be an object", reason="details_shape"
        )
    if entry.get("type") != WITHDRAWAL:
        raise InvalidAuthorizationDetails(
            f'authorization_details[0].type must be "{WITHDRAWAL}"', reason="details_type"
        )
    unknown = sorted(set(entry) - set(_FIELDS) - {"type"})
    if unknown:
        raise InvalidAuthorizationDetails(
            f"unknown withdrawal field(s): {', '.join(unknown)[:200]}", reason="details_field"
        )
    values: dict[str, str] = {}
    for name, limit in _FIELDS.items():
        v = entry.get(name)
        if not isinstance(v, str):
            raise InvalidAuthorizationDetails(
                f"withdrawal field {name} is required and must be a string",
                reason="details_field",
            )
        if len(v) > limit or not _VISIBLE.fullmatch(v):
            raise InvalidAuthorizationDetails(
                f"withdrawal field {name} must be 1 to {limit} visible ASCII characters",
                reason="details_value",
            )
        values[name] = v
    amount = values["amount"]
    if not _DECIMAL.fullmatch(amount) or Decimal(amount) == 0:
        raise InvalidAuthorizationDetails(
            "withdrawal amount must be a positive decimal string (digits and an optional "
            "fraction; no sign, exponent or leading zeros)",
            reason="details_amount",
        )
    return WithdrawalDetails(**values)


def parse_withdrawal_approval(body: object) -> WithdrawalApproval:
    """The body of `POST /transactions/authorize`, checked strictly (see the module text)."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(body) - _BODY)
    if unknown:
        raise InvalidRequest(f"unknown member(s): {', '.join(unknown)[:200]}")
    if "authorization_details" not in body:
        raise InvalidRequest("authorization_details is required")
    details = _details(body["authorization_details"])
    nonce = body.get("nonce")
    if not isinstance(nonce, str) or not nonce or len(nonce) > _MAX_NONCE:
        raise InvalidRequest("nonce is required: the string /transactions/nonce returned")
    expires_at = body.get("expires_at")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise InvalidRequest("expires_at is required: Unix time in seconds (an integer)")
    signature = body.get("signature")
    if not isinstance(signature, str) or len(signature) > _MAX_SIGNATURE_HEX:
        raise InvalidRequest("signature is required: the EIP-712 signature, 0x-prefixed hex")
    try:
        raw = parse_hex_signature(signature)
    except InvalidGrant as exc:  # from the parser: here it is a malformed body
        raise InvalidRequest(exc.description, reason="malformed_signature") from None
    return WithdrawalApproval(details, nonce, expires_at, raw, body)
