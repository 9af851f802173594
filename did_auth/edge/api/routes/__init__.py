"""The routes of the HTTP API, one module per area, each an `APIRouter` at module level.
Every handler takes the services through one typed dependency (`did_auth.edge.api.deps`) and
only translates: the decisions are in the core (`did_auth.core.flows`, `did_auth.core.oauth`)."""

from __future__ import annotations

from fastapi import APIRouter

from did_auth.edge.api.routes import (
    did,
    discovery,
    health,
    oidc,
    otp,
    passkeys,
    revocations,
    siwe,
    token,
    transactions,
    web,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    oidc.router,
    web.router,
    discovery.router,
    siwe.router,
    did.router,
    token.router,
    otp.router,
    passkeys.router,
    transactions.router,
    revocations.router,
    health.router,
)
