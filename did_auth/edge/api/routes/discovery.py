"""Metadata: the one discovery document at both well-known names (OpenID Connect
Discovery 1.0 §4, RFC 8414 §3) and the signing keys (`/.well-known/jwks.json`, RFC 7517)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from did_auth.core.oauth.discovery import discovery_document
from did_auth.edge.api.deps import ServicesDep

__all__ = ["router"]

router = APIRouter()


@router.get("/.well-known/openid-configuration")
async def openid_configuration(svc: ServicesDep) -> dict[str, Any]:
    return discovery_document(svc.settings)


@router.get("/.well-known/oauth-authorization-server")
async def oauth_metadata(svc: ServicesDep) -> dict[str, Any]:
    return discovery_document(svc.settings)


@router.get("/.well-known/jwks.json")
async def jwks(svc: ServicesDep) -> Response:
    await svc.keys.refresh()
    return JSONResponse(svc.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})
