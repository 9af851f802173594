"""`gate.toml`: read with `tomllib`, validated strictly, one line per problem.

    issuer = "https://auth.example.com"
    audience = "trading-api"
    listen = "127.0.0.1:9180"
    public_url = "https://api.example.com"     # base of DPoP htu; never taken from Host
    trusted_proxies = ["127.0.0.1/32"]         # who may set X-Original-* / X-Forwarded-*
    proxy = "nginx"                            # or "forward-auth" (Traefik, Caddy)
    redis_url = "redis://127.0.0.1:6379/0"     # optional: DPoP jti single use across replicas
    [[routes]]
    method = "POST"
    path = "/orders"                           # exact, or a prefix ending in /*
    scopes = ["trade:write"]
    # withdrawal = true: only a withdrawal token (RFC 9396 authorization_details of type
    # "withdrawal" for this audience), each jti once; required with scope wallet:withdraw

Optional keys beyond the interface's: `max_staleness` (30 s), `step_up_max_age` (300 s),
`revocation_interval` (1 s), `follow_revocations` (true; false is unsafe), `jwks_url`
(`{issuer}/.well-known/jwks.json`), `allow_insecure_http` (false: plain http only to a
loopback issuer), `proxy` ("nginx": the original request is read from X-Original-Method /
X-Original-URI only; "forward-auth": from X-Forwarded-Method / X-Forwarded-Uri only, as
Traefik and Caddy send them; a request carrying the other family is refused).

`load_config(path)` returns a `GateConfig` or raises `ConfigError`, whose `problems` are the
lines to print (`did-auth-gate` prints them and exits 1, no traceback).
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from did_auth_verifier._http import check_url
from did_auth_verifier.dpop import normalize_htu
from did_auth_verifier.gate.routes import METHODS, Route, RouteTable, check_route_path

__all__ = ["ConfigError", "GateConfig", "load_config", "parse_config"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_KEYS = {
    "issuer", "audience", "listen", "public_url", "trusted_proxies", "redis_url", "routes",
    "max_staleness", "step_up_max_age", "revocation_interval", "follow_revocations",
    "jwks_url", "allow_insecure_http", "proxy",
}
_ROUTE_KEYS = {"method", "path", "scopes", "step_up", "withdrawal"}
_WITHDRAW_SCOPE = "wallet:withdraw"
_REDIS_SCHEMES = ("redis", "rediss", "unix")
PROXIES = ("nginx", "forward-auth")


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class GateConfig:
    issuer: str
    audience: str
    host: str
    port: int
    public_url: str
    trusted_proxies: tuple[IpNetwork, ...]
    routes: RouteTable
    redis_url: str | None = None
    max_staleness: float = 30.0
    step_up_max_age: float = 300.0
    revocation_interval: float = 1.0
    follow_revocations: bool = True
    jwks_url: str | None = None
    allow_insecure_http: bool = False
    proxy: str = "nginx"
    route_list: tuple[Route, ...] = field(default=())


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ValueError("must be HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_s)
    if not 1 <= port <= 65535:
        raise ValueError("port must be 1-65535")
    return host, port


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.source}: {key}: {text}")

    def string(self, data: dict[str, Any], key: str, *, required: bool) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(key, "must be a non-empty string")
            return None
        return value

    def number(self, data: dict[str, Any], key: str, default: float, low: float,
               high: float) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, "must be a number of seconds")
            return default
        if not low < value <= high:
            self.problem(key, f"must be more than {low:g} and at most {high:g} seconds")
            return default
        return float(value)

    def boolean(self, data: dict[str, Any], key: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value


def _url(check: _Checker, key: str, value: str | None, insecure: bool) -> str | None:
    if value is None:
        return None
    try:
        return check_url(value, allow_insecure_http=insecure).rstrip("/")
    except ValueError as exc:
        text = str(exc)
        if "plain-http" in text:
            text = ("plain http only to a loopback host; use https (or set "
                    "allow_insecure_http = true on a trusted private network)")
        check.problem(key, text)
        return None


def _routes(check: _Checker, raw: Any) -> list[Route]:
    if raw is None:
        check.problem("routes", "required: at least one [[routes]] table (unlisted = denied)")
        return []
    if not isinstance(raw, list) or not raw:
        check.problem("routes", "must be one or more [[routes]] tables")
        return []
    routes: list[Route] = []
    seen: set[tuple[str, str]] = set()
    for i, entry in enumerate(raw):
        where = f"routes[{i}]"
        if not isinstance(entry, dict):
            check.problem(where, "must be a table")
            continue
        for unknown in sorted(set(entry) - _ROUTE_KEYS):
            check.problem(f"{where}.{unknown}", "unknown key")
        method = entry.get("method")
        if not isinstance(method, str) or method not in METHODS:
            check.problem(f"{where}.method", f"must be one of {', '.join(sorted(METHODS))}")
            continue
        path = entry.get("path")
        if not isinstance(path, str):
            check.problem(f"{where}.path", "required: a path starting with /")
            continue
        try:
            check_route_path(path)
        except ValueError as exc:
            check.problem(f"{where}.path", str(exc))
            continue
        scopes = entry.get("scopes", [])
        if not isinstance(scopes, list) or not all(
            isinstance(s, str) and s and s.isprintable() and " " not in s and '"' not in s
            and "\\" not in s for s in scopes
        ):
            check.problem(f"{where}.scopes", "must be a list of scope names (no spaces)")
            continue
        step_up = entry.get("step_up", False)
        if not isinstance(step_up, bool):
            check.problem(f"{where}.step_up", "must be true or false")
            continue
        withdrawal = entry.get("withdrawal", False)
        if not isinstance(withdrawal, bool):
            check.problem(f"{where}.withdrawal", "must be true or false")
            continue
        if _WITHDRAW_SCOPE in scopes and not withdrawal:
            # Secure by default: a wallet:withdraw scope alone (an OTP step-up login) names
            # no withdrawal; such a route must demand the wallet-approved details, once.
            check.problem(f"{where}.withdrawal", "a route granting wallet:withdraw needs "
                          "withdrawal = true (a withdrawal token, single use)")
            continue
        if (method, path) in seen:
            check.problem(where, f"{method} {path} is listed twice")
            continue
        seen.add((method, path))
        routes.append(Route(method, path, tuple(scopes), step_up, withdrawal))
    return routes


def parse_config(data: dict[str, Any], source: str = "gate.toml") -> GateConfig:
    """Validate a decoded TOML document; raises `ConfigError` listing every problem."""
    check = _Checker(source)
    for unknown in sorted(set(data) - _KEYS):
        check.problem(unknown, "unknown key")
    insecure = check.boolean(data, "allow_insecure_http", False)
    issuer = check.string(data, "issuer", required=True)
    issuer_url = _url(check, "issuer", issuer, insecure)
    if issuer_url is not None and issuer is not None:
        issuer_url = issuer  # `iss` compares exactly (RFC 9068 §4): keep it as written
    audience = check.string(data, "audience", required=True)
    listen = check.string(data, "listen", required=True)
    host, port = "", 0
    if listen is not None:
        try:
            host, port = _parse_listen(listen)
        except ValueError as exc:
            check.problem("listen", str(exc))
    public_url = check.string(data, "public_url", required=True)
    if public_url is not None:
        parts = urlsplit(public_url)
        try:
            normalize_htu(public_url)
            if parts.query or parts.fragment:
                raise ValueError("must not have a query or fragment")
            public_url = public_url.rstrip("/")
        except ValueError as exc:
            check.problem("public_url", str(exc))
    proxies: list[IpNetwork] = []
    raw_proxies = data.get("trusted_proxies")
    if raw_proxies is None or raw_proxies == []:
        # Only these may name the original request: with none, every check is denied.
        check.problem("trusted_proxies", "required: the CIDRs of the proxies that ask")
    elif not isinstance(raw_proxies, list):
        check.problem("trusted_proxies", "must be a list of CIDRs")
    else:
        for i, cidr in enumerate(raw_proxies):
            try:
                if not isinstance(cidr, str):
                    raise ValueError("not a string")
                proxies.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError:
                check.problem(f"trusted_proxies[{i}]", f"{cidr!r} is not a CIDR")
    redis_url = check.string(data, "redis_url", required=False)
    if redis_url is not None:
        if urlsplit(redis_url).scheme not in _REDIS_SCHEMES:
            check.problem("redis_url", "must be a redis://, rediss:// or unix:// URL")
        else:
            try:
                import redis.asyncio  # noqa: F401  (the optional extra)
            except ImportError:
                check.problem("redis_url", "needs the redis extra: "
                              "pip install 'did-auth-verifier[redis]'")
    max_staleness = check.number(data, "max_staleness", 30.0, 0.0, 300.0)
    interval = check.number(data, "revocation_interval", 1.0, 0.0, 60.0)
    if interval >= max_staleness:
        check.problem("revocation_interval", "must be shorter than max_staleness")
    step_up_max_age = check.number(data, "step_up_max_age", 300.0, 0.0, 86400.0)
    follow = check.boolean(data, "follow_revocations", True)
    jwks_url = _url(check, "jwks_url", check.string(data, "jwks_url", required=False), insecure)
    proxy = data.get("proxy", "nginx")
    if proxy not in PROXIES:
        check.problem("proxy", 'must be "nginx" or "forward-auth"')
    routes = _routes(check, data.get("routes"))
    if check.problems:
        raise ConfigError(check.problems)
    assert issuer_url is not None and audience is not None and public_url is not None
    return GateConfig(
        issuer=issuer_url, audience=audience, host=host, port=port, public_url=public_url,
        trusted_proxies=tuple(proxies), routes=RouteTable(routes), redis_url=redis_url,
        max_staleness=max_staleness, step_up_max_age=step_up_max_age,
        revocation_interval=interval, follow_revocations=follow, jwks_url=jwks_url,
        allow_insecure_http=insecure, proxy=proxy, route_list=tuple(routes),
    )


def load_config(path: str | Path) -> GateConfig:
    """Read and validate `path`; raises `ConfigError` (one line per problem)."""
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
    return parse_config(data, source)
