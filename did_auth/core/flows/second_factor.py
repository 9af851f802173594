"""The second factor of an approval (a withdrawal): one seam, several kinds.

A request names its factor by the member it sends (`otp`, `webauthn`); exactly one is
required. Each kind checks its proof for the account of `sub` and says which RFC 8176
`amr` values it stands for. `binding` is what the factor's proof must be bound to when the
kind can bind (a WebAuthn assertion's challenge is issued for it): the transaction nonce
the wallet also signed, so a proof made for one approval cannot serve another. A TOTP code
cannot be bound to anything; it is single use per time step and backed off per account
(`OtpService.verify`, the account's step-up budget, as at login).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

from did_auth.core.errors import InvalidRequest
from did_auth.core.flows.otp import OtpService

__all__ = ["OtpFactor", "SecondFactor", "SecondFactors"]

# RFC 8176 §2: "otp" - One-time password.
_OTP_AMR: Final = ("otp",)


class SecondFactor(Protocol):
    """One kind of second factor (`otp`, `webauthn`)."""

    async def verify(self, sub: str, proof: object, *, binding: str) -> tuple[str, ...]:
        """Return the `amr` values of a valid `proof` by the account of `sub`, or raise
        (InvalidGrant / AccessDenied / InvalidRequest / RateLimited; 503 when the store is
        down). A refused proof leaves the factor's state as it was, except the backoff
        counters the kind keeps against guessing."""
        ...


class OtpFactor:
    """RFC 6238 TOTP through the existing `OtpService`: single-use codes (the time step is
    compare-and-set), exponential backoff on the account's step-up budget."""

    def __init__(self, otp: OtpService) -> None:
        self._otp = otp

    async def verify(self, sub: str, proof: object, *, binding: str) -> tuple[str, ...]:
        await self._otp.verify(sub, proof)
        return _OTP_AMR


class SecondFactors:
    """The kinds this server has, by request member name."""

    def __init__(self, kinds: Mapping[str, SecondFactor]) -> None:
        self._kinds = dict(kinds)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def pick(self, body: Mapping[str, object], known: tuple[str, ...]) -> tuple[str, object]:
        """(kind, proof) of the one second factor the request carries among `known` member
        names (each present only when not None)."""
        sent = [name for name in known if body.get(name) is not None]
        if not sent:
            raise InvalidRequest(
                f"a second factor is required: send one of {', '.join(known)}",
                reason="second_factor_missing",
            )
        if len(sent) > 1:
            raise InvalidRequest("send exactly one second factor", reason="second_factor_many")
        name = sent[0]
        if name not in self._kinds:
            raise InvalidRequest(
                f"second factor {name} is not available on this server",
                reason="second_factor_unavailable",
            )
        return name, body[name]

    async def verify(self, name: str, sub: str, proof: object, *, binding: str) -> tuple[str, ...]:
        return await self._kinds[name].verify(sub, proof, binding=binding)
