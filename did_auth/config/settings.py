"""One typed settings object: embedded defaults < TOML file < DID_AUTH_* environment."""

from __future__ import annotations

import ipaddress
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from did_auth.config import check as config_check
from did_auth.config.models import (
    MAX_ACCESS_TOKEN_TTL,
    ChainConfig,
    ClientConfig,
    RateLimits,
    ResourceServerConfig,
    ScopeConfig,
    SigningConfig,
    StrictModel,
    WebAuthnConfig,
    checked_by,
)
from did_auth.core.errors import ConfigError

__all__ = [
    "MAX_ACCESS_TOKEN_TTL",
    "ChainConfig",
    "ClientConfig",
    "RateLimits",
    "ResourceServerConfig",
    "ScopeConfig",
    "Settings",
    "SigningConfig",
    "load_settings",
]

ENV_PREFIX = "DID_AUTH_"
# DID_AUTH_CONFIG, DID_AUTH_DEPLOYER_KEY, DID_AUTH_WORKERS are not configuration keys.
NOT_CONFIG = config_check.NOT_CONFIG_VARIABLES


def _redis_url_problem(url: str) -> str | None:
    return config_check.redis_url_problem(url, sentinel=True)


class Settings(StrictModel):
    issuer: Annotated[str, checked_by(config_check.issuer_problem)] = "http://127.0.0.1:8000"
    redis_url: Annotated[str | None, checked_by(_redis_url_problem)] = None
    access_token_ttl: int = Field(default=300, gt=0, le=MAX_ACCESS_TOKEN_TTL)
    refresh_token_ttl: int = Field(default=86400, gt=0, le=90 * 86400)
    session_max_lifetime: int = Field(default=30 * 86400, gt=0)
    signing_alg: Literal["ES256", "EdDSA"] = "ES256"
    key_encryption_key_file: str | None = None
    # Base64 of 32 bytes; an alternative to the file (e.g. DID_AUTH_KEY_ENCRYPTION_KEY).
    key_encryption_key: Annotated[str | None, checked_by(config_check.kek_b64_problem)] = Field(
        default=None, repr=False
    )
    trusted_proxies: list[str] = Field(default_factory=list)
    audit_log: str = "stdout"
    nonce_ttl: int = Field(default=300, gt=0, le=3600)
    clock_skew: int = Field(default=60, ge=0, le=600)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    # Seconds a connection has to send its complete request line and headers (each
    # request of a keep-alive connection too); then it is closed (slow-header clients).
    header_timeout: float = Field(default=10.0, gt=0, le=300)
    # Seconds from the end of a request's head to the end of its body; then a 408 (when no
    # response has started) and the connection is closed (slow-body clients).
    body_timeout: float = Field(default=10.0, gt=0, le=300)
    # Connections one peer address may hold open at once, per worker process (direct
    # peers only: a peer in trusted_proxies is not capped); more are closed on accept.
    # 0: no cap.
    max_connections_per_ip: int = Field(default=256, ge=0, le=1_000_000)
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
    # POST /dev/rpc: the embedded chain as a JSON-RPC endpoint (eth_* only), so a bot or a
    # script can send transactions to it without Hardhat. Only the embedded defaults (no
    # config file) set it, and only with the memory store and an embedded chain is it served.
    dev_rpc: bool = False
    metrics_token: str | None = Field(default=None, repr=False, min_length=16)
    metrics_token_file: str | None = None
    metrics_listen: Annotated[str | None, checked_by(config_check.listen_problem)] = None
    chains: list[ChainConfig] = Field(default_factory=list)
    clients: list[ClientConfig] = Field(default_factory=list)
    resource_servers: list[ResourceServerConfig] = Field(default_factory=list)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    scopes: dict[str, ScopeConfig] = Field(default_factory=dict)
    # Where the token-signing keys live: sealed in the store, or in a PKCS#11 token.
    signing: SigningConfig = Field(default_factory=SigningConfig)
    # Passkeys (WebAuthn L2): the relying party; defaults derive from the issuer.
    webauthn: WebAuthnConfig = Field(default_factory=WebAuthnConfig)

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
    def key_alg(self) -> Literal["ES256", "EdDSA"]:
        """The algorithm of new signing keys: `[signing] alg`, else `signing_alg`."""
        return self.signing.alg or self.signing_alg

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
        "dev_rpc": True,
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
    if path is not None and data.get("dev_rpc"):
        # /dev/rpc is an unauthenticated chain endpoint whose test accounts' keys are public
        # (1, 2, ...; one is the registry's operator): development only.
        problems.append("dev_rpc: only the embedded defaults (no config file) serve /dev/rpc")
    problems += config_check.signing_problems(data, env)
    hsm = isinstance(data.get("signing"), dict) and data["signing"].get("backend") == "pkcs11"
    if data.get("redis_url") and not data.get("key_encryption_key") and not hsm:
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
    (("signing",), "pin_file"),
)
_AUDIT_STREAMS = ("stdout", "-", "")


def _tables(data: dict[str, Any], where: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(key prefix, table) for the tables at `where` ("chains", "*": each [[chains]])."""
    if not where:
        return [("", data)]
    items = data.get(where[0])
    if isinstance(items, dict) and len(where) == 1:  # a table such as [signing]
        return [(f"{where[0]}.", items)]
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
