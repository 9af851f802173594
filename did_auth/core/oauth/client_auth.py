"""Client authentication: the one place that decides who is calling /token, /revoke,
/introspect and the direct-login endpoints (RFC 6749 §2.3, RFC 7521 §4.2, RFC 7523 §2.2, §3).

Methods (names of RFC 7591 §2 / RFC 8414):

- `client_secret_basic`: `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`
  (RFC 6749 §2.3.1, the form-urlencoding of Appendix B: `+` is a space);
- `client_secret_post`: `client_id` and `client_secret` request parameters;
- `private_key_jwt`: `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:
  jwt-bearer` and `client_assertion`, a JWT signed (ES256 or EdDSA) with a key of the client's
  registered `jwks`;
- `none`: a public client names itself with `client_id` only.

Clients are configured with a `client_secret_hash` (`sha256:<hex>`), `jwks` and/or an explicit
`token_endpoint_auth_method`; resource servers (introspection) with their `secret_hash`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus

from did_auth_verifier.jose import JoseError, PublicKey, parse_compact

from did_auth.config.settings import ClientConfig, ResourceServerConfig, Settings
from did_auth.core.clock import Clock
from did_auth.core.errors import InvalidClient, InvalidRequest
from did_auth.core.oauth.jwks import ASSERTION_ALGS, client_public_keys
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store

__all__ = [
    "AUTH_METHODS",
    "CLIENT_ASSERTION_TYPE",
    "RESOURCE_SERVER_AUTH_METHODS",
    "AuthenticatedClient",
    "ClientAuthenticator",
    "client_auth_methods",
    "hash_secret",
    "parse_basic",
]

BASIC: Final = "client_secret_basic"
POST: Final = "client_secret_post"
PRIVATE_KEY_JWT: Final = "private_key_jwt"
NONE: Final = "none"
AUTH_METHODS: Final = (BASIC, POST, PRIVATE_KEY_JWT, NONE)
RESOURCE_SERVER_AUTH_METHODS: Final = (BASIC, POST)
CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# A client assertion is accepted for at most this long after it was made (its `iat`), or,
# without `iat`, only if its `exp` is at most this far ahead: its `jti` is remembered for as
# long as it could be accepted (RFC 7523 §3 ¶7).
MAX_ASSERTION_LIFETIME: Final = 300
_MAX_ASSERTION_LENGTH: Final = 8192
_MAX_JTI: Final = 256


def hash_secret(secret: str) -> str:
    """The configured form of a client or resource-server secret: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _secret_matches(secret: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("sha256:"):
        return False
    # Compared in constant time (hashes of equal length; the secret's length does not leak).
    return hmac.compare_digest(hash_secret(secret), stored)


def parse_basic(authorization: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: "The client identifier is encoded using the
    application/x-www-form-urlencoded encoding algorithm per Appendix B, and the encoded
    value is used as the username; the client password is encoded using the same algorithm
    and used as the password" (then RFC 7617 Base64). Decoded here with the same rules, so
    `+` is a space and `%2B` a plus."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("unsupported client authentication scheme", reason="auth_scheme")
    try:
        raw = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidClient("malformed Basic credentials", basic=True) from None
    name, sep, secret = raw.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials", basic=True)
    name, secret = unquote_plus(name), unquote_plus(secret)
    if not name:
        raise InvalidClient("malformed Basic credentials", basic=True)
    return name, secret


def client_auth_methods(client: ClientConfig) -> frozenset[str]:
    """The methods a client may authenticate with (its configured one, else by credentials)."""
    if client.token_endpoint_auth_method is not None:
        return frozenset({client.token_endpoint_auth_method})
    methods: set[str] = set()
    if client.client_secret_hash:
        methods |= {BASIC, POST}
    if client.jwks:
        methods.add(PRIVATE_KEY_JWT)
    return frozenset(methods or {NONE})


@dataclass(frozen=True)
class AuthenticatedClient:
    """Who called, and how they proved it. Exactly one of `client` / `resource_server`."""

    client_id: str
    method: str
    client: ClientConfig | None = None
    resource_server: ResourceServerConfig | None = None

    @property
    def config(self) -> ClientConfig:
        if self.client is None:  # pragma: no cover - resource servers never reach grants
            raise InvalidClient("not an OAuth client")
        return self.client


@dataclass(frozen=True)
class _Presented:
    method: str
    client_id: str | None  # the id the credentials name (None: from the assertion)
    secret: str | None = None
    assertion: str | None = None


def _param(params: Mapping[str, object], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return value


class ClientAuthenticator:
    def __init__(self, settings: Settings, store: Store, clock: Clock, *, issuer: str) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._issuer = issuer
        self._token_endpoint = issuer + "/token"
        self._keys: dict[str, tuple[PublicKey, ...]] = {
            c.client_id: client_public_keys(c.jwks) for c in settings.clients if c.jwks
        }

    async def authenticate(
        self,
        authorization: str | None,
        params: Mapping[str, object],
        endpoint: str,
        *,
        resource_server: bool = False,
    ) -> AuthenticatedClient:
        """Authenticate the caller of `endpoint` (its full URL) from the `Authorization`
        header value and the request parameters (form fields or JSON members).

        Raises InvalidClient (401) when authentication fails, InvalidRequest (400) when the
        request is malformed (e.g. two methods at once).
        """
        presented = self._presented(authorization, params)
        basic = presented.method == BASIC
        form_id = _param(params, "client_id")
        claimed: str | None = presented.client_id
        if presented.method == PRIVATE_KEY_JWT:
            assert presented.assertion is not None
            claimed = _assertion_subject(presented.assertion)
        if not claimed:
            if resource_server:
                # RFC 6749 §5.2 invalid_client: "no client authentication included".
                raise InvalidClient("resource server credentials are required")
            # RFC 6749 §4.1.3, §2.3: client_id is REQUIRED when the client does not
            # authenticate otherwise.
            raise InvalidRequest("missing parameter: client_id")
        # RFC 7521 §4.2: client_id is optional with another method but, when present, MUST
        # identify the same client.
        if form_id not in (None, "", claimed):
            raise InvalidRequest("client_id does not match the authenticated client")
        if resource_server:
            return self._resource_server(claimed, presented, basic)
        client = self._settings.client(claimed)
        if client is None:
            raise InvalidClient(
                "unknown client" if presented.method == NONE else "client authentication failed",
                basic=basic,
                reason="client_unknown",
            )
        allowed = client_auth_methods(client)
        if presented.method not in allowed:
            if presented.method == NONE:
                # RFC 6749 §3.2.1: "Confidential clients or other clients issued client
                # credentials MUST authenticate with the authorization server".
                raise InvalidClient(
                    "this client must authenticate (" + ", ".join(sorted(allowed)) + ")",
                    reason="client_auth_missing",
                )
            raise InvalidClient(
                f"client authentication method {presented.method} is not allowed for this "
                "client (" + ", ".join(sorted(allowed)) + ")",
                basic=basic,
                reason="client_auth_method",
            )
        if presented.method in (BASIC, POST):
            assert presented.secret is not None
            if not _secret_matches(presented.secret, client.client_secret_hash):
                raise InvalidClient(
                    "client authentication failed", basic=basic, reason="client_secret"
                )
        elif presented.method == PRIVATE_KEY_JWT:
            assert presented.assertion is not None
            await self._check_assertion(client.client_id, presented.assertion, endpoint)
        return AuthenticatedClient(client.client_id, presented.method, client=client)

    # -- which method -------------------------------------------------------------------

    def _presented(self, authorization: str | None, params: Mapping[str, object]) -> _Presented:
        found: list[_Presented] = []
        if authorization:
            name, basic_secret = parse_basic(authorization)
            found.append(_Presented(BASIC, name, secret=basic_secret))
        secret = _param(params, "client_secret")
        if secret is not None:
            found.append(_Presented(POST, _param(params, "client_id"), secret=secret))
        assertion_type = _param(params, "client_assertion_type")
        assertion = _param(params, "client_assertion")
        if assertion_type is not None or assertion is not None:
            if assertion_type != CLIENT_ASSERTION_TYPE:
                raise InvalidClient(
                    "unsupported client_assertion_type", reason="client_assertion_type"
                )
            if not assertion:
                raise InvalidRequest("missing parameter: client_assertion")
            found.append(_Presented(PRIVATE_KEY_JWT, None, assertion=assertion))
        # RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
        # each request."
        if len(found) > 1:
            raise InvalidRequest(
                "more than one client authentication method in the request",
                reason="client_auth_multiple",
            )
        if found:
            return found[0]
        return _Presented(NONE, _param(params, "client_id"))

    # -- resource servers (RFC 7662 §2.1) ---------------------------------------------

    def _resource_server(
        self, name: str, presented: _Presented, basic: bool
    ) -> AuthenticatedClient:
        if presented.method not in RESOURCE_SERVER_AUTH_METHODS or presented.secret is None:
            raise InvalidClient(
                "resource server credentials are required (client_secret_basic or "
                "client_secret_post)",
                basic=basic,
                reason="rs_auth_missing",
            )
        for rs in self._settings.resource_servers:
            if rs.name == name and _secret_matches(presented.secret, rs.secret_hash):
                return AuthenticatedClient(name, presented.method, resource_server=rs)
        raise InvalidClient(
            "resource server authentication failed", basic=basic, reason="rs_secret"
        )

    # -- private_key_jwt (RFC 7523 §3) --------------------------------------------------

    async def _check_assertion(self, client_id: str, assertion: str, endpoint: str) -> None:
        # RFC 7523 §3.1: an invalid client assertion is answered with invalid_client.
        header, claims, signing_input, signature = _split(assertion)
        alg = header.get("alg")
        # RFC 7523 §3 ¶9: "The JWT MUST be digitally signed [...]. The authorization server
        # MUST reject JWTs with an invalid signature". Only asymmetric algorithms (no `none`,
        # no HS*: a shared secret is not a registered key here).
        if not isinstance(alg, str) or alg not in ASSERTION_ALGS:
            raise InvalidClient(
                "client assertion alg must be ES256 or EdDSA", reason="client_assertion_alg"
            )
        if "crit" in header:
            raise InvalidClient(
                "client assertion has unsupported critical headers", reason="client_assertion"
            )
        kid = header.get("kid")
        keys = [
            k
            for k in self._keys.get(client_id, ())
            if k.alg == alg and (kid is None or k.kid == kid)
        ]
        if not any(k.verify(signing_input, signature) for k in keys):
            raise InvalidClient(
                "client assertion signature is not valid for a registered key",
                reason="client_assertion_signature",
            )
        # RFC 7523 §3 ¶1-2 (and RFC 7521 §5.2): for client authentication, iss and sub MUST
        # both be the client_id.
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise InvalidClient(
                "client assertion iss and sub must be the client_id", reason="client_assertion"
            )
        # RFC 7523 §3 ¶3: "The authorization server MUST reject any JWT that does not
        # contain its own identity as the intended audience." The issuer identifier, the
        # token endpoint URL or the URL of the endpoint called.
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        accepted = {self._issuer, self._token_endpoint, endpoint}
        if not any(isinstance(a, str) and a in accepted for a in auds):
            raise InvalidClient(
                "client assertion aud is not this authorization server",
                reason="client_assertion_aud",
            )
        now = self._clock.now()
        skew = self._settings.clock_skew
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        # RFC 7523 §3 ¶4: "The JWT MUST contain an exp (expiration time) claim [...]. The
        # authorization server MUST reject any JWT with an expiration time that has passed,
        # subject to allowable clock skew between systems."
        if not _number(exp):
            raise InvalidClient("client assertion has no exp", reason="client_assertion_exp")
        assert isinstance(exp, int | float)
        if now > exp + skew:
            raise InvalidClient("client assertion expired", reason="client_assertion_exp")
        if nbf is not None and (not _number(nbf) or now + skew < nbf):  # type: ignore[operator]
            raise InvalidClient("client assertion not yet valid", reason="client_assertion_nbf")
        # RFC 7523 §3 ¶6: the server "MAY reject JWTs with an iat claim value that is
        # unreasonably far in the past": an assertion lives MAX_ASSERTION_LIFETIME at most.
        if iat is not None:
            if not _number(iat):
                raise InvalidClient("client assertion iat invalid", reason="client_assertion_iat")
            assert isinstance(iat, int | float)
            if iat > now + skew or now > iat + MAX_ASSERTION_LIFETIME + skew:
                raise InvalidClient(
                    "client assertion iat is too old or in the future",
                    reason="client_assertion_iat",
                )
            until = min(float(exp), float(iat) + MAX_ASSERTION_LIFETIME)
        else:
            if exp > now + MAX_ASSERTION_LIFETIME + skew:
                raise InvalidClient(
                    f"client assertion exp is more than {MAX_ASSERTION_LIFETIME} s ahead",
                    reason="client_assertion_exp",
                )
            until = float(exp)
        # RFC 7523 §3 ¶7: "The authorization server MAY ensure that JWTs are not replayed by
        # maintaining the set of used jti values for the length of time for which the JWT
        # would be considered valid". Here: required, single use, one atomic write.
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise InvalidClient("client assertion has no jti", reason="client_assertion_jti")
        digest = hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()
        ttl = max(1.0, until - now + skew + 1)
        if not await self._store.put(store_keys.client_assertion_jti(digest), b"1", ttl, nx=True):
            raise InvalidClient(
                "client assertion replayed (jti already used)", reason="client_assertion_replay"
            )


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _split(assertion: str) -> tuple[dict[str, object], dict[str, object], bytes, bytes]:
    """RFC 7521 §4.2: client_assertion "MUST contain a single assertion": one compact JWS."""
    if len(assertion) > _MAX_ASSERTION_LENGTH:
        raise InvalidClient("client assertion too long", reason="client_assertion")
    try:
        jws = parse_compact(assertion)
    except JoseError:
        raise InvalidClient(
            "client assertion is not a signed JWT", reason="client_assertion"
        ) from None
    return jws.header, jws.claims, jws.signing_input, jws.signature


def _assertion_subject(assertion: str) -> str:
    """The client an assertion claims to be (`sub`), read before its signature is checked
    only to find the keys to check it with."""
    _, claims, _, _ = _split(assertion)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidClient("client assertion has no sub", reason="client_assertion")
    return sub
