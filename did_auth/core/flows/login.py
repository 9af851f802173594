"""One login use case per proof kind: the whole decision of a login, from the request as
the HTTP edge read it to the tokens and the record of the outcome.

| proof                               | route                    | use case                    |
| ----------------------------------- | ------------------------ | --------------------------- |
| EIP-4361 nonce                      | POST /siwe/nonce         | `Logins.siwe_nonce`         |
| EIP-4361 message + signature        | POST /siwe/verify        | `Logins.siwe`               |
| DID challenge                       | POST /did/challenge      | `Logins.did_challenge`      |
| DID proof (did-jwt)                 | POST /did/verify         | `Logins.did`                |
| EIP-4361 message on the hosted page | POST /authorize/complete | `Logins.authorization_code` |

The FastAPI routes and the ASGI hot path (`did_auth.edge.api.hotpath`) both call these; they
only read the request and write the answer. A direct login (`/siwe/verify`, `/did/verify`):

1. preamble: the per-IP verify budget; the client (a confidential client authenticates,
   as at the token endpoint: RFC 6749 §3.2.1); fresh signing keys; the DPoP proof (RFC
   9449 §5: its key's thumbprint binds the tokens; required for a `require_dpop` client);
2. the proof's own checks and the tokens (`SiweLogin.verify`, `DidLogin.verify`);
3. postamble: the outcome, success or refusal, is counted and audited once
   (`LoginRecorder`), with the same fields (`method`: siwe, did; `flow`: direct,
   authorization_code) for every proof kind and flow.

The code flow's completion has the same shape; its client authenticates at the code
exchange and its DPoP key is the one of the parked request (`dpop_jkt`). What a refusal
also is (rate limited, a replay) is audited by the one error mapping of the HTTP edge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from did_auth.config.settings import Settings
from did_auth.core.errors import DidAuthError, TemporarilyUnavailable
from did_auth.core.flows.did_login import DidLogin, DidRequest
from did_auth.core.flows.dpop_gate import DpopGate
from did_auth.core.flows.guard import RequestContext
from did_auth.core.flows.nonces import NonceBook
from did_auth.core.flows.siwe_login import SiweLogin, SiweRequest
from did_auth.core.oauth.client_auth import ClientAuthenticator
from did_auth.core.policy.clients import get_client
from did_auth.core.tokens.issue import Grant

__all__ = [
    "AuthorizationCodeLogin",
    "CodeIssuer",
    "DidProofLogin",
    "LoginGate",
    "LoginRecorder",
    "LoginResult",
    "Logins",
    "SiweProofLogin",
]


class LoginGate(Protocol):
    """The abuse budgets around a login (`did_auth.core.policy.abuse.AbuseGuard`)."""

    async def nonce_request(self, ctx: RequestContext, *, kind: str = "nonce") -> None: ...

    async def hold_nonce(self, ctx: RequestContext, client_id: str, nonce: str) -> None: ...

    async def verify_request(self, ctx: RequestContext) -> None: ...


class LoginRecorder(Protocol):
    """Counts and audits each login's outcome.

    Implemented by `did_auth.adapters.monitoring.logins.LoginEvents`.
    """

    def login_succeeded(
        self, ctx: RequestContext, grant: Grant, *, method: str, flow: str
    ) -> None: ...

    def login_failed(
        self, ctx: RequestContext, exc: DidAuthError, *, method: str, flow: str, client_id: object
    ) -> None: ...


class CodeIssuer(Protocol):
    """The code flow's completion (`did_auth.core.flows.oidc.AuthorizationCodeIssuance`)."""

    async def complete(
        self, request_id: object, message: object, signature: object, ctx: RequestContext,
        *, otp: object = None,
    ) -> tuple[str, Grant]: ...


@dataclass(kw_only=True)
class ClientCredentials:
    """What a direct login request carries besides the proof request: how its client
    authenticates and the DPoP proof that binds its tokens."""

    # the DPoP header values (RFC 9449 §4.3: at most one)
    dpop_proofs: list[str] = field(default_factory=list)
    authorization: str | None = None  # the Authorization header (client_secret_basic)
    client_secret: str | None = None  # client_secret_post (RFC 6749 §2.3.1)
    client_assertion_type: str | None = None  # private_key_jwt (RFC 7523 §2.2)
    client_assertion: str | None = None


# A direct login's request is its proof's request (its `jkt` set by the preamble) with
# the client's credentials: the proof's checks read it as it came, no copy per login.


@dataclass
class SiweProofLogin(SiweRequest, ClientCredentials):
    pass


@dataclass
class DidProofLogin(DidRequest, ClientCredentials):
    pass


_Direct = TypeVar("_Direct", SiweProofLogin, DidProofLogin)


@dataclass(kw_only=True, slots=True)
class AuthorizationCodeLogin:
    request_id: Any
    message: Any
    signature: Any
    otp: Any = None  # the second factor of a step-up scope in the parked request
    ctx: RequestContext = field(default_factory=RequestContext)


@dataclass(slots=True)
class LoginResult:
    response: dict[str, Any]  # the token response (RFC 6749 §5.1)
    grant: Grant
    dpop_nonce: str | None = None  # a fresh server nonce for the next proof (RFC 9449 §8)


@dataclass
class Logins:
    settings: Settings
    gate: LoginGate
    nonces: NonceBook
    client_auth: ClientAuthenticator
    refresh_keys: Callable[[], Awaitable[None]]
    dpop: DpopGate
    siwe_login: SiweLogin
    did_login: DidLogin | None
    codes: CodeIssuer
    recorder: LoginRecorder

    # --- EIP-4361 -------------------------------------------------------------------------

    async def siwe_nonce(self, client_id: object, ctx: RequestContext) -> dict[str, Any]:
        """A single-use nonce for the client (EIP-4361 `nonce`), within the per-IP budget
        and the cap of nonces one client + IP may hold outstanding."""
        await self.gate.nonce_request(ctx)
        client = get_client(self.settings, client_id)

        async def hold(nonce: str) -> None:  # the outstanding cap, before anything is stored
            await self.gate.hold_nonce(ctx, client.client_id, nonce)

        nonce = await self.nonces.issue(client.client_id, hold=hold)
        return {"nonce": nonce, "expires_in": self.nonces.ttl}

    async def siwe(self, req: SiweProofLogin) -> LoginResult:
        return await self._direct(req, "siwe", "/siwe/verify", self.siwe_login.verify)

    # --- DID proofs -----------------------------------------------------------------------

    def _did(self) -> DidLogin:
        if self.did_login is None:  # pragma: no cover - always wired by build_services
            raise TemporarilyUnavailable("DID logins are not available", reason="did_unwired")
        return self.did_login

    async def did_challenge(
        self, client_id: object, did: object, audience: object, ctx: RequestContext
    ) -> dict[str, Any]:
        await self.gate.nonce_request(ctx, kind="challenge")
        did_login = self._did()

        async def hold(client: str, challenge: str) -> None:  # before it is stored
            await self.gate.hold_nonce(ctx, client, challenge)

        return await did_login.challenge(client_id, did, audience=audience, hold=hold)

    async def did(self, req: DidProofLogin) -> LoginResult:
        return await self._direct(req, "did", "/did/verify", self._did().verify)

    # --- the code flow's sign-in page -----------------------------------------------------

    async def authorization_code(self, req: AuthorizationCodeLogin) -> tuple[str, Grant]:
        """The wallet signed on the hosted page: the redirect URL carrying a fresh code
        (RFC 6749 §4.1.2). The tokens are counted as issued at the code exchange."""
        try:
            await self.gate.verify_request(req.ctx)
            await self.refresh_keys()
            url, grant = await self.codes.complete(
                req.request_id, req.message, req.signature, req.ctx, otp=req.otp
            )
        except DidAuthError as exc:
            # The client is known from the parked request only: not named before it is found.
            self.recorder.login_failed(
                req.ctx, exc, method="siwe", flow="authorization_code", client_id=None
            )
            raise
        self.recorder.login_succeeded(req.ctx, grant, method="siwe", flow="authorization_code")
        return url, grant

    # --- shared ---------------------------------------------------------------------------

    async def _preamble(self, req: SiweProofLogin | DidProofLogin, path: str) -> str | None:
        """The per-IP budget, the client and its authentication, fresh keys, and the DPoP
        proof; returns the proof key's thumbprint (None without a proof)."""
        await self.gate.verify_request(req.ctx)
        get_client(self.settings, req.client_id)
        endpoint = self.settings.issuer + path
        # RFC 6749 §3.2.1: "Confidential clients or other clients issued client credentials
        # MUST authenticate with the authorization server" - here as at the token endpoint.
        credentials = {
            "client_id": req.client_id,
            "client_secret": req.client_secret,
            "client_assertion_type": req.client_assertion_type,
            "client_assertion": req.client_assertion,
        }
        authenticated = await self.client_auth.authenticate(
            req.authorization, credentials, endpoint
        )
        await self.refresh_keys()
        return await self.dpop.check(
            req.dpop_proofs,
            htm="POST",
            htu=endpoint,
            required=authenticated.config.require_dpop,
        )

    async def _direct(
        self,
        req: _Direct,
        method: str,
        path: str,
        verify: Callable[[_Direct], Awaitable[tuple[dict[str, Any], Grant]]],
    ) -> LoginResult:
        """A direct login of one proof kind: preamble, the proof's checks and tokens, and
        the outcome recorded once, success or refusal."""
        try:
            req.jkt = await self._preamble(req, path)
            response, grant = await verify(req)
        except DidAuthError as exc:
            self.recorder.login_failed(
                req.ctx, exc, method=method, flow="direct", client_id=req.client_id
            )
            raise
        self.recorder.login_succeeded(req.ctx, grant, method=method, flow="direct")
        nonce = self.dpop.new_nonce() if self.settings.dpop_nonce else None
        return LoginResult(response, grant, nonce)
