"""DID challenge-response login: `/did/challenge` and `/did/verify` (docs/interface.md,
"The DID proof").

1. `challenge(client_id, did)`: a server-generated, single-use challenge bound to the client,
   the DID and the audience, living `nonce_ttl` seconds. The DID's syntax is checked, and for
   did:ethr that its chain has a configured ERC-1056 registry; nothing is resolved yet.
2. `verify(DidRequest)`: the proof is a did-jwt style JWT (`did_auth.core.did.jwt_proof`). Checks
   that change no state come first: syntax, `alg`, the client's audience and chain, times,
   scope syntax, then the DID document at the current block and the signing key (an
   *authentication* key of that document: the controller, or a `sigAuth` delegate still
   valid now). The challenge is consumed last and atomically (compare-and-delete on its
   binding), so a rejected proof never burns it and two concurrent submissions of one proof
   cannot both pass. Step-up (`otp`) is checked after that, like SIWE logins.

The access token's `sub` is the DID as presented (a did:pkh in its canonical EIP-55 form),
`amr` is `["did"]` (+ `"otp"`). The second factor, rate limits and suspension are the
account's (`account_key`), shared by every chain and DID method of one EOA.
A key other than the DID's controller (a bot's delegate key) gets the client's narrower
`delegate_scopes`. The session (and token) carry `auth_key`, the signing key's id (CAIP-10
account for Ethereum keys), which `RevocationBook` indexes and `recheck` re-validates, so a
refresh can be refused once the key is revoked on chain.

Error codes: malformed input `invalid_request`; wrong or missing audience, reused or unknown
challenge, expired proof, `alg: none` or any other algorithm, a signature by no key of the
DID `invalid_grant`; a key that is not (or no longer) an authentication key of the DID (a
revoked or expired delegate, a `veriKey` delegate, a former owner) and a deactivated DID
`access_denied`; an unreachable chain `temporarily_unavailable`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from did_auth.config.settings import ClientConfig, Settings
from did_auth.core.clock import Clock
from did_auth.core.did.ethr import EthrDid
from did_auth.core.did.jwt_proof import check_claims, match_signer, parse_proof
from did_auth.core.did.pkh import PkhDid, pkh_did
from did_auth.core.did.resolver import ChainReader, DidResolver, EthrRegistries, ParsedDid
from did_auth.core.errors import AccessDenied, InvalidGrant, InvalidRequest
from did_auth.core.flows.guard import LoginGuard, OpenGuard
from did_auth.core.flows.issuance import issue_for_proof
from did_auth.core.flows.nonces import NonceBook
from did_auth.core.flows.otp import OtpService
from did_auth.core.flows.proof_request import ProofFlow, ProofRequest
from did_auth.core.flows.registry_checks import RegistryGate
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.policy.clients import check_chain, get_client
from did_auth.core.policy.scopes import parse_scope, resolve_audience, resolve_scopes
from did_auth.core.ports.store import Store
from did_auth.core.tokens.issue import Grant, TokenIssuer
from did_auth.core.tokens.sessions import SessionStore

__all__ = ["DidLogin", "DidRequest", "build_did_login", "challenge_binding"]


def challenge_binding(client_id: str, did: str, audience: str) -> str:
    """What a challenge is bound to: unambiguous (JSON), so no two triples collide."""
    return json.dumps(["did", client_id, did, audience], separators=(",", ":"))


@dataclass
class DidRequest(ProofRequest):
    proof: Any


def _check_did_chain(client: ClientConfig, did: ParsedDid) -> None:
    """A DID anchored on a chain (did:ethr, did:pkh eip155) needs that chain in the client's
    `chain_ids`, as SIWE messages do."""
    if isinstance(did, (EthrDid, PkhDid)):
        check_chain(client, did.chain_id)


@dataclass
class DidLogin(ProofFlow):
    challenges: NonceBook
    resolver: DidResolver
    issuer: TokenIssuer
    sessions: SessionStore
    revocations: RevocationBook | None = None

    async def challenge(
        self,
        client_id: object,
        did: object,
        audience: object = None,
        *,
        hold: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """A challenge for `did`; `hold(client_id, challenge)` (the outstanding cap) runs
        after the request is validated and before the challenge is stored."""
        client = get_client(self.settings, client_id)
        parsed = self.resolver.parse(did)
        _check_did_chain(client, parsed)
        aud = resolve_audience(client, audience, issuer=self.settings.issuer)

        async def held(challenge: str) -> None:
            if hold is not None:
                await hold(client.client_id, challenge)

        challenge = await self.challenges.issue(
            challenge_binding(client.client_id, parsed.did, aud), hold=held
        )
        return {"challenge": challenge, "audience": aud, "expires_in": self.challenges.ttl}

    async def verify(self, req: DidRequest) -> tuple[dict[str, Any], Grant]:
        client = get_client(self.settings, req.client_id)
        if not isinstance(req.proof, str) or not req.proof:
            raise InvalidRequest("proof is required (a compact JWT)")
        proof = parse_proof(req.proof)
        did = self.resolver.parse(proof.issuer)
        await self.guard.before_proof(req.ctx, client.client_id, did.did)
        _check_did_chain(client, did)
        # RFC 7519 §4.1.3: a JWT whose `aud` does not identify the recipient MUST be rejected.
        # The issuer (did-auth itself, for its own protected resources) is every client's.
        if proof.audience not in client.audiences and proof.audience != self.settings.issuer:
            raise InvalidGrant("proof `aud` is not an audience of this client", reason="aud")
        if req.audience is not None and req.audience != proof.audience:
            raise InvalidGrant("proof `aud` differs from the requested audience", reason="aud")
        now = self.clock.now()
        check_claims(proof, now=now, skew=self.settings.clock_skew)
        requested = parse_scope(req.scope)
        # A challenge this server issued for this client, DID and audience, not yet used:
        # read before resolving the DID (chain reads); consumed last, below.
        binding = challenge_binding(client.client_id, did.did, proof.audience)
        await self.challenges.peek(proof.nonce, binding)

        resolution = await self.resolver.resolve(did, now=now)
        if resolution.deactivated:
            raise AccessDenied("the DID is deactivated", reason="did_deactivated")
        try:
            method = match_signer(proof, resolution)
        except (InvalidGrant, AccessDenied):
            await self.guard.proof_failed(req.ctx, client.client_id, did.did)
            raise
        # Only a verified signature is charged to the DID's own budget.
        await self.guard.proof_verified(req.ctx, client.client_id, did.did)
        if self.registry is not None:
            # RevocationRegistry: suspended identity, proof issued before a revokeAll,
            # key revoked on chain.
            await self.registry.check_did_login(
                sub=did.did, issued_at=float(proof.issued_at), auth_key=method.key_id
            )
        scopes = resolve_scopes(
            self.settings,
            client,
            requested,
            delegate=method.delegate,
            step_up_ok=req.otp is not None,
        )
        # Last: single use, atomic. The binding carries client, DID and audience, so a
        # challenge issued for another client, DID or audience is refused and left intact.
        await self.challenges.consume(proof.nonce, binding)
        # One wallet, one subject: a did:pkh is issued in its canonical form (EIP-55
        # address), whatever letter case the proof used, as SIWE logins issue it.
        sub = pkh_did(did.chain_id, did.address) if isinstance(did, PkhDid) else did.did
        return await issue_for_proof(
            self,
            req,
            "did",
            sub,
            client.client_id,
            proof.audience,
            scopes,
            now,
            extra={"auth_key": method.key_id},
        )

    async def recheck(self, sub: str, auth_key: object) -> None:
        """Raise `access_denied` unless `auth_key` is still an authentication key of the DID
        `sub` now (for a refresh of a DID session: a revoked or expired delegate, a former
        owner or a deactivated DID must not keep a session alive). One RPC call when warm."""
        did = self.resolver.parse(sub)
        resolution = await self.resolver.resolve(did, now=self.clock.now())
        if resolution.deactivated:
            raise AccessDenied("the DID is deactivated", reason="did_deactivated")
        at = resolution.timestamp
        for m in resolution.document.authentication_methods():
            if m.key_id == auth_key and (m.valid_to is None or at is None or m.valid_to > at):
                return
        raise AccessDenied(
            "the key this session was authenticated with is no longer an authentication key "
            "of the DID",
            reason="not_authentication_key",
        )


def build_did_login(
    settings: Settings,
    store: Store,
    clock: Clock,
    issuer: TokenIssuer,
    sessions: SessionStore,
    otp: OtpService,
    readers: Mapping[int, ChainReader],
    guard: LoginGuard | None = None,
    revocations: RevocationBook | None = None,
    registries: Mapping[int, str] | None = None,
    registry: RegistryGate | None = None,
    late_registries: EthrRegistries | None = None,
) -> DidLogin:
    """Wire a `DidLogin`: challenges in `store` (kind "c", `nonce_ttl`), and a did:ethr
    resolver for every `[[chains]]` entry that has a reader and a registry (`did_registry`,
    or `registries[chain_id]`, e.g. an embedded chain's), and for the chains
    `late_registries` serves once they have started."""
    return DidLogin(
        settings=settings,
        clock=clock,
        challenges=NonceBook(store, ttl=settings.nonce_ttl, kind="c"),
        resolver=DidResolver.from_settings(settings, readers, registries, late_registries),
        issuer=issuer,
        sessions=sessions,
        otp=otp,
        guard=guard or OpenGuard(),
        revocations=revocations,
        registry=registry,
    )
