"""`did-auth-gate`: did-auth's checks (RFC 9068 tokens, DPoP RFC 9449, scopes, RFC 9470
step-up, the revocation feed) at an API gateway, in front of an API in any language.

nginx `auth_request` (or Traefik / Caddy forward-auth) sends each request's headers to
`GET /check`; the gate answers 200 with the caller's identity in `X-Auth-*` headers, or
401 / 403 with the RFC 6750 / RFC 9449 `WWW-Authenticate` challenge, or 503 while it cannot
decide (stale revocation feed, unreachable JWKS or replay cache: fail closed).

Modules: `config` (gate.toml), `routes` (the allow-list), `check` (the decision, using
`TokenVerifier`), `replay` (single use across replicas through Redis: DPoP proof jtis,
withdrawal token jtis), `metrics`,
`server` (asyncio HTTP/1.1), `app` (assembly), `cli` (the console script). Standard library
and `cryptography` only; `redis` (extra `redis`) when `redis_url` is set.
"""

from __future__ import annotations

from did_auth_verifier.gate.config import ConfigError, GateConfig, load_config, parse_config
from did_auth_verifier.gate.routes import Route, RouteTable

__all__ = ["ConfigError", "GateConfig", "Route", "RouteTable", "load_config", "parse_config"]
