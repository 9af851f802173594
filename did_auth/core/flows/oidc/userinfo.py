"""The UserInfo endpoint's answer (`GET`/`POST /userinfo`, OpenID Connect Core §5.3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["userinfo_claims"]


def userinfo_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """OIDC Core §5.3.2: the UserInfo response for the claims of a live access token we
    issued (checked by `did_auth.core.oauth.protected_resource`): its subject."""
    sub = str(claims["sub"])
    info: dict[str, Any] = {"sub": sub}
    if sub.startswith("did:pkh:eip155:"):
        info["preferred_username"] = sub.rsplit(":", 1)[-1]
    return info
