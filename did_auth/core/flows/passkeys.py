"""Passkeys (WebAuthn Level 2) as a second factor of an account.

* Registration (`registration_options`, `register`) and removal (`remove`) need a fresh
  login: the token's `auth_time` at most `step_up_max_age` old, the rule TOTP enrolment
  uses (`did_auth.core.flows.otp_enrolment.require_fresh_login`). When the account already has
  a second factor (a passkey or a TOTP), a fresh login is not enough to add a passkey: the
  options are issued only against a current factor, an assertion of one of its passkeys
  made for `REGISTRATION_BINDING` or a TOTP code (as replacing a TOTP needs the current
  one: a token stolen right after a login must not give the thief a factor); so a
  registered passkey also cancels the account's pending TOTP enrolment, which a fresh
  login alone may have started (`OtpService.cancel_pending`). An account
  holds up to
  `MAX_PASSKEYS` credentials; a credential id is registered for one account only (WebAuthn
  L2 §7.1 step 22).
* An assertion (`assertion_options`, `verify_assertion`) is a step-up factor. Its challenge
  is drawn by the server, single use, bound to the account and to a `binding` string given
  when it is issued (a withdrawal's transaction nonce): an assertion made for one
  withdrawal approves no other. User verification is required, the sign counter must
  increase (§6.1.1, §7.2 step 21), the backup-eligibility flag must not change.
* `amr` (RFC 8176): `hwk` ("proof-of-possession of a hardware-secured key") for a
  credential that is not backup eligible (BE = 0: the key cannot leave its authenticator),
  `swk` ("proof-of-possession of a software-secured key") for a backup-eligible one (BE = 1:
  a synced passkey the platform copies between devices).

Every check runs before any state changes; then the challenge is consumed (compare-and-set:
one winner) and the credential's record updated (compare-and-set). The library calls are in
`did_auth.core.flows.webauthn_checks`. Pure: the store, the clock and the settings are given.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from did_auth.config.settings import Settings
from did_auth.core.clock import Clock
from did_auth.core.did.accounts import account_key
from did_auth.core.errors import AccessDenied, InvalidGrant, InvalidRequest, TemporarilyUnavailable
from did_auth.core.flows.otp import OtpService
from did_auth.core.flows.otp_enrolment import ADD_FACTOR_BINDING, require_fresh_login
from did_auth.core.flows.webauthn_checks import (
    RelyingParty,
    b64url,
    check_assertion,
    check_registration,
    creation_options,
    from_b64url,
    parse_assertion,
    parse_registration,
    request_options,
)
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store

__all__ = ["MAX_PASSKEYS", "REGISTRATION_BINDING", "PasskeyFactor", "Passkeys", "WebAuthnFactor"]

MAX_PASSKEYS: Final = 10
#: The `binding` of an assertion that authorises adding a passkey (or a TOTP): not a
#: transaction's.
REGISTRATION_BINDING: Final = ADD_FACTOR_BINDING
_RECORD_TTL: Final = 10 * 365 * 86400
_MAX_OUTSTANDING: Final = 20  # live challenges per account
_MAX_BINDING: Final = 512
_MAX_NAME: Final = 64
_CAS_TRIES: Final = 8
_CREATE, _GET = "webauthn.create", "webauthn.get"


@dataclass(frozen=True)
class PasskeyFactor:
    """A verified passkey assertion: the `amr` values it adds (RFC 8176) and which
    credential answered (base64url id, for the audit trail)."""

    amr: tuple[str, ...]
    credential_id: str
    backed_up: bool


def _amr(backup_eligible: bool) -> tuple[str, ...]:
    return ("swk",) if backup_eligible else ("hwk",)


def _public(cred: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": cred["id"],
        "name": cred.get("name", ""),
        "created_at": cred.get("created"),
        "last_used_at": cred.get("used"),
        "backup_eligible": bool(cred.get("be")),
        "backed_up": bool(cred.get("bs")),
        "amr": list(_amr(bool(cred.get("be")))),
        "transports": list(cred.get("transports") or ()),
    }


@dataclass
class Passkeys:
    settings: Settings
    store: Store
    clock: Clock
    otp: OtpService | None = None  # the account's TOTP, a current factor too

    # ------------------------------------------------------------------ configuration

    def relying_party(self) -> RelyingParty:
        """`[webauthn]` resolved against the issuer (`WebAuthnConfig.relying_party`)."""
        conf = self.settings.webauthn
        found = conf.relying_party(self.settings.issuer)
        if found is None:
            raise InvalidRequest(
                "passkeys are not configured: set [webauthn] rp_id (the issuer's host is "
                "an IP address)",
                reason="passkeys_unconfigured",
            )
        rp_id, origins = found
        return RelyingParty(
            rp_id=rp_id,
            rp_name=conf.rp_name,
            origins=tuple(origins),
            timeout_ms=conf.challenge_ttl * 1000,
        )

    # ------------------------------------------------------------------ records

    async def _record(self, account: str) -> tuple[bytes | None, dict[str, Any]]:
        raw = await self.store.get(store_keys.passkeys(account))
        if raw is None:
            return None, {"creds": []}
        rec: dict[str, Any] = orjson.loads(raw)
        rec.setdefault("creds", [])
        return raw, rec

    async def _write(self, account: str, raw: bytes | None, rec: dict[str, Any]) -> bool:
        """Compare-and-set of the account's record (created when `raw` is None)."""
        key = store_keys.passkeys(account)
        value = orjson.dumps(rec)
        if raw is None:
            return await self.store.put(key, value, _RECORD_TTL, nx=True)
        return await self.store.swap(key, raw, value, _RECORD_TTL)

    async def registered(self, sub: str) -> list[dict[str, Any]]:
        """The account's passkeys as shown to their owner (no public keys)."""
        _, rec = await self._record(account_key(sub))
        return [_public(c) for c in rec["creds"]]

    async def enrolled(self, sub: str) -> bool:
        _, rec = await self._record(account_key(sub))
        return bool(rec["creds"])

    # ------------------------------------------------------------------ challenges

    async def _issue(self, account: str, body: dict[str, Any]) -> bytes:
        challenge = secrets.token_bytes(32)  # WebAuthn L2 §13.4.3: at least 16 random bytes
        value = b64url(challenge)
        ttl = self.settings.webauthn.challenge_ttl
        if not await self.store.cap_add(
            store_keys.passkey_outstanding(account), value, _MAX_OUTSTANDING, ttl
        ):
            raise AccessDenied(
                f"too many outstanding passkey challenges for this account (at most "
                f"{_MAX_OUTSTANDING}); wait {ttl} s",
                reason="passkey_challenges",
            )
        record = {**body, "account": account, "exp": self.clock.now() + ttl}
        await self.store.put(store_keys.passkey_challenge(value), orjson.dumps(record), ttl)
        return challenge

    async def _outstanding(
        self, challenge: bytes, kind: str, account: str
    ) -> tuple[bytes, dict[str, Any]]:
        key = store_keys.passkey_challenge(b64url(challenge))
        raw = await self.store.get(key)
        rec: dict[str, Any] = orjson.loads(raw) if raw is not None else {}
        # WebAuthn L2 §7.1 step 8 / §7.2 step 12: "Verify that the value of C.challenge
        # equals the base64url encoding of options.challenge" — the options *we* issued,
        # for this ceremony and this account, not yet used and not expired.
        if (
            raw is None
            or rec.get("kind") != kind
            or rec.get("account") != account
            or float(rec.get("exp", 0)) < self.clock.now()
        ):
            raise InvalidGrant(
                "the passkey answers no outstanding challenge of this account (unknown, "
                "expired or already used): ask for new options",
                reason="passkey_challenge",
            )
        return raw, rec

    async def _consume(self, challenge: bytes, raw: bytes, account: str) -> None:
        """Single use: of concurrent uses of one challenge exactly one takes it."""
        value = b64url(challenge)
        if await self.store.take(store_keys.passkey_challenge(value), expect=raw) != raw:
            raise InvalidGrant("the passkey challenge was already used",
                               reason="passkey_challenge")
        await self.store.cap_remove(store_keys.passkey_outstanding(account), value)

    # ------------------------------------------------------------------ registration

    async def registration_options(
        self, sub: str, *, auth_time: float, sid: str = "", otp: object = None,
        webauthn: object = None,
    ) -> dict[str, Any]:
        """PublicKeyCredentialCreationOptions for a new passkey of the token's account;
        `otp` or `webauthn` prove a current factor when the account has one."""
        self._check_fresh(auth_time, "registering a passkey")
        rp = self.relying_party()
        account = account_key(sub)
        _, rec = await self._record(account)
        if len(rec["creds"]) >= MAX_PASSKEYS:
            raise InvalidRequest(f"an account holds at most {MAX_PASSKEYS} passkeys; remove one")
        await self._check_current_factor(sub, bool(rec["creds"]), sid, otp, webauthn)
        user = rec.get("user") or b64url(secrets.token_bytes(16))
        challenge = await self._issue(account, {"kind": _CREATE, "user": user})
        options = creation_options(
            rp,
            user_id=from_b64url(user),
            user_name=account,
            display_name=_short_account(account),
            challenge=challenge,
            exclude=rec["creds"],
        )
        return {"publicKey": options}

    async def register(
        self, sub: str, credential: object, *, auth_time: float, name: object = None
    ) -> dict[str, Any]:
        """Verify `navigator.credentials.create()`'s answer and keep the passkey."""
        self._check_fresh(auth_time, "registering a passkey")
        if name is not None and (not isinstance(name, str) or len(name) > _MAX_NAME):
            raise InvalidRequest(f"name must be a string of at most {_MAX_NAME} characters")
        rp = self.relying_party()
        account = account_key(sub)
        parsed, challenge = parse_registration(credential)
        raw_challenge, issued = await self._outstanding(challenge, _CREATE, account)
        raw, rec = await self._record(account)
        if len(rec["creds"]) >= MAX_PASSKEYS:
            raise InvalidRequest(f"an account holds at most {MAX_PASSKEYS} passkeys; remove one")
        registered = check_registration(rp, parsed, challenge)
        owner_key = store_keys.passkey_credential_owner(registered.credential_id)
        # WebAuthn L2 §7.1 step 22: "Check that the credentialId is not yet registered to
        # any other user. If registration is requested for a credential that is already
        # registered to a different user, the Relying Party SHOULD fail this registration
        # ceremony".
        if await self.store.get(owner_key) is not None:
            raise InvalidGrant("this credential is already registered",
                               reason="passkey_registered")
        await self._consume(challenge, raw_challenge, account)
        if not await self.store.put(owner_key, account.encode(), _RECORD_TTL, nx=True):
            raise InvalidGrant("this credential is already registered",
                               reason="passkey_registered")
        now = int(self.clock.now())
        cred = {
            "id": registered.credential_id,
            "pk": registered.public_key,
            "count": registered.sign_count,
            "be": registered.backup_eligible,
            "bs": registered.backed_up,
            "aaguid": registered.aaguid,
            "fmt": registered.fmt,
            "transports": _transports(credential),
            "name": name or f"Passkey {time.strftime('%Y-%m-%d', time.gmtime(now))}",
            "created": now,
            "used": None,
        }
        for _ in range(_CAS_TRIES):
            if len(rec["creds"]) >= MAX_PASSKEYS:
                break
            new = {**rec, "user": rec.get("user") or issued["user"],
                   "creds": [*rec["creds"], cred]}
            if await self._write(account, raw, new):
                # A pending TOTP enrolment started while the account had no passkey was
                # allowed by a rule that no longer holds (a fresh login alone): cancelled.
                if self.otp is not None:
                    await self.otp.cancel_pending(sub)
                return _public(cred)
            raw, rec = await self._record(account)
        await self.store.delete(owner_key)
        raise TemporarilyUnavailable("the passkeys of this account changed meanwhile; retry",
                                     reason="passkey_contention")

    async def remove(self, sub: str, credential_id: str, *, auth_time: float) -> None:
        self._check_fresh(auth_time, "removing a passkey")
        account = account_key(sub)
        for _ in range(_CAS_TRIES):
            raw, rec = await self._record(account)
            kept = [c for c in rec["creds"] if c["id"] != credential_id]
            if raw is None or len(kept) == len(rec["creds"]):
                raise InvalidRequest("no such passkey for this account",
                                     reason="passkey_unknown")
            if await self._write(account, raw, {**rec, "creds": kept}):
                owner_key = store_keys.passkey_credential_owner(credential_id)
                if await self.store.get(owner_key) == account.encode():
                    await self.store.delete(owner_key)
                return
        raise TemporarilyUnavailable("the passkeys of this account changed meanwhile; retry",
                                     reason="passkey_contention")

    # ------------------------------------------------------------------ assertion (step-up)

    async def assertion_options(self, sub: str, *, binding: str) -> dict[str, Any]:
        """PublicKeyCredentialRequestOptions whose challenge is bound to the account and
        to `binding` (e.g. the transaction nonce of the withdrawal it will approve)."""
        _check_binding(binding)
        rp = self.relying_party()
        account = account_key(sub)
        _, rec = await self._record(account)
        if not rec["creds"]:
            raise AccessDenied("no passkey is registered for this account",
                               reason="passkey_missing")
        challenge = await self._issue(account, {"kind": _GET, "binding": binding})
        return {"publicKey": request_options(rp, challenge=challenge, allow=rec["creds"])}

    async def verify_assertion(
        self, sub: str, assertion: object, *, binding: str
    ) -> PasskeyFactor:
        """Check `navigator.credentials.get()`'s answer as the account's second factor for
        `binding`; consumes the challenge and advances the sign counter."""
        _check_binding(binding)
        rp = self.relying_party()
        account = account_key(sub)
        parsed, challenge = parse_assertion(assertion)
        raw_challenge, issued = await self._outstanding(challenge, _GET, account)
        if issued.get("binding") != binding:
            raise InvalidGrant("the passkey challenge was issued for another transaction",
                               reason="passkey_challenge")
        raw, rec = await self._record(account)
        if not rec["creds"]:
            raise AccessDenied("no passkey is registered for this account",
                               reason="passkey_missing")
        # WebAuthn L2 §7.2 step 5: "If options.allowCredentials is not empty, verify that
        # credential.id identifies one of the public key credentials listed" — this
        # account's, never another account's.
        cred = next((c for c in rec["creds"] if c["id"] == parsed.id), None)
        if cred is None:
            raise InvalidGrant("the passkey is not one of this account's",
                               reason="passkey_unknown")
        asserted = check_assertion(rp, parsed, challenge, str(cred["pk"]))
        _check_counter(asserted.sign_count, int(cred.get("count", 0)))
        if asserted.backup_eligible != bool(cred.get("be")):
            # WebAuthn L3 §6.1 (BE): "The value of the BE flag is set during
            # authenticatorMakeCredential operation and MUST NOT change."
            raise InvalidGrant("the passkey's backup eligibility changed",
                               reason="passkey_invalid")
        await self._consume(challenge, raw_challenge, account)
        await self._advance(account, raw, rec, parsed.id, asserted.sign_count,
                            asserted.backed_up)
        return PasskeyFactor(
            amr=_amr(bool(cred.get("be"))), credential_id=parsed.id,
            backed_up=asserted.backed_up,
        )

    async def _advance(
        self, account: str, raw: bytes | None, rec: dict[str, Any], cred_id: str,
        count: int, backed_up: bool,
    ) -> None:
        now = int(self.clock.now())
        for _ in range(_CAS_TRIES):
            creds = rec["creds"]
            cred = next((c for c in creds if c["id"] == cred_id), None)
            if cred is None:
                raise InvalidGrant("the passkey was removed", reason="passkey_unknown")
            _check_counter(count, int(cred.get("count", 0)))  # another use won meanwhile
            updated = {**cred, "count": count, "used": now, "bs": backed_up}
            new = {**rec, "creds": [updated if c is cred else c for c in creds]}
            if await self._write(account, raw, new):
                return
            raw, rec = await self._record(account)
        raise TemporarilyUnavailable("the passkey was used concurrently; retry",
                                     reason="passkey_contention")

    async def _check_current_factor(
        self, sub: str, has_passkeys: bool, sid: str, otp: object, webauthn: object
    ) -> None:
        if otp is not None and webauthn is not None:
            raise InvalidRequest("send either otp or webauthn, not both")
        has_otp = self.otp is not None and await self.otp.enrolled(sub)
        if webauthn is not None:
            await self.verify_assertion(sub, webauthn, binding=REGISTRATION_BINDING)
        elif otp is not None:
            if self.otp is None or not has_otp:
                raise InvalidRequest("no TOTP is enrolled for this account: otp cannot be checked")
            # Wrong codes count against this session and the account's enrolment budget,
            # never the login step-up budget (as at /otp/enroll).
            await self.otp.verify_for_enrolment(sub, otp, sid=sid)
        elif has_passkeys or has_otp:
            raise AccessDenied(
                "a second factor is already enrolled: confirm with one of your passkeys "
                f"(webauthn, an assertion for binding {REGISTRATION_BINDING}) or your "
                "authenticator app (otp) to add a passkey",
                reason="second_factor_required",
            )

    def _check_fresh(self, auth_time: float, action: str) -> None:
        require_fresh_login(self.clock.now(), auth_time, self.settings.step_up_max_age, action)


class WebAuthnFactor:
    """The `webauthn` kind of `did_auth.core.flows.second_factor.SecondFactor`: a passkey
    assertion whose challenge was issued for `binding` (the transaction nonce)."""

    def __init__(self, passkeys: Passkeys) -> None:
        self._passkeys = passkeys

    async def verify(self, sub: str, proof: object, *, binding: str) -> tuple[str, ...]:
        return (await self._passkeys.verify_assertion(sub, proof, binding=binding)).amr


def _check_counter(new: int, stored: int) -> None:
    # WebAuthn L2 §7.2 step 21: "If either of authData.signCount or storedSignCount is
    # nonzero, and if authData.signCount is [not] greater than storedSignCount ... This is
    # a signal that the authenticator may be cloned" — did-auth refuses (§6.1.1: the
    # Relying Party decides; a second factor that may be cloned is not one).
    if (new != 0 or stored != 0) and new <= stored:
        raise InvalidGrant(
            "the passkey's signature counter did not increase (a cloned authenticator or "
            "a replay)",
            reason="passkey_counter",
        )


def _check_binding(binding: object) -> None:
    if not isinstance(binding, str) or not binding or len(binding) > _MAX_BINDING:
        raise InvalidRequest(
            f"binding must be a non-empty string of at most {_MAX_BINDING} characters "
            "(the transaction nonce)"
        )


def _short_account(account: str) -> str:
    return f"{account[:6]}…{account[-4:]}" if account.startswith("0x") else account[:64]


def _transports(credential: object) -> list[str]:
    response = credential.get("response") if isinstance(credential, Mapping) else None
    found = response.get("transports") if isinstance(response, Mapping) else None
    if not isinstance(found, list):
        return []
    return [t for t in found if isinstance(t, str) and len(t) <= 32][:8]
