"""Who may enrol or replace a second factor (`POST /otp/enroll`).

A second factor protects step-up scopes against a stolen access token, so a token alone
must never be enough to choose the factor:

* No factor enrolled yet: the token must come from a *fresh* login, `auth_time` at most
  `step_up_max_age` seconds old (OpenID Connect Core §2 `auth_time`; RFC 9470 §3: a
  resource that needs a more recent authentication answers `insufficient_user_authentication`
  with `max_age`). A leaked `account:read` token with an old `auth_time` cannot enrol an
  attacker's TOTP.
* A factor enrolled: replacing it needs the *current* factor (`otp`, a code of the enrolled
  secret, backed off per session and per account, apart from the account's login step-up
  budget: wrong codes here must not lock the user out of step-up) or, when that factor is
  lost, a wallet signature made for this purpose (`siwe`). A fresh login alone is not
  enough: a token stolen right after a login would otherwise replace the victim's factor.
* No TOTP yet but a passkey (`did_auth.core.flows.passkeys`): the passkey is the current factor,
  so a fresh login is not enough either: `webauthn`, an assertion of one of the account's
  passkeys made for `ADD_FACTOR_BINDING`, must come with the request (method `passkey`).
* The re-enrolment signature is an EIP-4361 message checked like a login (client domain,
  uri and chain, times, signature incl. EIP-1271/6492, suspension and revokeAll on the
  authoritative RevocationRegistry, single-use nonce from `/siwe/nonce`, consumed last), and
  in addition: its statement is exactly `REENROL_STATEMENT` and its resources include
  `REENROL_RESOURCE`, so the wallet shows the user what is signed and no login message can
  serve; it is at most `step_up_max_age` old; its address is the token subject's account.
  The route audits every attempt (`second_factor_enrolment`, reason `wallet_signature`, or
  the refusal's reason) and the confirmation (`second_factor_enrolled`).
* The confirmation (`confirm`) applies this rule again: the pending enrolment belongs to the
  session (`sid`) that started it, and a factor that appeared since the start (a passkey,
  a TOTP activated or replaced) refuses it, as the start would have needed that factor.
  Registering a passkey also cancels the account's pending TOTP enrolment.

The factor is the account's (`account_key`): the same EOA on any chain or as did:ethr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from did_auth.core.did.accounts import account_key
from did_auth.core.errors import (
    AccessDenied,
    InsufficientUserAuthentication,
    InvalidGrant,
    InvalidRequest,
)
from did_auth.core.flows.guard import RequestContext
from did_auth.core.flows.nonces import NonceBook
from did_auth.core.flows.otp import Confirmed, Enrollment
from did_auth.core.flows.proof_request import ProofFlow
from did_auth.core.flows.signatures import SignatureChecker
from did_auth.core.flows.siwe_login import check_message_binding, check_signed_message
from did_auth.core.policy.clients import get_client
from did_auth.core.signatures.eip191 import parse_hex_signature
from did_auth.core.siwe import SiweMessage

__all__ = [
    "ADD_FACTOR_BINDING",
    "REENROL_RESOURCE",
    "REENROL_STATEMENT",
    "OtpEnrolRequest",
    "OtpEnrolment",
    "PasskeyCheck",
    "require_fresh_login",
]

REENROL_STATEMENT: Final = "Replace the second factor (OTP) of this account."
REENROL_RESOURCE: Final = "urn:did-auth:otp:reenrol"
#: The `binding` of a passkey assertion that authorises adding a second factor (a TOTP or
#: another passkey) to an account that has a passkey: not a transaction's.
ADD_FACTOR_BINDING: Final = "urn:did-auth:second-factor:add"
_MAX_MESSAGE_CHARS: Final = 16 * 1024
_MAX_SIGNATURE_HEX: Final = 2 + 2 * 16 * 1024


def require_fresh_login(now: float, auth_time: float, max_age: int, action: str) -> None:
    """The one freshness rule for choosing a second factor (TOTP enrolment, passkey
    registration and removal): the token's `auth_time` at most `max_age`
    (`step_up_max_age`) seconds old, else RFC 9470 `insufficient_user_authentication`
    with `max_age`."""
    if now - auth_time > max_age:
        raise InsufficientUserAuthentication(
            f"{action} needs a login at most {max_age} s old; sign in again",
            max_age=max_age,
            reason="login_too_old",
        )


class PasskeyCheck(Protocol):
    """The account's passkeys as a current factor (`did_auth.core.flows.passkeys.Passkeys`)."""

    async def enrolled(self, sub: str) -> bool: ...

    async def verify_assertion(self, sub: str, assertion: object, *, binding: str) -> object: ...


@dataclass(frozen=True)
class OtpEnrolRequest:
    sub: str  # from the verified access token
    client_id: str  # the token's client
    auth_time: float  # the token's auth_time
    sid: str = ""  # the token's session: the budget of wrong codes sent here
    otp: Any = None  # a code of the currently enrolled factor
    siwe: Any = None  # {"message", "signature"}: a wallet signature for re-enrolment
    webauthn: Any = None  # an assertion of a passkey of the account (ADD_FACTOR_BINDING)
    ctx: RequestContext = field(default_factory=RequestContext)


@dataclass
class OtpEnrolment(ProofFlow):
    nonces: NonceBook
    signatures: SignatureChecker
    passkeys: PasskeyCheck | None = None

    async def enroll(self, req: OtpEnrolRequest) -> tuple[Enrollment, str, bool]:
        """Start a pending enrolment: (enrolment, method, replaces). `method` is how it was
        authorised: `fresh_login`, `current_otp` or `wallet_signature`."""
        if req.otp is not None and req.siwe is not None:
            raise InvalidRequest("send either otp or siwe, not both")
        enrolled = await self.otp.enrolled(req.sub)
        if req.siwe is not None:
            await self._check_reenrol_signature(req)
            method = "wallet_signature"
        elif enrolled:
            if req.otp is None:
                raise AccessDenied(
                    "a second factor is already enrolled: send otp (a code of the current "
                    "factor) or, if it is lost, siwe (a wallet signature for OTP "
                    "re-enrolment) to replace it",
                    reason="second_factor_required",
                )
            # Wrong codes count against this session and the account's enrolment budget,
            # never the login step-up budget (any live token could lock step-up otherwise).
            await self.otp.verify_for_enrolment(req.sub, req.otp, sid=req.sid)
            method = "current_otp"
        else:
            if req.otp is not None:
                raise InvalidRequest(
                    "no second factor is enrolled for this account: otp cannot be checked"
                )
            self._check_fresh(req.auth_time)
            method = await self._check_passkey(req)
        enrollment = await self.otp.enroll(
            req.sub, replace=enrolled, method=method, sid=req.sid,
            passkey=await self._has_passkey(req.sub),
        )
        return enrollment, method, enrolled

    async def confirm(self, sub: str, code: object, *, sid: str) -> Confirmed:
        """`POST /otp/confirm`: activate the pending enrolment started by session `sid`,
        the start's rule applied again to the account's factors as they are now (a
        passkey or a TOTP that appeared since the start refuses it: `OtpService.confirm`)."""
        return await self.otp.confirm(sub, code, sid=sid, passkey=await self._has_passkey(sub))

    async def _has_passkey(self, sub: str) -> bool:
        return self.passkeys is not None and await self.passkeys.enrolled(sub)

    async def _check_passkey(self, req: OtpEnrolRequest) -> str:
        """The first TOTP of an account with a passkey needs that passkey."""
        if self.passkeys is None or not await self.passkeys.enrolled(req.sub):
            if req.webauthn is not None:
                raise InvalidRequest("no passkey is registered for this account")
            return "fresh_login"
        if req.webauthn is None:
            raise AccessDenied(
                "a passkey is registered for this account: send webauthn (an assertion of "
                f"one of its passkeys for binding {ADD_FACTOR_BINDING}) to add a TOTP",
                reason="second_factor_required",
            )
        await self.passkeys.verify_assertion(req.sub, req.webauthn, binding=ADD_FACTOR_BINDING)
        return "passkey"

    def _check_fresh(self, auth_time: float) -> None:
        require_fresh_login(
            self.clock.now(), auth_time, self.settings.step_up_max_age, "enrolling a second factor"
        )

    async def _check_reenrol_signature(self, req: OtpEnrolRequest) -> None:
        proof = req.siwe
        if not isinstance(proof, Mapping):
            raise InvalidRequest("siwe must be an object {message, signature}")
        text, signature_hex = proof.get("message"), proof.get("signature")
        if not isinstance(text, str) or not text or len(text) > _MAX_MESSAGE_CHARS:
            raise InvalidRequest("siwe.message is required (the exact EIP-4361 text)")
        if not isinstance(signature_hex, str) or len(signature_hex) > _MAX_SIGNATURE_HEX:
            raise InvalidRequest("siwe.signature must be 0x-prefixed hex")
        client = get_client(self.settings, req.client_id)
        msg = SiweMessage.from_text(text)
        await self.guard.before_proof(req.ctx, client.client_id, msg.address)
        if account_key(msg.address) != account_key(req.sub):
            raise InvalidGrant(
                "the re-enrolment message is not signed for this account", reason="account"
            )
        # EIP-4361 §"Verifying a signed message": domain, uri, chain, times, nonce: as a login.
        now = self.clock.now()
        check_message_binding(self.settings, client, msg, now)
        if msg.statement != REENROL_STATEMENT or REENROL_RESOURCE not in (msg.resources or ()):
            raise InvalidRequest(
                f'the re-enrolment message needs the statement "{REENROL_STATEMENT}" and the '
                f"resource {REENROL_RESOURCE}",
                reason="reenrol_statement",
            )
        if now - msg.issued_at_epoch > self.settings.step_up_max_age + self.settings.clock_skew:
            raise InvalidGrant(
                f"the re-enrolment message must be signed within {self.settings.step_up_max_age} s",
                reason="expired",
            )
        signature = parse_hex_signature(signature_hex)
        await check_signed_message(self, msg, text, signature, client.client_id, req.ctx)
