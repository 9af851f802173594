"""What every route shares: the services (one typed dependency) and the no-store headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final

from fastapi import Depends, Request

from did_auth.core.flows.login import LoginResult
from did_auth.services import Services

__all__ = ["NO_STORE", "ServicesDep", "get_services", "token_headers"]

# RFC 6749 §5.1: token responses (and every answer carrying a credential or a decision about
# one) MUST NOT be cached.
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def get_services(request: Request) -> Services:
    """The application's services (set once by `create_app`)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def token_headers(result: LoginResult) -> Mapping[str, str]:
    """A login's answer: no caching (RFC 6749 §5.1) and the next DPoP server nonce when the
    server requires them (RFC 9449 §8)."""
    if result.dpop_nonce is None:
        return NO_STORE
    return {**NO_STORE, "DPoP-Nonce": result.dpop_nonce}
