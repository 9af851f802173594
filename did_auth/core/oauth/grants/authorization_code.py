"""RFC 6749 §4.1.3 + RFC 7636 §4.6 + OIDC Core §3.1.3: `grant_type=authorization_code`
trades a single-use code (60 s, bound to the client, redirect_uri, PKCE challenge and, with
`dpop_jkt`, a DPoP key) for the tokens of the login it stands for plus an ID token.

DPoP (RFC 9449): with `dpop_jkt` in the authorization request the login's tokens are bound
to that key already and the exchange needs a proof made with it (§10). Without `dpop_jkt`
(OPTIONAL, §10; openid-client and oauth4webapi do not send it by default) a valid proof at
the exchange binds the tokens to the proof's key (§5): the session (its refresh tokens) is
bound and a fresh access token with `cnf.jkt` replaces the unbound one of the login."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from did_auth_verifier.jose import b64url_encode

from did_auth.config.settings import ClientConfig, Settings
from did_auth.core.clock import Clock
from did_auth.core.errors import InvalidGrant, InvalidRequest
from did_auth.core.flows.dpop_gate import DpopGate
from did_auth.core.flows.issuance import token_response
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.oauth.codes import (
    USED_TTL,
    VERIFIER_RE,
    code_keys,
    open_code,
    s256_challenge,
    used_marker,
    used_sid,
)
from did_auth.core.oauth.grants.base import TokenRequest
from did_auth.core.policy.scopes import token_ttl
from did_auth.core.ports.store import Store
from did_auth.core.tokens.cutoff import read_cutoff, revoked_before_covers
from did_auth.core.tokens.issue import TokenIssuer, encode_jwt
from did_auth.core.tokens.keys import KeyRing
from did_auth.core.tokens.sessions import SessionStore, session_grant

__all__ = ["AuthorizationCodeGrant"]

_UNKNOWN = "authorization code unknown, expired or already used"


@dataclass
class AuthorizationCodeGrant:
    settings: Settings
    clock: Clock
    store: Store
    keys: KeyRing
    sessions: SessionStore
    dpop: DpopGate
    token_issuer: TokenIssuer
    # Revokes the session of a replayed code or a failed exchange, and announces it on the
    # feed so that the access tokens already issued for it die at the resource servers too.
    revocations: RevocationBook
    grant_type: str = "authorization_code"

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    async def exchange(self, request: TokenRequest) -> dict[str, Any]:
        client = request.client.config
        code = request.required("code")
        redirect_uri = request.required("redirect_uri")
        verifier = request.required("code_verifier", " (PKCE)")
        if not VERIFIER_RE.fullmatch(verifier):
            raise InvalidRequest("code_verifier must be 43-128 unreserved characters")
        if len(code) > 128:
            raise InvalidGrant(_UNKNOWN)
        key, _ = code_keys(code)
        raw = await self.store.get(key)
        if raw is None:
            raise InvalidGrant(_UNKNOWN)
        spent = used_sid(raw)
        if spent is not None:
            await self._replayed(spent)
        record = open_code(code, raw)
        if record is None:
            raise InvalidGrant(_UNKNOWN)
        grant = record["grant"]
        # RFC 9449 §10: "the authorization server computes the JWK Thumbprint of the
        # proof-of-possession public key in the DPoP proof and verifies that it matches the
        # dpop_jkt parameter value in the authorization request. If they do not match, it
        # MUST reject the request" (invalid_dpop_proof, §5). A client registered with
        # require_dpop gets DPoP-bound tokens only, so it needs a proof with or without
        # dpop_jkt. Checked before the code is spent, so a `use_dpop_nonce` round trip does
        # not burn it.
        jkt = record["dpop_jkt"]
        got_jkt = await self.dpop.check(
            request.dpop_proofs,
            htm="POST",
            htu=request.htu,
            required=jkt is not None or client.require_dpop,
            bound_jkt=jkt,
        )
        # Spend the code: compare-and-set, so of two concurrent exchanges exactly one wins.
        if not await self.store.swap(key, raw, used_marker(str(grant["sid"])), USED_TTL):
            current = await self.store.get(key)
            spent = used_sid(current) if current is not None else None
            if spent is not None:
                await self._replayed(spent)
            raise InvalidGrant(_UNKNOWN)
        # From here on any failure also revokes the session the code stood for.
        problem: str | None = None
        if self.clock.now() >= float(record["exp"]):
            problem = "authorization code expired"
        elif record["client_id"] != client.client_id:
            # RFC 6749 §4.1.3: "ensure that the authorization code was issued to the
            # authenticated confidential client, or [...] to the public client".
            problem = "authorization code was issued to another client"
        elif record["redirect_uri"] != redirect_uri:
            problem = "redirect_uri does not match the authorization request"
        elif not hmac.compare_digest(s256_challenge(verifier), record["code_challenge"]):
            problem = "PKCE verification failed: code_verifier does not match"
        elif revoked_before_covers(await read_cutoff(self.store), int(grant["auth_time"])):
            # `did-auth sessions revoke-all`: the login behind the code is at or before the
            # global cut-off (RFC 6749 §5.2 invalid_grant: the grant "is ... revoked").
            problem = "the session of this code has been revoked"
        if problem is not None:
            await self.revocations.revoke_sid(str(grant["sid"]), reason="authorization_code")
            raise InvalidGrant(problem, reason="authorization_code")
        tokens: dict[str, Any] = dict(record["tokens"])
        if jkt is None and got_jkt is not None:
            # RFC 9449 §5: "the authorization server associates the issued access token with
            # the public key from the DPoP proof" ("A token_type of DPoP MUST be included in
            # the access token response"), and when it "issues a refresh token to a public
            # client that presents a valid DPoP proof at the token endpoint, the refresh
            # token MUST be bound to the respective public key" (bound here for every
            # client, as with dpop_jkt). The session holds the refresh-token binding; the
            # login's unbound access token is never handed out.
            session = await self.sessions.bind_key(str(grant["sid"]), got_jkt)
            bound = session_grant(session)
            access = self.token_issuer.issue(bound, token_ttl(self.settings, bound.scopes))
            tokens.update(token_response(access.token, access.ttl, tokens["refresh_token"], bound))
        else:
            live = await self.sessions.get(str(grant["sid"]))
            if live is None or live.revoked:
                raise InvalidGrant("the session of this code has been revoked")
        return self._token_response(client, record, grant, tokens)

    async def _replayed(self, sid: str) -> None:
        """RFC 6749 §4.1.2: "If an authorization code is used more than once, the
        authorization server MUST deny the request and SHOULD revoke (when possible) all
        tokens previously issued based on that authorization code": the session, and with
        its feed entry the access tokens (once: a further replay adds nothing)."""
        await self.revocations.revoke_sid(sid, reason="code_replay")
        raise InvalidGrant("authorization code already used", reason="code_replay")

    def _token_response(
        self,
        client: ClientConfig,
        record: dict[str, Any],
        grant: dict[str, Any],
        tokens: dict[str, Any],
    ) -> dict[str, Any]:
        key = self.keys.signing_key()
        now = int(self.clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant["sub"],
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": now,
            "exp": now + min(self.settings.access_token_ttl, 600),
            "auth_time": int(grant["auth_time"]),
            "amr": list(grant["amr"]),
            "sid": grant["sid"],
        }
        if record["nonce"] is not None:
            claims["nonce"] = record["nonce"]  # OIDC Core §3.1.3.6: echoed unmodified
        if key.alg == "ES256":
            # OIDC Core §3.3.2.11: left half of SHA-256 of the access token.
            half = hashlib.sha256(str(tokens["access_token"]).encode("ascii")).digest()[:16]
            claims["at_hash"] = b64url_encode(half)
        tokens["id_token"] = encode_jwt(
            claims, key, key.alg, {"typ": "JWT", "kid": key.kid}
        )
        tokens["scope"] = " ".join(
            dict.fromkeys([*record["scope"].split(" "), *str(tokens["scope"]).split(" ")])
        )
        return tokens
