"""Verification of did-auth access tokens (RFC 9068 JWT profile) at a resource server.

Every check below quotes the requirement it implements. Cold path (first sight of a token):
parse, header checks, key lookup, signature, claims; the result is cached until the token's
`exp` ("warm cache", keyed by the exact token string). Every call, warm or cold, re-checks
the time window, revocation, DPoP binding, scopes and step-up, so the cache only saves the
parsing and the signature verification.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any, Final

from did_auth_verifier.clock import Clock, SystemClock
from did_auth_verifier.dpop import DPoPProof, DPoPVerifier, NonceCheck
from did_auth_verifier.errors import (
    InsufficientScope,
    InsufficientUserAuthentication,
    InvalidDpopProof,
    InvalidToken,
    TemporarilyUnavailable,
    VerifierError,
)
from did_auth_verifier.jose import JoseError, b64url_decode, parse_json_object
from did_auth_verifier.jwks import JWKSCache
from did_auth_verifier.revocations import DEFAULT_MAX_STALENESS, FeedFollower, RevocationView
from did_auth_verifier.verified import TokenRecord, VerifiedToken

__all__ = ["TokenVerifier", "VerifiedToken"]

# RFC 9068 §4: "The resource server MUST verify that the "typ" header value is "at+jwt" or
# "application/at+jwt" and reject tokens carrying any other value." (media types compare
# case-insensitively, RFC 7515 §4.1.9)
_AT_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})
# Header parameters that point at keys or change processing in ways we do not support.
# RFC 8725 §3.10: blindly following "jku"/"x5u" "could result in server-side request forgery
# (SSRF) attacks"; an embedded "jwk"/"x5c" would let the token choose its own key (RFC 9068
# §4: "The resource server MUST use the keys provided by the authorization server");
# RFC 7515 §4.1.11: recipients MUST reject a JWS whose "crit" lists extensions they do not
# understand - we understand none.
_FORBIDDEN_HEADER: Final = frozenset({"jku", "x5u", "jwk", "x5c", "crit", "b64", "zip", "enc"})
_MAX_KID = 256


def _number(value: object) -> bool:
    return type(value) is int or type(value) is float


def _malformed(what: str) -> InvalidToken:
    return InvalidToken(f"malformed token: {what}", reason="malformed")


class TokenVerifier:
    """Verifies did-auth access tokens for one resource server (`audience`).

    `jwks` supplies the issuer's keys (never the token). `dpop` checks DPoP proofs (defaults
    to an in-memory replay cache on `clock`). `require_dpop=True` refuses tokens that are not
    DPoP-bound.

    Revocation is checked on every call, secure by default: unless `revocations` (any
    `RevocationView`) is given, the verifier follows the issuer's feed itself
    (`FeedFollower` on `{issuer}/revocations`: pushed through the `/revocations/stream`
    Server-Sent Events, or polled every `revocation_interval` seconds when the issuer has no
    stream or `revocation_stream=False`; in a daemon thread started by `start()` or by the
    first `verify()`), and refuses every token
    (`TemporarilyUnavailable`, 503) while its view is older than `max_staleness` seconds.
    `allow_insecure_http=True` lets it poll a plain-http issuer that is not on loopback.
    `follow_revocations=False` turns revocation checking off: UNSAFE, a revoked (stolen,
    logged-out, suspended) token is then accepted until it expires; only for tests or a
    deployment that checks revocation some other way.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks: JWKSCache,
        *,
        leeway: float = 30.0,
        clock: Clock | None = None,
        revocations: RevocationView | None = None,
        verified_cache_size: int = 10_000,
        dpop: DPoPVerifier | None = None,
        require_dpop: bool = False,
        max_token_length: int = 8192,
        follow_revocations: bool = True,
        max_staleness: float = DEFAULT_MAX_STALENESS,
        revocation_interval: float = 1.0,
        allow_insecure_http: bool = False,
        revocation_stream: bool = True,
    ) -> None:
        if not issuer or not audience:
            raise ValueError("issuer and audience are required")
        if leeway < 0 or leeway > 300:
            raise ValueError("leeway must be between 0 and 300 seconds")
        self._issuer = issuer
        self._audience = audience
        self._jwks = jwks
        self._leeway = float(leeway)
        self._clock: Clock = clock if clock is not None else SystemClock()
        # The follower this verifier owns (and starts lazily), when it made one.
        self._own_feed: FeedFollower | None = None
        self._feed_lock = threading.Lock()
        self._feed_pending = False
        if revocations is None and follow_revocations:
            try:
                revocations = self._own_feed = FeedFollower(
                    issuer,
                    interval=revocation_interval,
                    max_staleness=max_staleness,
                    clock=self._clock,
                    allow_insecure_http=allow_insecure_http,
                    stream=revocation_stream,
                )
            except ValueError as exc:
                raise ValueError(
                    f"cannot follow the revocation feed of {issuer!r}: {exc} (pass "
                    "revocations=..., or follow_revocations=False, which is unsafe)"
                ) from None
            self._feed_pending = True
        self._revocations = revocations
        self._dpop = dpop if dpop is not None else DPoPVerifier(clock=self._clock)
        self._require_dpop = require_dpop
        self._algs = frozenset(jwks.allowed_algs)
        self._max_len = max_token_length
        self._cache_size = max(0, verified_cache_size)
        self._cache: dict[str, TokenRecord] = {}
        self._cache_lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def audience(self) -> str:
        return self._audience

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def jwks(self) -> JWKSCache:
        return self._jwks

    @property
    def dpop(self) -> DPoPVerifier:
        return self._dpop

    @property
    def revocations(self) -> RevocationView | None:
        return self._revocations

    def cache_info(self) -> int:
        """Number of tokens currently in the warm cache."""
        return len(self._cache)

    def start(self) -> None:
        """Start following the revocation feed now (blocks for the first read), when this
        verifier follows it itself; otherwise a no-op. `verify()` does it on first use."""
        feed = self._own_feed
        if feed is None or not self._feed_pending:
            return
        with self._feed_lock:
            if self._feed_pending:
                feed.start()
                self._feed_pending = False

    def close(self) -> None:
        """Stop the revocation follower this verifier started (if any)."""
        feed = self._own_feed
        if feed is not None:
            with self._feed_lock:
                self._feed_pending = False
                feed.stop()

    def would_block(self, token: str) -> bool:
        """True when `verify(token)` would do network I/O (a JWKS fetch, the first read of
        the revocation feed), so that async callers can offload it."""
        if self._feed_pending:
            return True
        record = self._cache.get(token) if isinstance(token, str) else None
        if record is not None:
            return self._jwks.would_fetch(record.kid)
        try:
            header = parse_json_object(b64url_decode(token.split(".", 1)[0]))
        except (JoseError, AttributeError):
            return False
        kid = header.get("kid")
        return (
            isinstance(kid, str)
            and header.get("alg") in self._algs
            and (self._jwks.would_fetch(kid))
        )

    def verify(
        self,
        token: str,
        *,
        required_scopes: Collection[str] = (),
        dpop_proof: str | None = None,
        htm: str | None = None,
        htu: str | None = None,
        scheme: str | None = None,
        dpop_nonce: NonceCheck | None = None,
        step_up_max_age: float | None = None,
    ) -> VerifiedToken:
        """Verify `token` for this request; returns a `VerifiedToken` or raises.

        `scheme`: the `Authorization` scheme it came with (`"Bearer"`/`"DPoP"`; None when
        unknown). `dpop_proof`, `htm`, `htu`: the `DPoP` header, method and full URL of the
        request (required for DPoP-bound tokens). `step_up_max_age`: require `"otp"` in
        `amr` and `auth_time` no older than this many seconds (RFC 9470).

        Raises `InvalidToken` (401 invalid_token), `InvalidDpopProof`, `UseDpopNonce`,
        `InsufficientScope` (403), `InsufficientUserAuthentication` (401) or
        `TemporarilyUnavailable` (503, fail closed).
        """
        if self._feed_pending:
            self.start()
        now = self._clock.now()
        record = self._cache.get(token) if type(token) is str else None
        if record is None or self._jwks.get_key(record.kid) is not record.key:
            # Cold path; also taken again when the signing key left the JWKS (rotated out
            # or withdrawn), so a cached token never outlives its key.
            record = self._verify_cold(token, now)

        # RFC 9068 §4: "The current time MUST be before the time represented by the "exp"
        # claim. Implementers MAY provide for some small leeway [...] to account for clock
        # skew." Re-checked on every call, warm or cold.
        leeway = self._leeway
        if now >= record.exp + leeway:
            with self._cache_lock:  # all cache mutations happen under the lock
                self._cache.pop(token, None)
            raise InvalidToken("token expired", reason="expired")
        if record.nbf is not None and record.nbf > now + leeway:
            raise InvalidToken("token not yet valid", reason="not_yet_valid")
        if record.iat > now + leeway:
            raise InvalidToken("token issued in the future", reason="iat_future")

        # Revocation feed: jti, sid, or sub with auth_time <= revoked-before.
        if self._revocations is not None:
            try:
                revoked = self._revocations.is_revoked(record.claims)
            except VerifierError:
                raise
            except Exception as exc:  # a broken view must not let tokens through
                raise TemporarilyUnavailable(
                    "revocation status unavailable", reason="revocations_unavailable"
                ) from exc
            if revoked:
                raise InvalidToken("token revoked", reason="revoked")

        token_type, proof = self._check_binding(
            record, token, scheme, dpop_proof, htm, htu, dpop_nonce
        )

        # RFC 6750 §3.1 insufficient_scope: "The request requires higher privileges than
        # provided by the access token." (403, with the scope needed)
        if required_scopes:
            scopes = record.scopes
            for scope in required_scopes:
                if scope not in scopes:
                    raise InsufficientScope(
                        f"scope {scope!r} required",
                        required=required_scopes,
                        reason="insufficient_scope",
                    )

        if step_up_max_age is not None:
            self._check_step_up(record, now, step_up_max_age)
        return VerifiedToken(record, token_type, proof)

    # -- cold path ------------------------------------------------------------------------

    def _verify_cold(self, token: str, now: float) -> TokenRecord:
        if type(token) is not str or not token:
            raise _malformed("not a string")
        if len(token) > self._max_len:
            raise _malformed("too long")
        try:
            raw = token.encode("ascii")
        except UnicodeEncodeError:
            raise _malformed("not ASCII") from None
        segments = raw.split(b".")
        if len(segments) == 5:
            raise InvalidToken("encrypted tokens are not supported", reason="malformed")
        if len(segments) != 3:
            raise _malformed("not a compact JWS")
        h64, p64, s64 = segments
        if not s64:
            # RFC 9068 §4: the resource server "MUST validate the signature of all incoming
            # JWT access tokens" - an unsecured JWT (stripped signature) never passes.
            raise InvalidToken("token is not signed", reason="unsigned")
        try:
            header = parse_json_object(b64url_decode(h64))
        except JoseError:
            raise _malformed("bad header") from None

        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _AT_TYPS:
            raise InvalidToken("token typ must be at+jwt", reason="typ")
        # RFC 9068 §4: "The resource server MUST reject any JWT in which the value of "alg"
        # is "none"." RFC 8725 §3.1: callers specify the supported algorithms and the
        # library "MUST NOT use any other algorithms". The allow-list is the algorithms of
        # the issuer's keys (ES256, EdDSA): "none", HS256 & co. are refused before any key
        # lookup (so they cannot trigger a JWKS fetch either).
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algs:
            raise InvalidToken("token alg not allowed", reason="alg")
        forbidden = _FORBIDDEN_HEADER.intersection(header)
        if forbidden:
            raise InvalidToken(
                f"header parameter {sorted(forbidden)[0]!r} not accepted", reason="header"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID:
            raise InvalidToken("token has no kid", reason="kid")
        key = self._jwks.get_key(kid)  # InvalidToken (unknown) / TemporarilyUnavailable
        # RFC 8725 §3.1: "The library MUST ensure that the "alg" or "enc" header specifies the
        # same algorithm that is used for the cryptographic operation." The key's algorithm
        # comes from its JWK `alg`; a header naming another algorithm is refused.
        if key.alg != alg:
            raise InvalidToken("token alg does not match its key", reason="alg_mismatch")
        try:
            signature = b64url_decode(s64)
        except JoseError:
            raise _malformed("bad signature encoding") from None
        # RFC 9068 §4: "The resource server MUST validate the signature of all incoming JWT
        # access tokens according to [RFC7515] using the algorithm specified in the JWT
        # "alg" Header Parameter."
        # ECDSA signature malleability: (r, n - s) verifies whenever (r, s) does, which would
        # give every token a second valid spelling (a fresh cache key, a fresh string for any
        # deny-list keyed on the token). did-auth signs with low s (as BIP-62 / EIP-2 do for
        # secp256k1); a high-s twin is refused as non-canonical.
        if not key.verify(raw[: len(h64) + 1 + len(p64)], signature, canonical_only=True):
            raise InvalidToken("token signature is invalid", reason="signature")
        try:
            claims = parse_json_object(b64url_decode(p64))
        except JoseError:
            raise _malformed("bad payload") from None
        cnf_jkt = self._check_claims(claims, now)
        record = TokenRecord(claims, kid=kid, alg=alg, key=key, cnf_jkt=cnf_jkt)
        self._remember(token, record)
        return record

    def _check_claims(self, claims: dict[str, Any], now: float) -> str | None:
        leeway = self._leeway
        # RFC 9068 §4: "The issuer identifier for the authorization server [...] MUST exactly
        # match the value of the "iss" claim."
        if claims.get("iss") != self._issuer:
            raise InvalidToken("token issuer mismatch", reason="iss")
        # RFC 9068 §4: "The resource server MUST validate that the "aud" claim contains a
        # resource indicator value corresponding to an identifier the resource server
        # expects for itself. The JWT access token MUST be rejected if "aud" does not
        # contain a resource indicator of the current resource server as a valid audience."
        aud = claims.get("aud")
        if isinstance(aud, str):
            aud_ok = aud == self._audience
        elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
            aud_ok = self._audience in aud
        else:
            aud_ok = False
        if not aud_ok:
            raise InvalidToken("token audience mismatch", reason="aud")
        # RFC 9068 §2.2: exp, iat, sub, client_id, jti are REQUIRED.
        exp = claims.get("exp")
        iat = claims.get("iat")
        if not _number(exp):
            raise InvalidToken("token has no exp", reason="exp_missing")
        if not _number(iat):
            raise InvalidToken("token has no iat", reason="iat_missing")
        assert isinstance(exp, int | float) and isinstance(iat, int | float)
        if now >= exp + leeway:
            raise InvalidToken("token expired", reason="expired")
        if iat > now + leeway:
            raise InvalidToken("token issued in the future", reason="iat_future")
        nbf = claims.get("nbf")
        if nbf is not None:
            if not _number(nbf):
                raise _malformed("nbf")
            assert isinstance(nbf, int | float)
            # RFC 7519 §4.1.5: the JWT "MUST NOT be accepted for processing" before nbf.
            if nbf > now + leeway:
                raise InvalidToken("token not yet valid", reason="not_yet_valid")
        for name in ("sub", "client_id", "jti"):
            value = claims.get(name)
            if not isinstance(value, str) or not value:
                raise InvalidToken(f"token has no {name}", reason=f"{name}_missing")
        scope = claims.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise _malformed("scope")
        sid = claims.get("sid")
        if sid is not None and not isinstance(sid, str):
            raise _malformed("sid")
        auth_time = claims.get("auth_time")
        if auth_time is not None and not _number(auth_time):
            raise _malformed("auth_time")
        amr = claims.get("amr")
        if amr is not None and not (isinstance(amr, list) and all(isinstance(m, str) for m in amr)):
            raise _malformed("amr")
        cnf = claims.get("cnf")
        if cnf is None:
            return None
        # RFC 9449 §6: "Resource servers MUST be able to reliably identify whether an access
        # token is DPoP-bound". A confirmation we cannot check (e.g. mTLS x5t#S256) must not
        # degrade into a bearer token.
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not isinstance(jkt, str) or not jkt:
            raise InvalidToken("unsupported token confirmation method", reason="cnf")
        return jkt

    def _remember(self, token: str, record: TokenRecord) -> None:
        if self._cache_size == 0:
            return
        cache = self._cache
        with self._cache_lock:
            if token not in cache:
                while len(cache) >= self._cache_size:
                    # Insertion order ~ issue order ~ expiry order: drop the oldest.
                    del cache[next(iter(cache))]
            cache[token] = record

    # -- per-request checks ---------------------------------------------------------------

    def _check_binding(
        self,
        record: TokenRecord,
        token: str,
        scheme: str | None,
        dpop_proof: str | None,
        htm: str | None,
        htu: str | None,
        nonce: NonceCheck | None,
    ) -> tuple[str, DPoPProof | None]:
        scheme_l = scheme.lower() if scheme is not None else None
        if scheme_l not in (None, "bearer", "dpop"):
            raise InvalidToken("unsupported authorization scheme", reason="scheme")
        if record.cnf_jkt is None:
            if scheme_l == "dpop":
                raise InvalidToken("token is not DPoP-bound", reason="not_dpop_bound")
            if self._require_dpop:
                raise InvalidToken("a DPoP-bound token is required", reason="dpop_required")
            return "Bearer", None
        # RFC 9449 §7.2: "such a protected resource MUST reject a DPoP-bound access token
        # received as a bearer token".
        if scheme_l == "bearer":
            raise InvalidToken(
                "DPoP-bound token presented as a bearer token", reason="dpop_bound_as_bearer"
            )
        # RFC 9449 §7.1: "For such an access token, a resource server MUST check that a DPoP
        # proof was also received in the DPoP header field of the HTTP request, check the
        # DPoP proof according to the rules in Section 4.3, and check that the public key of
        # the DPoP proof matches the public key to which the access token is bound".
        if dpop_proof is None:
            raise InvalidDpopProof("DPoP proof required", reason="dpop_missing")
        if htm is None or htu is None:
            raise ValueError("htm and htu are required to check a DPoP proof")
        proof = self._dpop.verify_proof(
            dpop_proof, htm=htm, htu=htu, access_token=token, nonce=nonce, jkt=record.cnf_jkt
        )
        return "DPoP", proof

    def _check_step_up(self, record: TokenRecord, now: float, max_age: float) -> None:
        # RFC 9470 §3: insufficient_user_authentication when "the authentication event
        # associated with the access token presented with the request does not meet the
        # authentication requirements of the protected resource"; here: a second factor
        # ("otp" in amr) within `max_age` seconds.
        if "otp" not in record.amr:
            raise InsufficientUserAuthentication(
                "a second factor is required", max_age=int(max_age), reason="step_up_amr"
            )
        auth_time = record.auth_time
        if auth_time is None or now - auth_time > max_age or auth_time > now + self._leeway:
            raise InsufficientUserAuthentication(
                "a more recent authentication is required",
                max_age=int(max_age),
                reason="step_up_age",
            )
