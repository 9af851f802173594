"""Second factor for step-up: TOTP (RFC 6238) enrolled by an authenticated user.

Secrets are sealed with the key-encryption key (AES-256-GCM) before they reach the store.
A code is accepted once (the time step is remembered) and failures back off the account
with exponential, capped delays (a 6-digit code can be guessed, unlike a signature).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson
import pyotp

from did_auth.clock import Clock
from did_auth.errors import AccessDenied, InvalidGrant, InvalidRequest
from did_auth.policy.backoff import OtpBackoff
from did_auth.store.base import Store
from did_auth.tokens.kek import Sealer

__all__ = ["OtpService"]

_TTL = 10 * 365 * 86400
_PENDING_TTL = 900


def _key(sub: str) -> str:
    return f"da:{{otp:{sub}}}:secret"


@dataclass(frozen=True)
class Enrollment:
    secret: str
    uri: str


class OtpService:
    def __init__(
        self,
        store: Store,
        sealer: Sealer,
        clock: Clock,
        *,
        issuer_name: str,
        backoff: OtpBackoff | None = None,
    ) -> None:
        self._store = store
        self._backoff = backoff or OtpBackoff(store)
        self._sealer = sealer
        self._clock = clock
        self._issuer_name = issuer_name

    async def _record(self, sub: str) -> dict[str, object] | None:
        raw = await self._store.get(_key(sub))
        if raw is None:
            return None
        rec: dict[str, object] = orjson.loads(raw)
        return rec

    def _secret(self, sub: str, rec: dict[str, object]) -> str:
        sealed = base64.b64decode(str(rec["sealed"]))
        return self._sealer.open(sealed, sub.encode()).decode()

    async def enrolled(self, sub: str) -> bool:
        rec = await self._record(sub)
        return rec is not None and bool(rec.get("active"))

    async def enroll(self, sub: str) -> Enrollment:
        if await self.enrolled(sub):
            raise InvalidRequest("a second factor is already enrolled for this account")
        secret = pyotp.random_base32()
        rec = {
            "active": False,
            "sealed": base64.b64encode(self._sealer.seal(secret.encode(), sub.encode())).decode(),
            "last_step": -1,
        }
        await self._store.put(_key(sub), orjson.dumps(rec), _PENDING_TTL)
        uri = pyotp.TOTP(secret).provisioning_uri(name=sub, issuer_name=self._issuer_name)
        return Enrollment(secret=secret, uri=uri)

    async def confirm(self, sub: str, code: object) -> None:
        rec = await self._record(sub)
        if rec is None or rec.get("active"):
            raise InvalidRequest("no pending enrolment for this account")
        await self._check(sub, rec, code, activate=True)

    async def verify(self, sub: str, code: object) -> None:
        rec = await self._record(sub)
        if rec is None or not rec.get("active"):
            raise AccessDenied("no second factor enrolled for this account", reason="otp_missing")
        await self._check(sub, rec, code, activate=False)

    async def _check(
        self, sub: str, rec: dict[str, object], code: object, *, activate: bool
    ) -> None:
        # The attempt is admitted (and counted) *before* the code is looked at: a burst of
        # parallel guesses gets one attempt per backoff window, never one each.
        await self._backoff.attempt(sub)
        if not isinstance(code, str) or not code.isdigit() or len(code) != 6:
            raise InvalidGrant("otp must be a 6-digit code", reason="otp_invalid")
        totp = pyotp.TOTP(self._secret(sub, rec))
        now = self._clock.now()
        step = None
        for offset in (0, -1, 1):  # RFC 6238 §5.2: allow one time step of clock drift
            t = now + offset * totp.interval
            if totp.verify(code, for_time=t, valid_window=0):
                step = int(t // totp.interval)
                break
        last_step = rec.get("last_step", -1)
        if step is None or (isinstance(last_step, int) and step <= last_step):
            # RFC 6238 §5.2: the verifier MUST NOT accept the second attempt of the same OTP.
            raise InvalidGrant("otp is wrong or already used", reason="otp_invalid")
        updated = {**rec, "last_step": step, "active": True if activate else rec.get("active")}
        await self._store.put(_key(sub), orjson.dumps(updated), _TTL)
        await self._backoff.success(sub)
