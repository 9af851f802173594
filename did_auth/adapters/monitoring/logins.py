"""The record of a login's outcome: one counter, one audit line, the same fields for every
proof kind (`method`: siwe, did) and flow (`flow`: direct, authorization_code).

`dpop_bound` says whether the tokens are bound to a DPoP key (RFC 9449 §6); the name is
not `dpop`, which the audit log drops as secret-like (a DPoP proof is a credential).
"""

from __future__ import annotations

from did_auth.adapters.monitoring.audit import AuditEvent, AuditLog, Outcome
from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.core.errors import DidAuthError
from did_auth.core.flows.guard import RequestContext
from did_auth.core.tokens.issue import Grant

__all__ = ["LoginEvents"]


class LoginEvents:
    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def login_succeeded(self, ctx: RequestContext, grant: Grant, *, method: str, flow: str) -> None:
        METRICS.logins.labels(method=method, outcome="success").inc()
        if flow == "direct":
            # The code flow's tokens are counted at the code exchange (the token endpoint).
            METRICS.tokens_issued.labels(grant=method).inc()
        self._audit.emit(
            AuditEvent.LOGIN_SUCCESS,
            Outcome.SUCCESS,
            ctx=ctx,
            client_id=grant.client_id,
            subject=grant.sub,
            method=method,
            flow=flow,
            sid=grant.sid,
            scope=grant.scope,
            amr=list(grant.amr),
            dpop_bound=grant.jkt is not None,
        )

    def login_failed(
        self, ctx: RequestContext, exc: DidAuthError, *, method: str, flow: str, client_id: object
    ) -> None:
        METRICS.logins.labels(method=method, outcome="failure").inc()
        self._audit.emit(
            AuditEvent.LOGIN_FAILURE,
            Outcome.FAILURE,
            reason=exc.reason,
            ctx=ctx,
            client_id=client_id if isinstance(client_id, str) else None,
            status=exc.status,
            method=method,
            flow=flow,
        )
