"""`GET /check`: one gateway sub-request in, one decision out.

The token and DPoP checks are the verifier's (`TokenVerifier.verify`: RFC 9068 access
token, RFC 9449 proof and key binding, revocation, scopes, RFC 9470 step-up); this module
finds the original request, picks the route and turns the verifier's errors into the
answers a gateway passes on:

    200  X-Auth-Subject, X-Auth-Scope, X-Auth-Client-Id, X-Auth-Session (when the token has a sid),
         X-Auth-Authorization-Details (a `withdrawal = true` route: the approved details)
    401  WWW-Authenticate: Bearer realm=..., DPoP algs=...                 (no credentials)
    401  WWW-Authenticate: Bearer error="invalid_token", ...               (RFC 6750 §3.1)
    401  WWW-Authenticate: DPoP error="invalid_dpop_proof", ..., algs=...  (RFC 9449 §7.1)
    401  WWW-Authenticate: ... error="insufficient_user_authentication", max_age=... (RFC 9470)
    403  WWW-Authenticate: ... error="insufficient_scope", scope=...      (RFC 6750 §3.1)
         (also a withdrawal route's token without withdrawal details for this audience)
    401  ... error="invalid_token" for a withdrawal token used before (single use)
    403  no route for the method and path, or the original request unknown (allow-list),
         or it carries the header family the configured `proxy` does not set
    503  Retry-After: revocation feed stale, JWKS or replay cache unavailable (fail closed)

A gateway's auth sub-request passes on only 2xx, 401 and 403 (nginx `auth_request` turns
anything else into 500), so `invalid_request` (RFC 6750 §3.1 says SHOULD 400) is answered
401 with `error="invalid_request"` in the challenge.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from did_auth_verifier.errors import (
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidDpopProof,
    InvalidRequest,
    InvalidToken,
    TemporarilyUnavailable,
    VerifierError,
)
from did_auth_verifier.gate.config import GateConfig, IpNetwork
from did_auth_verifier.gate.decisions import Decisions
from did_auth_verifier.gate.metrics import GateMetrics
from did_auth_verifier.gate.replay import PENDING, RedisReplay
from did_auth_verifier.gate.routes import Route, canonical_path
from did_auth_verifier.tokens import TokenVerifier, VerifiedToken
from did_auth_verifier.withdrawals import WithdrawalCheck, already_used

__all__ = ["Answer", "GateCheck", "Headers"]

Headers = Mapping[str, str]
"""Request headers by lower-case name; a name sent twice has its values joined by '\\n'."""

# RFC 9449 §7.1 / RFC 6750 §2.1: credentials are a token68 / b64token.
_TOKEN68: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6750 §3: error_description and scope values use %x20-21 / %x23-5B / %x5D-7E.
_UNSAFE_PARAM: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# What the gate passes upstream in a header: visible ASCII and spaces only.
_HEADER_SAFE: Final = re.compile(r"[\x20-\x7e]*")
_METHOD: Final = re.compile(r"[A-Z]{1,16}")


def _param(value: str, limit: int = 200) -> str:
    return _UNSAFE_PARAM.sub("?", value)[:limit]


@dataclass(slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    outcome: str = "allowed"
    reason: str = "ok"
    encoded: bytes | None = None  # the HTTP answer, once encoded (a remembered decision)


def _plain(value: Any) -> Any:
    """A frozen claim (MappingProxyType / tuple) as JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _denied(description: str, reason: str) -> Answer:
    body = json.dumps({"error": "access_denied", "error_description": description}).encode()
    return Answer(403, [("Content-Type", "application/json")], body, "forbidden", reason)


class GateCheck:
    def __init__(
        self,
        config: GateConfig,
        verifier: TokenVerifier,
        metrics: GateMetrics,
        *,
        replay: RedisReplay | None = None,
        decisions: Decisions[Answer] | None = None,
    ) -> None:
        self.config = config
        self.verifier = verifier
        self.metrics = metrics
        self.replay = replay
        self.decisions = decisions
        self._realm = _param(config.audience)
        self._algs = " ".join(verifier.dpop.allowed_algs)
        self._public_url = config.public_url
        self._routes = config.routes
        self._step_up_age = config.step_up_max_age
        self._proxies: tuple[IpNetwork, ...] = config.trusted_proxies
        self._trusted_cache: dict[str, bool] = {}
        # Withdrawal routes: the verifier's exact-details rule; used jtis in memory (one
        # replica), or in Redis through `replay` when redis_url is set.
        self._withdrawals = WithdrawalCheck(audience=config.audience, clock=verifier.clock)
        if config.proxy == "forward-auth":
            self._own_method, self._own_uri = "x-forwarded-method", "x-forwarded-uri"
            self._foreign = ("x-original-method", "x-original-uri")
            self._foreign_names = "X-Original-Method/X-Original-URI"
        else:
            self._own_method, self._own_uri = "x-original-method", "x-original-uri"
            self._foreign = ("x-forwarded-method", "x-forwarded-uri")
            self._foreign_names = "X-Forwarded-Method/X-Forwarded-Uri"

    def trusted(self, peer: str) -> bool:
        """Whether `peer` (an IP address) may tell the gate the original request."""
        known = self._trusted_cache.get(peer)
        if known is None:
            try:
                address = ipaddress.ip_address(peer.split("%", 1)[0])
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped
                known = any(address in net for net in self._proxies)
            except ValueError:
                known = False
            if len(self._trusted_cache) < 4096:
                self._trusted_cache[peer] = known
        return known

    # -- the check ------------------------------------------------------------------------

    def check(self, trusted: bool, headers: Headers) -> Answer | Awaitable[Answer]:
        """Decide; returns the answer, or an awaitable of it when I/O is due (a JWKS fetch
        offloaded to a thread, the shared DPoP replay check)."""
        if trusted and self.decisions is not None:
            remembered = self.remembered(headers)
            if remembered is not None:
                self.metrics.remembered += 1
                return remembered
        started = time.perf_counter()
        result = self._decide(trusted, headers, started)
        if type(result) is Answer:
            self.metrics.observe(result.outcome, result.reason, time.perf_counter() - started)
        return result

    def remembered(self, h: Headers) -> Answer | None:
        """The warm path: an allow decision remembered for this exact bearer credential,
        method and URI, still valid (see `decisions`), for a trusted peer's request."""
        if "dpop" in h or self.decisions is None:
            return None
        if self._foreign[0] in h or self._foreign[1] in h:
            return None
        uri, method = h.get(self._own_uri), h.get(self._own_method)
        authorization = h.get("authorization")
        if uri is None or method is None or authorization is None:
            return None
        return self.decisions.get((authorization, method, uri))

    def _decide(self, trusted: bool, h: Headers, started: float) -> Answer | Awaitable[Answer]:
        # The original method and URI come only from a trusted proxy; from anyone else these
        # headers are ignored, and without them there is no route to allow.
        if not trusted:
            return _denied("the original request is unknown (not a trusted proxy)",
                           "untrusted_peer")
        # Only the header family the configured proxy sets names the original request. The
        # other family can only come from the client (Traefik and Caddy forward the client's
        # own headers to /check; nginx replaces X-Original-* and drops X-Forwarded-*): a
        # request carrying it is refused, never read.
        if self._foreign[0] in h or self._foreign[1] in h:
            return _denied(f"{self._foreign_names} headers are not set by the configured "
                           f"proxy ({self.config.proxy})", "foreign_proxy_headers")
        uri, method = h.get(self._own_uri), h.get(self._own_method)
        if uri is None or method is None:
            return _denied("the original method and URI are required", "no_original_request")
        authorization = h.get("authorization")
        proof = h.get("dpop")
        key = None
        if proof is None and authorization is not None and self.decisions is not None:
            key = (authorization, method, uri)
        if "\n" in uri or "\n" in method:
            return _denied("the original method and URI are required", "no_original_request")
        if _METHOD.fullmatch(method) is None:
            return _denied("the original method is invalid", "bad_original_request")
        try:
            path = canonical_path(uri)
        except ValueError as exc:
            return _denied(f"ambiguous request path ({exc})", "ambiguous_path")
        route = self._routes.match(method, path)
        if route is None:
            return _denied(f"no route for {method} {path[:200]}", "no_route")

        if authorization is None:
            # RFC 6750 §3.1: "If the request lacks any authentication information [...], the
            # resource server SHOULD NOT include an error code or other error information."
            return Answer(401, [("WWW-Authenticate", self._bare_challenge())],
                          outcome="unauthenticated", reason="no_token")
        if "\n" in authorization:
            return self._error(InvalidRequest("multiple Authorization headers",
                                              reason="multiple_auth"), "bearer")
        scheme, _, credentials = authorization.partition(" ")
        scheme_l = scheme.lower()
        credentials = credentials.lstrip(" ")
        if scheme_l not in ("bearer", "dpop"):
            return Answer(401, [("WWW-Authenticate", self._bare_challenge())],
                          outcome="unauthenticated", reason="scheme")
        if not credentials:
            return self._error(InvalidRequest("missing access token", reason="no_token"),
                               scheme_l)
        if _TOKEN68.fullmatch(credentials) is None:
            return self._error(InvalidToken("malformed token", reason="malformed"), scheme_l)
        if proof is not None and "\n" in proof:
            # RFC 9449 §4.3 ¶1: "There is not more than one DPoP HTTP request header field."
            return self._error(InvalidDpopProof("more than one DPoP header",
                                                reason="dpop_multiple"), "dpop")
        # RFC 9449 §4.3 ¶9: htu is the URI of the request, from this API's configured
        # public URL (never the Host or X-Forwarded-Host headers, which the client chooses).
        htu = self._public_url + path if proof is not None else None
        verifier = self.verifier
        step_up = self._step_up_age if route.step_up else None
        pending: list[tuple[str, float]] = []
        decisions = self.decisions
        state = decisions.state() if key is not None and decisions is not None else (0, 0)

        def run() -> VerifiedToken:
            token = PENDING.set(pending)
            try:
                return verifier.verify(
                    credentials, required_scopes=route.scopes, dpop_proof=proof, htm=method,
                    htu=htu, scheme=scheme, step_up_max_age=step_up,
                )
            finally:
                PENDING.reset(token)

        if verifier.would_block(credentials):
            return self._offloaded(run, scheme_l, pending, started, route)
        try:
            verified = run()
        except VerifierError as exc:
            return self._error(exc, scheme_l)
        result = self._finish(verified, scheme_l, pending, route)
        if not isinstance(result, Answer):
            return self._observed(result, started)
        answer = result
        # A withdrawal route is decided afresh every time: its token serves once.
        if key is not None and self.decisions is not None and answer.status == 200 \
                and verified.dpop is None and not route.withdrawal:
            until = verified.exp
            if step_up is not None:
                auth_time = verified.auth_time
                until = min(until, (auth_time if auth_time is not None else 0) + step_up)
            self.decisions.put(key, answer, until, state)
        return answer

    async def _offloaded(self, run: Callable[[], VerifiedToken], scheme_l: str,
                         pending: list[tuple[str, float]], started: float,
                         route: Route) -> Answer:
        try:
            verified = await asyncio.get_running_loop().run_in_executor(None, run)
        except VerifierError as exc:
            answer = self._error(exc, scheme_l)
        else:
            result = self._finish(verified, scheme_l, pending, route)
            answer = result if isinstance(result, Answer) else await result
        self.metrics.observe(answer.outcome, answer.reason, time.perf_counter() - started)
        return answer

    async def _observed(self, pending: Awaitable[Answer], started: float) -> Answer:
        answer = await pending
        self.metrics.observe(answer.outcome, answer.reason, time.perf_counter() - started)
        return answer

    def _finish(self, verified: VerifiedToken, scheme_l: str,
                pending: list[tuple[str, float]], route: Route) -> Answer | Awaitable[Answer]:
        """After the token check: the route's withdrawal, then the single-use keys (DPoP
        proof jti, withdrawal token jti), in Redis when shared, else already in memory."""
        details: str | None = None
        use: tuple[str, float] | None = None
        if route.withdrawal:
            try:
                # RFC 9396 §2: the details say what the user approved; a wallet:withdraw
                # scope alone (an OTP step-up login) approves no withdrawal in particular.
                detail = self._withdrawals.details(verified)
                details = json.dumps([_plain(detail)], separators=(",", ":"),
                                     ensure_ascii=True)
                use = self._withdrawals.replay_key(verified)
            except VerifierError as exc:
                return self._error(exc, scheme_l)
        if self.replay is not None and (pending or use is not None):
            return self._consume(verified, scheme_l, pending, use, details)
        if use is not None and not self._withdrawals.replay.add_if_absent(*use):
            return self._error(already_used(), scheme_l)
        return self._allow(verified, scheme_l, details)

    async def _consume(self, verified: VerifiedToken, scheme_l: str,
                       pending: list[tuple[str, float]], use: tuple[str, float] | None,
                       details: str | None) -> Answer:
        assert self.replay is not None
        try:
            for key, ttl in pending:
                # RFC 9449 §11.1: the jti of an accepted proof is remembered for its window;
                # here across every replica sharing the Redis.
                if not await self.replay.add_if_absent(key, ttl):
                    return self._error(InvalidDpopProof("DPoP proof replayed",
                                                        reason="dpop_replay"), "dpop")
            # The withdrawal token's jti, once across every replica (SET NX), and never
            # from the decision cache.
            if use is not None and not await self.replay.add_if_absent(*use):
                return self._error(already_used(), scheme_l)
        except VerifierError as exc:
            return self._error(exc, scheme_l)
        return self._allow(verified, scheme_l, details)

    def _allow(self, verified: VerifiedToken, scheme_l: str,
               details: str | None = None) -> Answer:
        claims = verified.claims
        scope = claims.get("scope")
        headers = [
            ("X-Auth-Subject", verified.sub),
            ("X-Auth-Scope", scope if isinstance(scope, str) else ""),
            ("X-Auth-Client-Id", verified.client_id),
        ]
        if verified.sid is not None:
            headers.append(("X-Auth-Session", verified.sid))
        if details is not None:
            # What the wallet approved, for the API to compare with the request's body.
            headers.append(("X-Auth-Authorization-Details", details))
        for _, value in headers:
            if _HEADER_SAFE.fullmatch(value) is None:
                return self._error(InvalidToken("token claims cannot be passed on in headers",
                                                 reason="claims_not_header_safe"), scheme_l)
        headers.append(("Cache-Control", "no-store"))
        return Answer(200, headers)

    # -- challenges -----------------------------------------------------------------------

    def _bare_challenge(self) -> str:
        return f'Bearer realm="{self._realm}", DPoP algs="{self._algs}"'

    def _challenge(self, scheme_l: str, **params: str) -> str:
        parts = [f'realm="{self._realm}"']
        parts += [f'{name}="{_param(value)}"' for name, value in params.items()]
        if scheme_l == "dpop":
            parts.append(f'algs="{self._algs}"')
            return "DPoP " + ", ".join(parts)
        return "Bearer " + ", ".join(parts) + f', DPoP algs="{self._algs}"'

    def _error(self, exc: VerifierError, scheme_l: str) -> Answer:
        description = _param(exc.description)
        body = json.dumps({"error": exc.code, "error_description": description}).encode()
        headers = [("Content-Type", "application/json")]
        if isinstance(exc, TemporarilyUnavailable):
            headers.append(("Retry-After", "5"))
            return Answer(503, headers, body, "unavailable", exc.reason)
        params = {"error": exc.code, "error_description": description}
        if isinstance(exc, InsufficientScope):
            params["scope"] = " ".join(exc.required_scopes)
            status, outcome = 403, "forbidden"
        elif isinstance(exc, InsufficientUserAuthentication):
            if exc.max_age is not None:
                params["max_age"] = str(exc.max_age)
            status, outcome = 401, "unauthenticated"
        elif isinstance(exc, InvalidDpopProof):
            # RFC 9449 §7.1: "invalid_dpop_proof is used to indicate that the DPoP proof
            # itself was deemed invalid"; the challenge scheme is DPoP.
            scheme_l = "dpop"
            status, outcome = 401, "unauthenticated"
        elif exc.status == 403:
            status, outcome = 403, "forbidden"
        else:  # invalid_token, invalid_request (see the module docstring), anything else
            status, outcome = 401, "unauthenticated"
        headers.append(("WWW-Authenticate", self._challenge(scheme_l, **params)))
        headers.append(("X-Auth-Error", exc.code))
        return Answer(status, headers, body, outcome, exc.reason)
