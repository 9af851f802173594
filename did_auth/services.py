"""Wiring: builds the store, keys, issuer and flows from Settings (the I/O edge)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from did_auth.adapters.chain.client import ChainRegistry
from did_auth.adapters.chain.did_reader import ChainDidRegistries
from did_auth.adapters.chain.registries import RegistryReader, Relayer
from did_auth.adapters.chain.wallet_signatures import ChainSignatureChecker
from did_auth.adapters.chain.watcher_pool import WatcherPool
from did_auth.adapters.monitoring.audit import AuditLog
from did_auth.adapters.monitoring.logins import LoginEvents
from did_auth.adapters.monitoring.metrics import METRICS
from did_auth.adapters.store.factory import open_store
from did_auth.config.settings import Settings
from did_auth.core.clock import Clock, SystemClock
from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.flows.did_login import DidLogin, build_did_login
from did_auth.core.flows.dpop_gate import DpopGate
from did_auth.core.flows.login import Logins
from did_auth.core.flows.nonces import NonceBook
from did_auth.core.flows.oidc import OidcProvider
from did_auth.core.flows.otp import OtpService
from did_auth.core.flows.otp_enrolment import OtpEnrolment
from did_auth.core.flows.passkeys import Passkeys, WebAuthnFactor
from did_auth.core.flows.registry_checks import RegistryGate
from did_auth.core.flows.revocation_stream import RevocationStreams
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.flows.second_factor import OtpFactor, SecondFactors
from did_auth.core.flows.signatures import SignatureChecker
from did_auth.core.flows.siwe_login import SiweLogin
from did_auth.core.flows.withdrawals import TransactionApprovals
from did_auth.core.oauth.client_auth import ClientAuthenticator
from did_auth.core.oauth.grants.authorization_code import AuthorizationCodeGrant
from did_auth.core.oauth.grants.refresh_token import RefreshTokenGrant
from did_auth.core.oauth.introspection import IntrospectionEndpoint
from did_auth.core.oauth.protected_resource import ProtectedResource
from did_auth.core.oauth.revocation import RevocationEndpoint
from did_auth.core.oauth.token_checks import TokenChecks
from did_auth.core.oauth.token_endpoint import TokenEndpoint
from did_auth.core.policy.abuse import AbuseGuard
from did_auth.core.policy.backoff import OtpBackoff
from did_auth.core.ports.store import Store
from did_auth.core.tokens.issue import TokenIssuer
from did_auth.core.tokens.kek import Sealer, SecretSealer, load_kek
from did_auth.core.tokens.keys import KeyRing
from did_auth.core.tokens.local_check import LocalTokenCheck
from did_auth.core.tokens.sessions import SessionStore
from did_auth.core.tokens.signing import SealedBackend, SigningBackend

if TYPE_CHECKING:
    from did_auth.adapters.hsm import Hsm

__all__ = ["Services", "build_services"]

log = logging.getLogger("did_auth")


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: Store
    keys: KeyRing
    issuer: TokenIssuer
    sessions: SessionStore
    nonces: NonceBook
    signatures: SignatureChecker
    local: LocalTokenCheck
    dpop: DpopGate
    otp: OtpService
    siwe: SiweLogin
    audit: AuditLog
    guard: AbuseGuard
    revocations: RevocationBook
    chains: ChainRegistry
    # OAuth endpoints: one client authenticator for /token, /revoke (RFC 7009), /introspect
    # (RFC 7662) and the direct logins; the token endpoint dispatches to one handler per
    # grant_type.
    client_auth: ClientAuthenticator
    token_endpoint: TokenEndpoint
    revocation: RevocationEndpoint
    introspection: IntrospectionEndpoint
    # The access-token check of did-auth's own protected resources (/userinfo, /otp/*).
    resource: ProtectedResource
    # RevocationRegistry reads (login/refresh/introspection checks, relay) and
    # the chain watchers (background tasks between start() and close()).
    registry_reader: RegistryReader | None = None
    registry: RegistryGate | None = None
    watchers: WatcherPool | None = None
    # DID challenge-response logins (did:ethr on every started chain with a registry).
    did: DidLogin | None = None
    # Who may enrol or replace a second factor (POST /otp/enroll).
    otp_enrolment: OtpEnrolment | None = None
    # [signing] backend = "pkcs11": the token (its sessions are closed with the services).
    hsm: Hsm | None = None

    async def start(self) -> None:
        await self.chains.start()
        if self.watchers is not None:
            self.watchers.start()
        try:
            await self.keys.load()
        except TemporarilyUnavailable as exc:
            # Start anyway and answer 503 until the store (or the signing token) is back
            # (fail closed, recover by itself): the first request that can reach it loads.
            what = "signing token" if exc.reason == "hsm_down" else "store"
            log.warning("%s unreachable at start; signing keys load when it returns", what)

    async def close(self) -> None:
        try:
            if "revocation_streams" in self.__dict__:  # built (cached_property) on first use
                await self.revocation_streams.close()
            if self.watchers is not None:
                await self.watchers.stop()  # first: they release their leases in the store
            if self.registry_reader is not None:
                await self.registry_reader.close()
            await self.chains.close()
        finally:
            await self.store.close()
            self.audit.close()
            if self.hsm is not None:
                self.hsm.close()

    # The HTTP-facing use cases, built from the services above on first use.

    @cached_property
    def passkeys(self) -> Passkeys:
        """Passkeys (WebAuthn L2): registration, removal, assertion as a second factor."""
        return Passkeys(settings=self.settings, store=self.store, clock=self.clock, otp=self.otp)

    @cached_property
    def oidc(self) -> OidcProvider:
        """The OIDC code flow's endpoints: authorize, completion, sign-in page."""
        return OidcProvider(
            settings=self.settings,
            clock=self.clock,
            store=self.store,
            keys=self.keys,
            sessions=self.sessions,
            siwe=self.siwe,
            revocations=self.revocations,
        )

    @cached_property
    def revocation_streams(self) -> RevocationStreams:
        """GET /revocations/stream: the feed pushed as Server-Sent Events."""
        rl = self.settings.rate_limits
        return RevocationStreams(
            self.revocations,
            max_streams=rl.revocation_streams,
            max_per_ip=rl.revocation_streams_per_ip,
        )

    @cached_property
    def login(self) -> Logins:
        """One login use case per proof kind (did_auth.core.flows.login)."""
        return Logins(
            settings=self.settings,
            gate=self.guard,
            nonces=self.nonces,
            client_auth=self.client_auth,
            refresh_keys=self.keys.refresh,
            dpop=self.dpop,
            siwe_login=self.siwe,
            did_login=self.did,
            codes=self.oidc.codes,
            recorder=LoginEvents(self.audit),
        )

    @cached_property
    def transactions(self) -> TransactionApprovals:
        """Withdrawal approvals (POST /transactions/nonce, /transactions/authorize): an
        EIP-712 signature of the session's account plus a second factor."""
        return TransactionApprovals(
            settings=self.settings,
            clock=self.clock,
            nonces=NonceBook(self.store, ttl=self.settings.nonce_ttl, kind="tx"),
            signatures=self.signatures,
            issuer=self.issuer,
            # RFC 8176 amr: TOTP "otp"; a passkey "hwk" / "swk" (did_auth.core.flows.passkeys).
            factors=SecondFactors(
                {"otp": OtpFactor(self.otp), "webauthn": WebAuthnFactor(self.passkeys)}
            ),
            gate=self.guard,
            guard=self.guard,
        )

    @cached_property
    def relayer(self) -> Relayer:
        """Relays signed revocations on chain (POST /revocations/relay): one per process,
        it serialises each chain's relayer nonce."""
        return Relayer(self.chains, self.registry_reader or RegistryReader(self.chains))


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    signatures: SignatureChecker | None = None,
    audit: AuditLog | None = None,
) -> Services:
    clock = clock or SystemClock()
    store = store or open_store(settings.redis_url)
    hsm: Hsm | None = None
    sealer: SecretSealer
    backend: SigningBackend
    if settings.signing.backend == "pkcs11":
        # Keys and the key-encryption key inside a PKCS#11 token: no KEK file, no key here.
        from did_auth.adapters.hsm import open_hsm

        hsm = open_hsm(settings.signing)
        sealer, backend, dpop_secret = hsm.sealer, hsm.backend, hsm.dpop_secret()
    else:
        kek = load_kek(
            file=settings.key_encryption_key_file,
            b64=settings.key_encryption_key,
            create_default=None if settings.embedded else "kek.bin",
        )
        sealer = Sealer(kek)
        backend, dpop_secret = SealedBackend(sealer), kek
    keys = KeyRing(
        store, backend, clock, alg=settings.key_alg, max_token_ttl=settings.access_token_ttl
    )
    issuer = TokenIssuer(keys, clock, issuer=settings.issuer)
    sessions = SessionStore(
        store,
        clock,
        refresh_ttl=settings.refresh_token_ttl,
        max_lifetime=settings.session_max_lifetime,
        grace=settings.refresh_grace,
    )
    nonces = NonceBook(store, ttl=settings.nonce_ttl)
    chains = ChainRegistry(settings)
    checker = signatures or ChainSignatureChecker(chains)
    dpop = DpopGate(store, clock, secret=dpop_secret, require_nonce=settings.dpop_nonce)
    rl = settings.rate_limits
    otp = OtpService(
        store,
        sealer,
        clock,
        issuer_name="did-auth",
        backoff=OtpBackoff(
            store,
            base=rl.otp_backoff_base,
            cap=rl.otp_backoff_cap,
            free_attempts=rl.otp_free_attempts,
        ),
    )
    audit = audit or AuditLog.from_setting(settings.audit_log)
    revocations = RevocationBook(
        store,
        sessions,
        clock,
        access_ttl=settings.access_token_ttl,
        session_lifetime=settings.session_max_lifetime,
    )
    guard = AbuseGuard(settings, store, audit, METRICS)
    registry_reader = RegistryReader(chains)
    registry = RegistryGate(registry_reader, revocations)
    local = LocalTokenCheck(
        keys, store, sessions, clock, issuer=settings.issuer, session_check=registry
    )
    did = build_did_login(
        settings,
        store,
        clock,
        issuer,
        sessions,
        otp,
        {},
        guard=guard,
        revocations=revocations,
        registry=registry,
        late_registries=ChainDidRegistries(chains),
    )
    client_auth = ClientAuthenticator(settings, store, clock, issuer=settings.issuer)
    token_endpoint = TokenEndpoint(
        issuer=settings.issuer,
        authenticator=client_auth,
        guard=guard,
        handlers=[
            RefreshTokenGrant(
                settings, clock, issuer, sessions, dpop, revocations, registry,
                did_recheck=did.recheck,
            ),
            AuthorizationCodeGrant(
                settings, clock, store, keys, sessions, dpop, issuer, revocations
            ),
        ],
        refresh_keys=keys.refresh,
        audit=audit,
        counters=METRICS,
    )
    # RFC 7009 /revoke and RFC 7662 /introspect: an authenticated caller hands in a token.
    token_checks = TokenChecks(
        issuer=settings.issuer,
        authenticator=client_auth,
        refresh_keys=keys.refresh,
        sessions=sessions,
        local=local,
    )
    revocation = RevocationEndpoint(
        checks=token_checks,
        guard=guard,
        revocations=revocations,
        store=store,
        clock=clock,
        audit=audit,
    )
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        keys=keys,
        issuer=issuer,
        sessions=sessions,
        nonces=nonces,
        signatures=checker,
        local=local,
        dpop=dpop,
        otp=otp,
        siwe=SiweLogin(
            settings,
            clock,
            otp,
            nonces,
            checker,
            issuer,
            sessions,
            revocations,
            guard=guard,
            registry=registry,
        ),
        audit=audit,
        guard=guard,
        revocations=revocations,
        chains=chains,
        client_auth=client_auth,
        token_endpoint=token_endpoint,
        revocation=revocation,
        introspection=IntrospectionEndpoint(checks=token_checks, guard=guard),
        resource=ProtectedResource(
            local=local, dpop=dpop, refresh_keys=keys.refresh, issuer=settings.issuer
        ),
        registry_reader=registry_reader,
        registry=registry,
        watchers=WatcherPool(chains, store, sessions, revocations, audit),
        did=did,
        hsm=hsm,
        otp_enrolment=OtpEnrolment(
            settings, clock, otp, nonces, checker, guard=guard, registry=registry,
            # A passkey is a current factor too: the first TOTP of such an account needs it.
            passkeys=Passkeys(settings=settings, store=store, clock=clock, otp=otp),
        ),
    )
