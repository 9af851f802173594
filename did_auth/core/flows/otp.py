"""Second factor for step-up: TOTP (RFC 6238) enrolled by an authenticated user.

One wallet is one subject: the factor is keyed by the account (`account_key`: the same EOA
as did:pkh on any chain, as did:ethr, or as a bare address shares one factor, one backoff),
so another chain or DID method is no way around it. Other subjects (did:key) are their own.

Secrets are sealed with the key-encryption key (AES-256-GCM, the account key as associated
data) before they reach the store. An enrolment is *pending* (its own key, 15 minutes) until
confirmed with a code of the new secret; confirming replaces the active factor, if any.
Who may start an enrolment is decided by `did_auth.core.flows.otp_enrolment`. A code is accepted
once (the time step is remembered, compare-and-set) and failures back off with exponential,
capped delays (a 6-digit code can be guessed, unlike a signature), each against its budget:

* login step-up (`verify`): the account's budget;
* the enrolment endpoints: the caller's session (`sid`), and for a guess of the current
  factor at `/otp/enroll` (`verify_for_enrolment`) also the account's *enrolment* budget,
  so that many sessions together cannot brute-force the factor there. Never the login
  step-up budget: otherwise any live token of the account could send wrong codes there
  and lock the user out of step-up (429 at login) for up to the backoff cap.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import orjson
import pyotp

from did_auth.core.clock import Clock
from did_auth.core.did.accounts import account_key
from did_auth.core.errors import AccessDenied, InvalidGrant, InvalidRequest
from did_auth.core.policy.backoff import OtpBackoff
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store
from did_auth.core.tokens.kek import SecretSealer

__all__ = ["Confirmed", "Enrollment", "OtpService", "enrolment_budget", "session_budget"]

_TTL = 10 * 365 * 86400
_PENDING_TTL = 900


def _key(key: str) -> str:
    return store_keys.otp_secret(key)


def _pending_key(key: str) -> str:
    return store_keys.otp_pending(key)


def session_budget(sid: str) -> str:
    """The OTP backoff budget of one session's enrolment attempts (`/otp/*`)."""
    return f"enrol-sid:{sid}"


def enrolment_budget(account: str) -> str:
    """The OTP backoff budget of guesses of the account's factor at `/otp/enroll`, apart
    from its login step-up budget (the account key itself)."""
    return f"enrol:{account}"


@dataclass(frozen=True)
class Enrollment:
    secret: str
    uri: str


@dataclass(frozen=True)
class Confirmed:
    """A confirmed enrolment: whether it replaced an active factor, and how the enrolment
    was authorised (`OtpEnrolment` methods: fresh_login, current_otp, wallet_signature)."""

    replaced: bool
    method: str


class OtpService:
    def __init__(
        self,
        store: Store,
        sealer: SecretSealer,
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

    async def _active(self, sub: str) -> tuple[str, bytes, dict[str, object]] | None:
        """(store key, raw value, record) of the account's active factor, else None."""
        key = _key(account_key(sub))
        raw = await self._store.get(key)
        if raw is None and account_key(sub) != sub:
            # Stored before one key per wallet (keyed by the subject as it logged in):
            # adopted as the account's factor, sealed as it was.
            legacy = await self._store.get(_key(sub))
            if legacy is not None:
                rec = orjson.loads(legacy)
                if rec.get("active"):
                    rec.setdefault("aad", sub)
                    raw = orjson.dumps(rec)
                    if not await self._store.put(key, raw, _TTL, nx=True):
                        raw = await self._store.get(key)
        if raw is None:
            return None
        rec = orjson.loads(raw)
        if not rec.get("active"):  # an old-format pending enrolment: not a factor
            return None
        return key, raw, rec

    def _secret(self, sub: str, rec: dict[str, object]) -> str:
        sealed = base64.b64decode(str(rec["sealed"]))
        aad = str(rec.get("aad") or account_key(sub))
        return self._sealer.open(sealed, aad.encode()).decode()

    async def enrolled(self, sub: str) -> bool:
        return await self._active(sub) is not None

    async def _factor_state(self, sub: str) -> str:
        """The account's active TOTP as it is now: a digest of its sealed secret, or ""."""
        found = await self._active(sub)
        if found is None:
            return ""
        return hashlib.sha256(str(found[2].get("sealed", "")).encode()).hexdigest()

    async def enroll(
        self, sub: str, *, replace: bool = False, method: str = "fresh_login",
        sid: str = "", passkey: bool = False,
    ) -> Enrollment:
        """Start a (pending) enrolment; `replace` when the caller was authorised to replace
        an active factor (`OtpEnrolment` decides). The pending record keeps the session that
        started it (`sid`) and the account's factors the start answered for (the active
        TOTP, whether a passkey was registered), which `confirm` checks again."""
        if not replace and await self.enrolled(sub):
            raise InvalidRequest("a second factor is already enrolled for this account")
        key = account_key(sub)
        secret = pyotp.random_base32()
        rec = {
            "sealed": base64.b64encode(self._sealer.seal(secret.encode(), key.encode())).decode(),
            "aad": key,
            "replaces": replace,
            "method": method,
            "sid": sid,
            "factor": await self._factor_state(sub),
            "passkey": passkey,
        }
        await self._store.put(_pending_key(key), orjson.dumps(rec), _PENDING_TTL)
        uri = pyotp.TOTP(secret).provisioning_uri(name=sub, issuer_name=self._issuer_name)
        return Enrollment(secret=secret, uri=uri)

    async def cancel_pending(self, sub: str) -> None:
        """Drop the account's pending enrolment (a passkey was registered: the rule that
        let it start no longer holds)."""
        await self._store.delete(_pending_key(account_key(sub)))

    async def confirm(
        self, sub: str, code: object, *, sid: str | None = None, passkey: bool = False
    ) -> Confirmed:
        """Activate the pending enrolment with a code of its new secret. Failures count
        against the caller's session `sid` (else the account's enrolment budget), never
        the account's login step-up budget. `passkey`: the account has one now.

        Who may enrol is decided at the start, so the start's rule is applied again here
        against the account's factors as they are now: a TOTP activated or replaced, or a
        passkey registered, since the start (it would have needed that factor) is refused,
        and so is a session other than the one that started the enrolment. Both before
        the code is looked at: a refusal changes nothing."""
        key = account_key(sub)
        pending = _pending_key(key)
        raw = await self._store.get(pending)
        if raw is None:
            raise InvalidRequest("no pending enrolment for this account")
        rec = orjson.loads(raw)
        started_by = str(rec.get("sid") or "")
        if started_by and started_by != (sid or ""):
            raise AccessDenied(
                "this enrolment was started by another session; confirm it there",
                reason="otp_pending_session",
            )
        if await self._factor_state(sub) != str(rec.get("factor") or "") or (
            passkey and not rec.get("passkey")
        ):
            raise AccessDenied(
                "the account's second factors changed since this enrolment started; start "
                "again at /otp/enroll with the current factor",
                reason="second_factor_required",
            )
        budgets = (session_budget(sid),) if sid else (enrolment_budget(key),)
        step = await self._code_step(budgets, self._secret(sub, rec), code, last_step=-1)
        if await self._store.take(pending, expect=raw) != raw:
            raise InvalidRequest("the pending enrolment changed; enrol again")
        active = await self._active(sub)
        record = {"active": True, "sealed": rec["sealed"], "aad": rec["aad"], "last_step": step}
        await self._store.put(_key(key), orjson.dumps(record), _TTL)
        for budget in budgets:
            await self._backoff.success(budget)
        # A new factor: earlier login failures were guesses of the old one.
        await self._backoff.success(key)
        return Confirmed(replaced=active is not None, method=str(rec.get("method", "")))

    async def verify(self, sub: str, code: object) -> None:
        """Login step-up: a code of the account's factor, on the account's budget."""
        await self._verify(sub, code, (account_key(sub),))

    async def verify_for_enrolment(self, sub: str, code: object, *, sid: str) -> None:
        """A code of the account's current factor sent to `/otp/enroll` (to replace it): on
        the session's budget and the account's enrolment budget, not the login's."""
        own = (session_budget(sid),) if sid else ()
        await self._verify(sub, code, (*own, enrolment_budget(account_key(sub))))

    async def _verify(self, sub: str, code: object, budgets: tuple[str, ...]) -> None:
        found = await self._active(sub)
        if found is None:
            raise AccessDenied("no second factor enrolled for this account", reason="otp_missing")
        store_key, raw, rec = found
        last = rec.get("last_step", -1)
        step = await self._code_step(
            budgets, self._secret(sub, rec), code,
            last_step=last if isinstance(last, int) else -1,
        )
        updated = orjson.dumps({**rec, "last_step": step})
        # Compare-and-set: two requests carrying the same code cannot both pass.
        if not await self._store.swap(store_key, raw, updated, _TTL):
            raise InvalidGrant("otp is wrong or already used", reason="otp_invalid")
        for budget in budgets:
            await self._backoff.success(budget)

    async def _code_step(
        self, budgets: tuple[str, ...], secret: str, code: object, *, last_step: int
    ) -> int:
        # The attempt is admitted (and counted) *before* the code is looked at: a burst of
        # parallel guesses gets one attempt per backoff window, never one each.
        for budget in budgets:
            await self._backoff.attempt(budget)
        if not isinstance(code, str) or not code.isdigit() or len(code) != 6:
            raise InvalidGrant("otp must be a 6-digit code", reason="otp_invalid")
        totp = pyotp.TOTP(secret)
        now = self._clock.now()
        step = None
        for offset in (0, -1, 1):  # RFC 6238 §5.2: allow one time step of clock drift
            t = now + offset * totp.interval
            if totp.verify(code, for_time=t, valid_window=0):
                step = int(t // totp.interval)
                break
        if step is None or step <= last_step:
            # RFC 6238 §5.2: the verifier MUST NOT accept the second attempt of the same OTP.
            raise InvalidGrant("otp is wrong or already used", reason="otp_invalid")
        return step
