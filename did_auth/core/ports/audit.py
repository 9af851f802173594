"""The audit and counter seams: what the core records, written by the adapters.

`did_auth.adapters.monitoring.audit.AuditLog` implements `Audit` (one redacted JSON line per
security decision); `did_auth.adapters.monitoring.metrics.DidAuthMetrics` implements
`Counters` (Prometheus counters). The core names events and outcomes from here and never
imports the adapters.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol

__all__ = ["Audit", "AuditEvent", "Counters", "Outcome", "RequestOrigin"]


class AuditEvent(StrEnum):
    LOGIN_SUCCESS = "login_success"
    LOGIN_FAILURE = "login_failure"
    TOKEN_ISSUED = "token_issued"  # noqa: S105
    TOKEN_REFRESHED = "token_refreshed"  # noqa: S105
    TOKEN_REVOKED = "token_revoked"  # noqa: S105
    REVOCATION_APPLIED = "revocation_applied"
    RATE_LIMITED = "rate_limited"
    REPLAY_DETECTED = "replay_detected"
    KEY_ROTATED = "key_rotated"
    REFRESH_REUSE = "refresh_reuse"
    SIGNATURE_FAILURE_BURST = "signature_failure_burst"
    REVOKED_USE = "revoked_use"  # a revoked/suspended session, token or key was presented
    # POST /otp/enroll (reason: fresh_login, current_otp, wallet_signature; or why denied)
    SECOND_FACTOR_ENROLMENT = "second_factor_enrolment"
    SECOND_FACTOR_ENROLLED = "second_factor_enrolled"  # POST /otp/confirm: factor active
    # POST /transactions/authorize: a withdrawal approved (EIP-712 + second factor) or not
    WITHDRAWAL_APPROVAL = "withdrawal_approval"
    # Passkeys (WebAuthn): POST /passkeys/register, DELETE /passkeys/{id} (reason on refusal)
    PASSKEY_REGISTRATION = "passkey_registration"
    PASSKEY_REMOVAL = "passkey_removal"
    # `did-auth sessions revoke-all` (reason: the operator's; before: the cut-off)
    SESSIONS_REVOKED_ALL = "sessions_revoked_all"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    DETECTED = "detected"


class RequestOrigin(Protocol):
    """The request an event is about (`did_auth.core.policy.guard.RequestContext`)."""

    @property
    def request_id(self) -> str: ...

    @property
    def ip(self) -> str: ...


class Audit(Protocol):
    """Writes one audit record per security decision."""

    def emit(self, event: AuditEvent | str, outcome: Outcome | str, **fields: Any) -> object:
        """One record: the event, its outcome, and named fields (`reason`, `ctx` (a
        `RequestOrigin`), `request_id`, `client_id`, `subject`, `ip`, and any other detail;
        secrets are redacted by the sink)."""


class Counters(Protocol):
    """The counters the core bumps (exposed on `/metrics` by the monitoring adapter)."""

    def anomaly(self, kind: str) -> None:
        """One anomaly of `kind` (`AnomalyKind`: code replay, signature failure burst, ...)."""

    def token_issued(self, grant: str) -> None:
        """One access token issued by `grant` (siwe, did, authorization_code, ...)."""
