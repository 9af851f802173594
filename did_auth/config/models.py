"""The typed tables of the configuration: `[[chains]]`, `[[clients]]`, `[[resource_servers]]`,
`[scopes]` and `[rate_limits]` (pydantic models, strict: unknown keys are errors). The
top-level `Settings` and the loading order (embedded defaults < TOML < environment) are in
`did_auth.config.settings`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from did_auth.config import check as config_check

#: The ceiling of every access-token lifetime (settings, per-scope `max_ttl`).
MAX_ACCESS_TOKEN_TTL = 3600


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainConfig(StrictModel):
    # Validation errors never echo input here: relayer_private_key is a secret.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    chain_id: int = Field(gt=0)
    # A JSON-RPC endpoint (http(s)://, ws(s)://) or "embedded" (an in-process development
    # chain). Required: an entry never silently becomes a test chain.
    rpc_url: Annotated[str, checked_by(config_check.rpc_url_problem)]
    did_registry: str | None = None
    revocation_registry: str | None = None
    # The other chain ids whose accounts this chain's RevocationRegistry governs (its own
    # chain id is implied): suspension and revokeAll() bind to the account (an EOA is the
    # same account on every EVM chain), not to the chain a login message names.
    revocation_registry_for: list[int] = Field(default_factory=list)
    confirmations: int = Field(default=0, ge=0, le=256)
    rpc_timeout: float = Field(default=5.0, gt=0, le=60)
    # Signature checks (EIP-1271 isValidSignature, EIP-6492 deployless validation) run
    # wallet-chosen code: each such eth_call carries this gas cap (the deployless EIP-6492
    # validator alone needs about 1,000,000; 16,777,216 is the EIP-7825 transaction cap that
    # Osaka nodes such as Hardhat apply to eth_call too) ...
    verify_gas_limit: int = Field(default=5_000_000, ge=1_000_000, le=16_777_216)
    # ... and this wall-clock cap (seconds). A reachable RPC that does not answer within it
    # is a failed proof (the wallet's code is too slow), an unreachable one is 503.
    verify_timeout: float = Field(default=2.0, gt=0, le=60)
    # Revocation watcher (did_auth.adapters.chain.watcher): seconds between polls of this chain, so
    # a revocation mined on chain is seen within a quarter second ...
    watch_interval: float = Field(default=0.25, gt=0, le=3600)
    # ... or at once: a WebSocket JSON-RPC endpoint of the same node, where the watcher
    # subscribes to new blocks (eth_subscribe "newHeads") and reads each when it comes.
    ws_url: Annotated[str | None, checked_by(config_check.ws_url_problem)] = None
    # Gasless revocations (POST /revocations/relay): the key that pays for relaying signed
    # revocations on this chain. A secret: never logged, never shown (repr=False).
    relayer_private_key: str | None = Field(
        default=None, repr=False, pattern=r"^(0x)?[0-9a-fA-F]{64}$"
    )
    # /readyz: the head block must be at most this old (seconds); None: not checked
    # (development chains mine only on demand).
    max_head_age: float | None = Field(default=None, gt=0)
    # The relayer key from a file instead (64 hex digits; relative paths are relative to the
    # config file's folder), or from DID_AUTH_CHAINS__<index>__RELAYER_PRIVATE_KEY.
    relayer_private_key_file: str | None = None

    @model_validator(mode="after")
    def _ws_url_needs_a_node(self) -> ChainConfig:
        if self.ws_url is not None and self.rpc_url == "embedded":
            raise ValueError(
                "ws_url: the embedded chain wakes its watcher on every block by itself; "
                "ws_url is a node's WebSocket endpoint"
            )
        return self


def raise_if(problem: str | None) -> None:
    if problem:
        raise ValueError(problem)


_V = TypeVar("_V")


def checked_by(problem: Callable[[str], str | None]) -> AfterValidator:
    """A field validator (for a string, an optional string or a list of strings) from a
    `config_check` problem function, so that loading and `check-config` word a problem
    the same way."""

    def check(value: _V) -> _V:
        for item in value if isinstance(value, list) else (value,):
            if isinstance(item, str):
                raise_if(problem(item))
        return value

    return AfterValidator(check)


class ClientConfig(StrictModel):
    client_id: str = Field(min_length=1, max_length=128)
    domains: list[str] = Field(min_length=1)
    uris: Annotated[list[str], checked_by(config_check.client_uri_problem)] = Field(
        min_length=1
    )
    chain_ids: list[int] = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)
    scopes: list[str] = Field(min_length=1)
    default_scopes: list[str] = Field(default_factory=list)
    # Scopes a DID delegate (bot key) may receive; None means the same as `scopes`.
    delegate_scopes: list[str] | None = None
    require_dpop: bool = False
    # Embedded demo: accept localhost / 127.0.0.1 on any port.
    any_localhost_port: bool = False
    # OpenID Connect / OAuth authorization-code clients (did_auth.core.flows.oidc):
    # redirect URIs compared exactly (RFC 6749 §3.1.2; loopback ports vary only with
    # any_localhost_port, RFC 8252 §7.3), an optional `sha256:<hex>` client secret hash
    # (confidential client, client_secret_basic), browser origins allowed by CORS, and a
    # display name for the sign-in page.
    redirect_uris: list[str] = Field(default_factory=list)
    client_secret_hash: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    origins: list[str] = Field(default_factory=list)
    name: str | None = Field(default=None, min_length=1, max_length=64)
    # The demo dApp (GET /demo/, served only when one client has `demo = true`) signs in as
    # this client and sends its access token only to `demo_api_origins`: exact lowercase
    # `scheme://host[:port]` origins, or `http://127.0.0.1:*` / `http://localhost:*` for a
    # loopback API on any port. They are also the page's CSP connect-src.
    demo: bool = False
    demo_api_origins: list[str] = Field(default_factory=list)
    # RFC 7523 private_key_jwt: the client's public keys, an inline JWK Set
    # `{keys = [{kty, crv, x[, y][, kid][, alg]}, ...]}` (ES256 P-256 or EdDSA Ed25519).
    jwks: dict[str, Any] | None = None
    # RFC 7591 §2 / RFC 8414: how the client authenticates at /token, /revoke and on direct
    # logins. None: client_secret_basic or client_secret_post with a client_secret_hash,
    # private_key_jwt with jwks (either with both), else none (a public client).
    token_endpoint_auth_method: (
        Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"] | None
    ) = None

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            from did_auth.core.oauth.jwks import client_public_keys

            client_public_keys(v)  # raises ValueError with the problem
        return v

    @model_validator(mode="after")
    def _auth_method_has_credentials(self) -> ClientConfig:
        method = self.token_endpoint_auth_method
        if method in ("client_secret_basic", "client_secret_post") and not self.client_secret_hash:
            raise ValueError(f"token_endpoint_auth_method {method} needs client_secret_hash")
        if method == "private_key_jwt" and not self.jwks:
            raise ValueError("token_endpoint_auth_method private_key_jwt needs jwks")
        if method == "none" and (self.client_secret_hash or self.jwks):
            # RFC 6749 §3.2.1: a client issued credentials MUST authenticate.
            raise ValueError("token_endpoint_auth_method none contradicts client credentials")
        return self

    @field_validator("redirect_uris")
    @classmethod
    def _redirect_uris(cls, v: list[str]) -> list[str]:
        return _each_valid(v, "redirect_uri", _redirect_uri_problem)

    @field_validator("origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        return _each_valid(v, "origin", _origin_problem)

    @field_validator("demo_api_origins")
    @classmethod
    def _demo_api_origins(cls, v: list[str]) -> list[str]:
        def problem(origin: str) -> str | None:
            if origin in _DEMO_LOOPBACK_ANY_PORT or _is_origin(origin):
                return None
            return f"{_ORIGIN_SHAPE} or one of {sorted(_DEMO_LOOPBACK_ANY_PORT)}"

        return _each_valid(v, "demo_api_origin", problem)

    @model_validator(mode="after")
    def _demo_api_origins_need_demo(self) -> ClientConfig:
        if self.demo_api_origins and not self.demo:
            raise ValueError("demo_api_origins is only for the demo client (demo = true)")
        return self

    @model_validator(mode="after")
    def _defaults_within_scopes(self) -> ClientConfig:
        extra = set(self.default_scopes) - set(self.scopes)
        if extra:
            raise ValueError(f"default_scopes not in scopes: {sorted(extra)}")
        if self.delegate_scopes is not None:
            extra = set(self.delegate_scopes) - set(self.scopes)
            if extra:
                raise ValueError(f"delegate_scopes not in scopes: {sorted(extra)}")
        return self


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
# A loopback trading API on any port (CSP source expressions; Chromium refuses `[::1]:*`).
_DEMO_LOOPBACK_ANY_PORT = frozenset({"http://127.0.0.1:*", "http://localhost:*"})


_ORIGIN_SHAPE = "must be lowercase scheme://host[:port]"


def _each_valid(values: list[str], what: str, problem: Callable[[str], str | None]) -> list[str]:
    """`values`, or a ValueError for the first of them `problem` finds fault with."""
    for value in values:
        found = problem(value)
        if found:
            raise ValueError(f"{what} {value[:100]!r}: {found}")
    return values


def _origin_problem(origin: str) -> str | None:
    return None if _is_origin(origin) else _ORIGIN_SHAPE


def _is_origin(origin: str) -> bool:
    """An origin as browsers send it (RFC 6454 §6.2): lower-case `scheme://host[:port]` with
    an http(s) scheme, a valid port, and nothing else (no user info, path, query, fragment
    or wildcard). The one rule for `origins` and `demo_api_origins`."""
    u = urlsplit(origin)
    try:
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return (
        u.scheme in ("http", "https")
        and bool(u.hostname)
        and f"{u.scheme}://{u.netloc}" == origin
        and "@" not in u.netloc
        and origin == origin.lower()
        and "*" not in origin
    )


def _redirect_uri_problem(uri: str) -> str | None:
    """RFC 6749 §3.1.2: absolute, no fragment; OAuth BCP (RFC 9700 §2.6): https, or http
    only for loopback hosts."""
    try:
        u = urlsplit(uri)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "not a valid URI"
    if u.scheme not in ("https", "http") or not u.hostname:
        return "must be an absolute http(s) URI"
    if u.scheme == "http" and u.hostname not in _LOOPBACK_HOSTS:
        return "plain http is allowed only for loopback hosts"
    if "#" in uri:
        return "must not contain a fragment"
    if u.username is not None or u.password is not None:
        return "must not contain user information"
    return None


class WebAuthnConfig(StrictModel):
    """`[webauthn]`: the relying party of passkeys (WebAuthn L2). Absent keys derive from
    the issuer: `rp_id` its host (`localhost` when the host is a loopback address: browsers
    refuse an IP address as RP ID), `origins` its origin (on loopback, the same port on
    `localhost`)."""

    rp_id: Annotated[str | None, checked_by(config_check.webauthn_rp_id_problem)] = None
    rp_name: str = Field(default="did-auth", min_length=1, max_length=64)
    origins: Annotated[list[str], checked_by(config_check.webauthn_origin_problem)] = Field(
        default_factory=list
    )
    # Seconds a registration or assertion challenge stays usable (single use).
    challenge_ttl: int = Field(default=300, ge=30, le=900)

    @model_validator(mode="after")
    def _origins_match_rp_id(self) -> WebAuthnConfig:
        if self.rp_id is not None:
            for origin in self.origins:
                raise_if(config_check.webauthn_origin_problem(origin, self.rp_id))
        return self

    def relying_party(self, issuer: str) -> tuple[str, list[str]] | None:
        """(rp_id, origins) for this issuer; None when none can be derived (an issuer on a
        non-loopback IP address and no `rp_id`): passkeys are then unavailable."""
        u = urlsplit(issuer)
        host = (u.hostname or "").lower()
        loopback = config_check.is_loopback_host(host)
        rp_id = self.rp_id or ("localhost" if loopback else host)
        if config_check.webauthn_rp_id_problem(rp_id):
            return None
        if self.origins:
            return rp_id, list(self.origins)
        port = f":{u.port}" if u.port is not None else ""
        origins = [f"{u.scheme}://{rp_id}{port}"] if loopback else [f"{u.scheme}://{u.netloc}"]
        ok = [o for o in origins if not config_check.webauthn_origin_problem(o, rp_id)]
        return (rp_id, ok) if ok else None


class ResourceServerConfig(StrictModel):
    name: str = Field(min_length=1)
    secret_hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class ScopeConfig(StrictModel):
    step_up: bool = False
    max_ttl: int | None = Field(default=None, gt=0, le=MAX_ACCESS_TOKEN_TTL)
    description: str | None = None


_RATE_RE = r"^\d+/[smhd]$"


class RateLimits(StrictModel):
    nonce_per_ip: str = Field(default="60/m", pattern=_RATE_RE)
    verify_per_ip: str = Field(default="30/m", pattern=_RATE_RE)
    verify_per_subject: str = Field(default="30/m", pattern=_RATE_RE)
    token_per_client: str = Field(default="600/m", pattern=_RATE_RE)
    introspect_per_client: str = Field(default="600/m", pattern=_RATE_RE)
    challenge_per_ip: str = Field(default="60/m", pattern=_RATE_RE)
    refresh_per_ip: str = Field(default="120/m", pattern=_RATE_RE)
    # Live (issued, unused, unexpired) nonces/challenges per client_id and IP.
    outstanding_nonces_per_ip: int = Field(default=100, ge=1, le=100_000)
    # Failed proofs back off the source (the IP; the IP + account pair), never the account.
    source_backoff_ip_threshold: int = Field(default=20, ge=1, le=100_000)
    source_backoff_pair_threshold: int = Field(default=5, ge=1, le=100_000)
    source_backoff_cap: float = Field(default=300.0, gt=0, le=86_400)
    # Contract-wallet signature checks (EIP-1271, EIP-6492) one client IP may have running
    # at once on the embedded chain (one EVM thread shared by every login); more are
    # refused at once with 429 slow_down instead of queueing. 0: no cap.
    contract_checks_in_flight_per_ip: int = Field(default=1, ge=0, le=10_000)
    # Open revocation streams (GET /revocations/stream) per worker process and per client
    # address; beyond them 503 / 429, and followers poll GET /revocations instead.
    revocation_streams: int = Field(default=1000, ge=1, le=100_000)
    revocation_streams_per_ip: int = Field(default=16, ge=1, le=100_000)
    # OTP step-up: per-account exponential backoff, base * 2**k seconds, capped.
    otp_free_attempts: int = Field(default=3, ge=0, le=100)
    otp_backoff_base: float = Field(default=2.0, gt=0, le=3600)
    otp_backoff_cap: float = Field(default=900.0, gt=0, le=86_400)


class SigningConfig(StrictModel):
    """`[signing]`: where the token-signing keys live. `sealed` (the default): generated in
    this process, sealed with AES-256-GCM under the key-encryption key and kept in the
    store. `pkcs11`: generated and used inside a PKCS#11 token (an HSM), never in this
    process; the key-encryption key is then an AES key in the token too. The PIN is never
    in the file: `pin_file` or `pin_env` (checked by `config_check.signing_problems`, which
    words every problem of this table)."""

    backend: Literal["sealed", "pkcs11"] = "sealed"
    # The PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so).
    module: str | None = None
    # CKA_LABEL of the token (32 characters at most, PKCS#11 CK_TOKEN_INFO.label).
    token_label: str | None = Field(default=None, min_length=1, max_length=32)
    pin_file: str | None = None
    pin_env: str | None = None
    # ES256 or EdDSA (the token must support CKM_EDDSA); None: the top-level signing_alg.
    alg: Literal["ES256", "EdDSA"] | None = None
    # CKA_LABEL of the token's AES key that seals TOTP seeds (created at the first start).
    kek_label: str = Field(default="did-auth-kek", min_length=1, max_length=64)
