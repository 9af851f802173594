"""The one discovery document, served at `/.well-known/openid-configuration` (OpenID
Connect Discovery 1.0 §3) and `/.well-known/oauth-authorization-server` (RFC 8414 §2)."""

from __future__ import annotations

from typing import Any

from did_auth.config.settings import Settings
from did_auth.core.oauth.client_auth import AUTH_METHODS, RESOURCE_SERVER_AUTH_METHODS
from did_auth.core.oauth.jwks import ASSERTION_ALGS

__all__ = ["discovery_document"]


def discovery_document(settings: Settings) -> dict[str, Any]:
    iss = settings.issuer
    scopes = sorted({s for c in settings.clients for s in c.scopes} | {"openid"})
    return {
        "issuer": iss,
        "authorization_endpoint": f"{iss}/authorize",
        "token_endpoint": f"{iss}/token",
        "userinfo_endpoint": f"{iss}/userinfo",
        "jwks_uri": f"{iss}/.well-known/jwks.json",
        "revocation_endpoint": f"{iss}/revoke",
        "introspection_endpoint": f"{iss}/introspect",
        "siwe_nonce_endpoint": f"{iss}/siwe/nonce",
        "siwe_verify_endpoint": f"{iss}/siwe/verify",
        "did_challenge_endpoint": f"{iss}/did/challenge",
        "did_verify_endpoint": f"{iss}/did/verify",
        "revocation_feed_endpoint": f"{iss}/revocations",
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        # RFC 8414 §2: the grant types the token endpoint accepts (SIWE and DID proofs are
        # exchanged at their own endpoints, not at /token).
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [settings.signing_alg],
        # RFC 8414 §2: client authentication at each endpoint (RFC 6749 §2.3, RFC 7523).
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": list(RESOURCE_SERVER_AUTH_METHODS),
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "azp",
            "sid",
            "at_hash",
            "preferred_username",
        ],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        "siwe_chain_ids_supported": sorted({i for c in settings.clients for i in c.chain_ids}),
        "did_methods_supported": ["ethr", "pkh", "key"],
        # RFC 9396 §10: "authorization_details_types_supported: JSON array containing the
        # authorization details types the AS supports".
        "authorization_details_types_supported": ["withdrawal"],
        "transaction_nonce_endpoint": f"{iss}/transactions/nonce",
        "transaction_authorize_endpoint": f"{iss}/transactions/authorize",
    }
