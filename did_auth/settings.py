"""One typed settings object: embedded defaults < TOML file < DID_AUTH_* environment."""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from did_auth import config_check
from did_auth.errors import ConfigError

__all__ = [
    "ChainConfig",
    "ClientConfig",
    "RateLimits",
    "ResourceServerConfig",
    "ScopeConfig",
    "Settings",
    "load_settings",
]

MAX_ACCESS_TOKEN_TTL = 3600
ENV_PREFIX = "DID_AUTH_"
# DID_AUTH_CONFIG, DID_AUTH_DEPLOYER_KEY, DID_AUTH_WORKERS are not configuration keys.
NOT_CONFIG = config_check.NOT_CONFIG_VARIABLES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainConfig(_Strict):
    # Validation errors never echo input here: relayer_private_key is a secret.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    chain_id: int = Field(gt=0)
    # A JSON-RPC endpoint (http(s)://, ws(s)://) or "embedded" (an in-process development
    # chain). Required: an entry never silently becomes a test chain.
    rpc_url: str
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
    # Revocation watcher (did_auth.chain.watcher): seconds between polls of this chain.
    watch_interval: float = Field(default=1.0, gt=0, le=3600)
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

    @field_validator("rpc_url")
    @classmethod
    def _rpc_url(cls, v: str) -> str:
        _raise_if(config_check.rpc_url_problem(v))
        return v


def _raise_if(problem: str | None) -> None:
    if problem:
        raise ValueError(problem)


def _store_has_sentinel() -> bool:
    """redis+sentinel:// is accepted once the Redis store supports it."""
    try:
        from did_auth.store import redis as redis_store  # lazy: only with a redis_url
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return bool(getattr(redis_store, "SENTINEL_SCHEMES", ()))


class ClientConfig(_Strict):
    client_id: str = Field(min_length=1, max_length=128)
    domains: list[str] = Field(min_length=1)
    uris: list[str] = Field(min_length=1)
    chain_ids: list[int] = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)
    scopes: list[str] = Field(min_length=1)
    default_scopes: list[str] = Field(default_factory=list)
    # Scopes a DID delegate (bot key) may receive; None means the same as `scopes`.
    delegate_scopes: list[str] | None = None
    require_dpop: bool = False
    # Embedded demo: accept localhost / 127.0.0.1 on any port.
    any_localhost_port: bool = False
    # OpenID Connect / OAuth authorization-code clients (did_auth.flows.oidc):
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
            from did_auth.oauth.jwks import client_public_keys

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
        for uri in v:
            problem = _redirect_uri_problem(uri)
            if problem:
                raise ValueError(f"redirect_uri {uri[:100]!r}: {problem}")
        return v

    @field_validator("uris")
    @classmethod
    def _uris(cls, v: list[str]) -> list[str]:
        for uri in v:
            _raise_if(config_check.client_uri_problem(uri))
        return v

    @field_validator("origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            u = urlsplit(origin)
            if (
                u.scheme not in ("http", "https")
                or not u.hostname
                or u.path
                or u.query
                or u.fragment
                or u.username is not None
                or origin != origin.lower()
            ):
                raise ValueError(f"origin {origin[:100]!r}: must be lowercase scheme://host[:port]")
        return v

    @field_validator("demo_api_origins")
    @classmethod
    def _demo_api_origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if origin in _DEMO_LOOPBACK_ANY_PORT:
                continue
            u = urlsplit(origin)
            try:
                u.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                u = urlsplit("invalid:")
            if (
                u.scheme not in ("http", "https")
                or not u.hostname
                or f"{u.scheme}://{u.netloc}" != origin
                or "@" in u.netloc
                or origin != origin.lower()
                or "*" in origin
            ):
                raise ValueError(
                    f"demo_api_origin {origin[:100]!r}: must be lowercase scheme://host[:port] "
                    f"or one of {sorted(_DEMO_LOOPBACK_ANY_PORT)}"
                )
        return v

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


class ResourceServerConfig(_Strict):
    name: str = Field(min_length=1)
    secret_hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class ScopeConfig(_Strict):
    step_up: bool = False
    max_ttl: int | None = Field(default=None, gt=0, le=MAX_ACCESS_TOKEN_TTL)
    description: str | None = None


_RATE_RE = r"^\d+/[smhd]$"


class RateLimits(_Strict):
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
    # OTP step-up: per-account exponential backoff, base * 2**k seconds, capped.
    otp_free_attempts: int = Field(default=3, ge=0, le=100)
    otp_backoff_base: float = Field(default=2.0, gt=0, le=3600)
    otp_backoff_cap: float = Field(default=900.0, gt=0, le=86_400)


class Settings(_Strict):
    issuer: str = "http://127.0.0.1:8000"
    redis_url: str | None = None
    access_token_ttl: int = Field(default=300, gt=0, le=MAX_ACCESS_TOKEN_TTL)
    refresh_token_ttl: int = Field(default=86400, gt=0, le=90 * 86400)
    session_max_lifetime: int = Field(default=30 * 86400, gt=0)
    signing_alg: Literal["ES256", "EdDSA"] = "ES256"
    key_encryption_key_file: str | None = None
    # Base64 of 32 bytes; an alternative to the file (e.g. DID_AUTH_KEY_ENCRYPTION_KEY).
    key_encryption_key: str | None = Field(default=None, repr=False)
    trusted_proxies: list[str] = Field(default_factory=list)
    audit_log: str = "stdout"
    nonce_ttl: int = Field(default=300, gt=0, le=3600)
    clock_skew: int = Field(default=60, ge=0, le=600)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    # Seconds a connection has to send its complete request line and headers (each
    # request of a keep-alive connection too); then it is closed (slow-header clients).
    header_timeout: float = Field(default=10.0, gt=0, le=300)
    refresh_grace: int = Field(default=10, ge=0, le=120)
    # Step-up scopes need an authentication (auth_time) at most this old.
    step_up_max_age: int = Field(default=300, gt=0, le=3600)
    # RFC 9449 §8: demand server-provided nonces in DPoP proofs.
    dpop_nonce: bool = False
    # GET /metrics (Prometheus). On the main listener: without authentication only when
    # metrics_public (the embedded defaults set it; with a config file it is false), with
    # `Authorization: Bearer <metrics_token>` when a token is configured, else 404. And/or
    # on its own listener, metrics_listen = "127.0.0.1:9100" (no authentication there;
    # with --workers N, worker i takes the first free port of port .. port+N-1).
    metrics_public: bool = False
    metrics_token: str | None = Field(default=None, repr=False, min_length=16)
    metrics_token_file: str | None = None
    metrics_listen: str | None = None
    chains: list[ChainConfig] = Field(default_factory=list)
    clients: list[ClientConfig] = Field(default_factory=list)
    resource_servers: list[ResourceServerConfig] = Field(default_factory=list)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    scopes: dict[str, ScopeConfig] = Field(default_factory=dict)

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, v: str) -> str:
        _raise_if(config_check.issuer_problem(v))
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is not None:
            _raise_if(config_check.redis_url_problem(v, sentinel=_store_has_sentinel()))
        return v

    @field_validator("key_encryption_key")
    @classmethod
    def _kek(cls, v: str | None) -> str | None:
        if v is not None:
            _raise_if(config_check.kek_b64_problem(v))
        return v

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, v: str | None) -> str | None:
        if v is not None:
            _raise_if(config_check.listen_problem(v))
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)
        return v

    @model_validator(mode="after")
    def _unique_ids(self) -> Settings:
        ids = [c.client_id for c in self.clients]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate client_id: {sorted(dup)}")
        chain_ids = [c.chain_id for c in self.chains]
        dupc = {i for i in chain_ids if chain_ids.count(i) > 1}
        if dupc:
            raise ValueError(f"duplicate chain_id: {sorted(dupc)}")
        return self

    @model_validator(mode="after")
    def _one_demo_client(self) -> Settings:
        demos = [c.client_id for c in self.clients if c.demo]
        if len(demos) > 1:
            raise ValueError(f"clients: at most one client may have demo = true, not {demos}")
        return self

    @property
    def demo_client(self) -> ClientConfig | None:
        """The client the /demo/ page signs in as; None: no /demo/ page."""
        return next((c for c in self.clients if c.demo), None)

    @model_validator(mode="after")
    def _revocation_authority(self) -> Settings:
        """Every chain id has at most one authoritative RevocationRegistry, and once any
        registry is configured every chain id a client allows has one (fail closed: a
        chain without a registry must not be a way around a suspension)."""
        authority: dict[int, int] = {}
        for i, chain in enumerate(self.chains):
            if not _has_revocation_registry(chain):
                if chain.revocation_registry_for:
                    raise ValueError(
                        f"chains.{i}.revocation_registry_for: chain {chain.chain_id} has no "
                        "revocation_registry"
                    )
                continue
            for covered in (chain.chain_id, *chain.revocation_registry_for):
                if covered in authority:
                    raise ValueError(
                        f"chains.revocation_registry_for: chain id {covered} would be governed "
                        f"by the RevocationRegistry of chain {authority[covered]} and of chain "
                        f"{chain.chain_id}; each chain id needs exactly one"
                    )
                authority[covered] = chain.chain_id
        if authority:
            for i, client in enumerate(self.clients):
                for chain_id in client.chain_ids:
                    if chain_id not in authority:
                        raise ValueError(
                            f"clients.{i}.chain_ids: chain {chain_id} has no authoritative "
                            "RevocationRegistry; add it to a [[chains]] entry's "
                            "revocation_registry_for, or remove it from chain_ids"
                        )
        return self

    def revocation_authority(self, chain_id: int) -> int | None:
        """The chain whose RevocationRegistry governs accounts logging in on `chain_id`
        (itself, or the chain listing it in `revocation_registry_for`); None when none does."""
        for chain in self.chains:
            if _has_revocation_registry(chain) and (
                chain.chain_id == chain_id or chain_id in chain.revocation_registry_for
            ):
                return chain.chain_id
        return None

    @property
    def has_revocation_registries(self) -> bool:
        """Whether any configured chain has a RevocationRegistry (the embedded chain has)."""
        return any(_has_revocation_registry(c) for c in self.chains)

    def client(self, client_id: str) -> ClientConfig | None:
        for c in self.clients:
            if c.client_id == client_id:
                return c
        return None

    def chain(self, chain_id: int) -> ChainConfig | None:
        for c in self.chains:
            if c.chain_id == chain_id:
                return c
        return None

    def scope_config(self, scope: str) -> ScopeConfig:
        return self.scopes.get(scope, ScopeConfig())

    @property
    def embedded(self) -> bool:
        return self.redis_url is None


def _has_revocation_registry(chain: ChainConfig) -> bool:
    """Configured, or deployed by the embedded development chain at start."""
    return chain.revocation_registry is not None or chain.rpc_url == "embedded"


def default_scope_table() -> dict[str, Any]:
    return {"wallet:withdraw": {"step_up": True, "max_ttl": 60}}


def embedded_defaults() -> dict[str, Any]:
    """The configuration `did-auth serve` runs with when given none."""
    return {
        "chains": [{"chain_id": 31337, "rpc_url": "embedded"}],
        "clients": [
            {
                "client_id": "demo",
                "domains": ["localhost", "127.0.0.1"],
                "uris": ["http://localhost", "http://127.0.0.1"],
                # Only the embedded chain: its RevocationRegistry governs these accounts.
                "chain_ids": [31337],
                "audiences": ["trading-api"],
                "scopes": ["account:read", "trade:write", "wallet:withdraw"],
                "default_scopes": ["account:read"],
                "delegate_scopes": ["account:read", "trade:write"],
                "any_localhost_port": True,
                "name": "did-auth demo dApp",
                # The demo page is also an OIDC public client (code + PKCE); loopback
                # redirect URIs match on any port for this client (RFC 8252 §7.3).
                "redirect_uris": ["http://127.0.0.1/demo/", "http://localhost/demo/"],
                # GET /demo/ is this client's page; it may call a trading API on loopback
                # only (the token never leaves the machine).
                "demo": True,
                "demo_api_origins": ["http://127.0.0.1:*", "http://localhost:*"],
            }
        ],
        "scopes": default_scope_table(),
        # Development: /metrics open on the main listener (a config file must choose).
        "metrics_public": True,
    }


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name[len(ENV_PREFIX) :] in NOT_CONFIG:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        try:
            value: Any = json.loads(raw)
            if (
                isinstance(value, (int, float))
                and not raw.strip().lstrip("-").replace(".", "", 1).isdigit()
            ):
                value = raw
        except ValueError:
            value = raw
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        elif isinstance(v, Mapping) and isinstance(merged.get(k), list) and v:
            # DID_AUTH_CHAINS__0__RPC_URL: a key of the first [[chains]] entry.
            items = list(merged[k])
            for index, item_over in v.items():
                if not str(index).isdigit() or int(index) >= len(items):
                    raise ConfigError(
                        [f"{k}.{index}: there is no such entry to override ({len(items)} in {k})"]
                    )
                item = items[int(index)]
                if isinstance(item, dict) and isinstance(item_over, Mapping):
                    items[int(index)] = _merge(item, item_over)
                else:
                    items[int(index)] = item_over
            merged[k] = items
        else:
            merged[k] = v
    return merged


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "value_error" and not err["loc"]:
            # A whole-config rule names its own key path in its message.
            out.append(str(err.get("ctx", {}).get("error", msg)))
            continue
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{loc}: {msg}")
    return out


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings; raise ConfigError listing every problem with its key path."""
    env = os.environ if environ is None else environ
    data: dict[str, Any]
    folder: Path | None = None
    if path is None:
        data = embedded_defaults()
    else:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: invalid TOML ({exc})"]) from None
        data.setdefault("scopes", default_scope_table())
        # Relative file paths written in the config file are relative to its folder.
        folder = Path(os.path.abspath(path)).parent
        _resolve_paths(data, folder)
    sources = _env_sources(env)
    data = _merge(data, _env_overrides(env))
    if overrides:
        data = _merge(data, overrides)
    problems = _read_secret_files(data)
    if data.get("redis_url") and not data.get("key_encryption_key"):
        # Shared store: the KEK sealing the signing keys must outlive the process; by
        # default kek.bin next to the config file (created at the first start).
        data.setdefault("key_encryption_key_file", str((folder or Path.cwd()) / "kek.bin"))
    problems += _file_problems(data)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = config_check.describe(exc, root=Settings, from_env=sources) + problems
    if problems:
        raise ConfigError(problems)
    return settings


# Keys holding file paths: (table path, key); "*" is every entry of a list of tables.
_PATH_KEYS: tuple[tuple[tuple[str, ...], str], ...] = (
    ((), "key_encryption_key_file"),
    ((), "audit_log"),
    ((), "metrics_token_file"),
    (("chains", "*"), "relayer_private_key_file"),
)
_AUDIT_STREAMS = ("stdout", "-", "")


def _tables(data: dict[str, Any], where: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(key prefix, table) for the tables at `where` ("chains", "*": each [[chains]])."""
    if not where:
        return [("", data)]
    items = data.get(where[0])
    if not isinstance(items, list):
        return []
    return [(f"{where[0]}.{i}.", t) for i, t in enumerate(items) if isinstance(t, dict)]


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    for where, key in _PATH_KEYS:
        for _, table in _tables(data, where):
            value = table.get(key)
            if not isinstance(value, str) or not value:
                continue
            if key == "audit_log" and value in _AUDIT_STREAMS:
                continue
            p = Path(value).expanduser()
            table[key] = str(p if p.is_absolute() else folder / p)


def _read_secret(prefix: str, table: dict[str, Any], key: str, file_key: str) -> list[str]:
    """Move a secret from its file (`<key>_file`) into `key` (stripped of white space)."""
    file = table.get(file_key)
    if not isinstance(file, str) or not file:
        return []
    if table.get(key):
        return [f"{prefix}{key}: set {key} or {file_key}, not both"]
    try:
        table[key] = Path(file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return [f"{prefix}{file_key}: {file}: cannot read ({reason})"]
    return []


def _read_secret_files(data: dict[str, Any]) -> list[str]:
    problems = _read_secret("", data, "metrics_token", "metrics_token_file")
    for prefix, chain in _tables(data, ("chains", "*")):
        problems += _read_secret(prefix, chain, "relayer_private_key", "relayer_private_key_file")
    return problems


def _file_problems(data: Mapping[str, Any]) -> list[str]:
    """Files the server would read or create at start, checked without creating any."""
    problems: list[str] = []
    kek_file, audit_log = data.get("key_encryption_key_file"), data.get("audit_log")
    if isinstance(kek_file, str) and kek_file and not data.get("key_encryption_key"):
        problem = config_check.kek_file_problem(Path(kek_file))
        if problem:
            problems.append(f"key_encryption_key_file: {problem}")
    if isinstance(audit_log, str) and audit_log not in _AUDIT_STREAMS:
        audit = Path(audit_log)
        if audit.is_dir():
            problems.append(f"audit_log: {audit} is a folder, not a file")
        elif not audit.parent.is_dir():
            problems.append(f"audit_log: folder {audit.parent} does not exist")
    return problems


def _env_sources(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Key path -> the DID_AUTH_* variable that sets it (to name it in problems)."""
    return {
        tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__")): name
        for name in environ
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :] not in NOT_CONFIG
    }
