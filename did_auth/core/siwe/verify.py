"""EIP-4361 relying-party checks: EIP-191 EOA signature and validity times; no I/O, no clock.

The caller passes `now` (Unix seconds, e.g. from `did_auth.core.clock`) and a `skew` tolerance.
Every failure is `did_auth.core.errors.InvalidGrant` with a distinct `reason`:

    expired            now - skew >= expiration-time
    not_yet_valid      now + skew <  not-before
    issued_in_future   issued-at >  now + skew   (our policy; see `check_times`)
    signature_mismatch the signature recovers to another address
    domain_mismatch / nonce_mismatch / scheme_mismatch / uri_mismatch / chain_id_mismatch
    plus the reasons of `did_auth.core.signatures.eip191` for malformed signatures.

EIP-1271 / EIP-6492 contract-wallet signatures need chain state and live elsewhere.
"""

from __future__ import annotations

import hmac
import math

from did_auth.core.errors import InvalidGrant, InvalidRequest
from did_auth.core.signatures.eip191 import (
    parse_hex_signature,
    recover_personal,
    recover_personal_raw,
)
from did_auth.core.siwe.message import SiweMessage
from did_auth.core.siwe.parse import ADDRESS_RE

__all__ = ["check_times", "recover_address", "verify_eoa", "verify_message"]


def _signature_bytes(signature: str | bytes) -> bytes:
    if isinstance(signature, str):
        return parse_hex_signature(signature)
    if isinstance(signature, (bytes, bytearray, memoryview)):
        return bytes(signature)
    raise InvalidGrant("signature must be 0x-hex or bytes", reason="malformed_signature")


def _message_bytes(text: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidRequest("the SIWE message must be a string", reason="malformed_message")
    # EIP-191 signs the message bytes; a valid EIP-4361 text is ASCII, so UTF-8 is exact.
    return text.encode("utf-8")


def recover_address(text: str, signature: str | bytes) -> str:
    """EIP-191 personal_sign recovery of the EIP-55 address that signed `text`."""
    return recover_personal(_message_bytes(text), _signature_bytes(signature))


def verify_eoa(msg_text: str, signature: str | bytes, *, expected_address: str) -> None:
    """Check that `signature` is an EIP-191 signature of exactly `msg_text` by `expected_address`.

    The text is verified as given (never re-serialised). Address comparison is on the 20
    bytes, so the case of `expected_address` does not matter here (EIP-55 is enforced when
    the message is parsed).
    """
    if not isinstance(expected_address, str) or ADDRESS_RE.fullmatch(expected_address) is None:
        raise InvalidRequest("expected_address must be 0x followed by 40 hex digits")
    # ERC-4361: "For Externally Owned Accounts (EOAs), the verification method specified in
    # ERC-191 MUST be used."
    recovered = recover_personal_raw(_message_bytes(msg_text), _signature_bytes(signature))
    if recovered != bytes.fromhex(expected_address[2:]):
        raise InvalidGrant(
            "the signature was not made by the message's address", reason="signature_mismatch"
        )


def check_times(
    msg: SiweMessage,
    now: float,
    skew: float = 0.0,
    *,
    reject_future_issued_at: bool = True,
) -> None:
    """Enforce expiration-time, not-before and (by default) issued-at against `now`.

    `skew` (seconds, >= 0) is tolerated in the caller's favour on every bound, for clock
    drift between wallet and server. EIP-4361 gives no rule for an issued-at in the future;
    a message "generated" after `now + skew` cannot have come from an honest wallet talking
    to us now, so it is refused unless `reject_future_issued_at=False` (the behaviour of the
    reference libraries, which ignore issued-at).
    """
    if not (math.isfinite(now) and math.isfinite(skew)) or skew < 0:
        raise ValueError("now must be finite and skew finite and >= 0")
    expiration = msg.expiration_epoch
    # ERC-4361: expiration-time is "The time when the signed authentication message is no
    # longer valid" - valid strictly before it.
    if expiration is not None and now - skew >= expiration:
        raise InvalidGrant("the SIWE message has expired", reason="expired")
    not_before = msg.not_before_epoch
    # ERC-4361: not-before is "The time when the signed authentication message will become
    # valid" - valid from it on.
    if not_before is not None and now + skew < not_before:
        raise InvalidGrant("the SIWE message is not valid yet", reason="not_yet_valid")
    if reject_future_issued_at and msg.issued_at_epoch > now + skew:
        raise InvalidGrant("the SIWE message is issued in the future", reason="issued_in_future")


def verify_message(
    text: str,
    signature: str | bytes,
    *,
    now: float,
    skew: float = 0.0,
    domain: str | None = None,
    nonce: str | None = None,
    scheme: str | None = None,
    uri: str | None = None,
    chain_id: int | None = None,
    reject_future_issued_at: bool = True,
) -> SiweMessage:
    """Parse, bind (each expected value that is not None must match exactly), check times
    and the EOA signature, in that order. Returns the parsed message.

    ERC-4361: "The SIWE Message MUST be checked for conformance to the ABNF ..., checked
    against expected values after parsing ..., and its signature MUST be checked".
    """
    msg = SiweMessage.from_text(text)
    if domain is not None and msg.domain != domain:
        raise InvalidGrant("the SIWE domain is not the expected one", reason="domain_mismatch")
    if scheme is not None and msg.scheme != scheme:
        raise InvalidGrant("the SIWE scheme is not the expected one", reason="scheme_mismatch")
    if uri is not None and msg.uri != uri:
        raise InvalidGrant("the SIWE URI is not the expected one", reason="uri_mismatch")
    if chain_id is not None and msg.chain_id != chain_id:
        raise InvalidGrant("the SIWE chain id is not the expected one", reason="chain_id_mismatch")
    # The nonce is compared in constant time: it is the server's replay-protection secret.
    if nonce is not None and not hmac.compare_digest(msg.nonce.encode(), nonce.encode()):
        raise InvalidGrant("the SIWE nonce is not the expected one", reason="nonce_mismatch")
    check_times(msg, now, skew, reject_future_issued_at=reject_future_issued_at)
    verify_eoa(text, signature, expected_address=msg.address)
    return msg
