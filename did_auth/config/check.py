"""Human-readable configuration problems: one line per problem, naming the key.

The value checks that pydantic's built-in constraints cannot express (URL schemes and hosts,
key-encryption key encoding, secret-hash format) live here as plain functions returning a
problem text or None, so that the settings models call them from their validators and
`check-config` / `serve` print the same sentence. `describe()` turns a pydantic
`ValidationError` into those lines: the dotted key (and the `DID_AUTH_...` variable when the
value came from the environment), never pydantic's "Value error, " prefix or a regular
expression, and a did-you-mean for an unknown key.

No import of did_auth.config.settings here (the settings module imports this one).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import os
import stat
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

__all__ = [
    "KEK_BYTES",
    "NOT_CONFIG_VARIABLES",
    "RATE_HINT",
    "SECRET_HASH_HINT",
    "client_uri_problem",
    "describe",
    "env_variable",
    "is_loopback_host",
    "issuer_problem",
    "kek_b64_problem",
    "kek_file_problem",
    "listen_problem",
    "redis_url_problem",
    "rpc_url_problem",
    "secret_hash_problem",
    "signing_problems",
    "ws_url_problem",
]

KEK_BYTES = 32
ENV_PREFIX = "DID_AUTH_"
#: `DID_AUTH_*` variables that are not configuration keys: the config file's path, the
#: `contracts deploy` key, and the worker count handed to `--workers` processes.
NOT_CONFIG_VARIABLES = frozenset({"CONFIG", "DEPLOYER_KEY", "WORKERS"})

RATE_HINT = "use a count and a unit, e.g. 60/m (units: s, m, h, d)"
SECRET_HASH_HINT = "must be sha256:<64 lowercase hex digits> (sha256 of the secret)"  # noqa: S105
RELAYER_KEY_HINT = "must be a secp256k1 private key: 64 hex digits, optionally 0x-prefixed"

# Human texts for the `pattern=` constraints of the settings models.
_PATTERN_HINTS = {
    r"^\d+/[smhd]$": RATE_HINT,
    r"^sha256:[0-9a-f]{64}$": SECRET_HASH_HINT,
    r"^(0x)?[0-9a-fA-F]{64}$": RELAYER_KEY_HINT,
}

_RPC_SCHEMES = ("http", "https", "ws", "wss")
_REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
_SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
_LOOPBACK_NAMES = {"localhost"}


def is_loopback_host(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (brackets allowed)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _show(value: str) -> str:
    return repr(value if len(value) <= 100 else value[:100] + "...")


def _absolute_url_problem(value: str, schemes: Sequence[str]) -> str | None:
    """Scheme among `schemes`, a host, a valid port, no user information."""
    listed = ", ".join(f"{s}://" for s in schemes)
    try:
        u = urlsplit(value.strip())
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"{_show(value)} is not a valid URL"
    if u.scheme.lower() not in schemes:
        if not u.scheme or "://" not in value:
            return f"{_show(value)} is not an absolute URL: use {listed}"
        return f"{_show(value)}: scheme {u.scheme}:// is not one of {listed}"
    if not u.hostname:
        return f"{_show(value)} has no host"
    if value != value.strip() or any(c.isspace() for c in value):
        return f"{_show(value)} contains white space"
    return None


def rpc_url_problem(value: str) -> str | None:
    """A JSON-RPC endpoint (http, https, ws, wss) or the word "embedded"."""
    if value == "embedded":
        return None
    problem = _absolute_url_problem(value, _RPC_SCHEMES)
    if problem:
        return problem + ' (or "embedded" for an in-process development chain)'
    return None


def ws_url_problem(value: str) -> str | None:
    """A WebSocket JSON-RPC endpoint (ws, wss) for `eth_subscribe` newHeads."""
    return _absolute_url_problem(value, ("ws", "wss"))


def redis_url_problem(value: str, *, sentinel: bool = False) -> str | None:
    """redis://, rediss://, unix://, redis+cluster:// (rediss+cluster://) and, when the store
    supports it, redis+sentinel://; a host (or a list of host:port for cluster/sentinel)."""
    schemes = _REDIS_SCHEMES + (_SENTINEL_SCHEMES if sentinel else ())
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme == "unix":  # a local socket: unix:///run/redis.sock[?db=0]
        if not urlsplit(value).path.startswith("/"):
            return f"{_show(value)}: a unix:// URL needs the socket's absolute path"
        return None
    if scheme in ("redis+cluster", "rediss+cluster", *_SENTINEL_SCHEMES) and scheme in schemes:
        # host:port[,host:port...]: check each node
        rest = value.split("://", 1)[1]
        netloc = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        if not netloc:
            return f"{_show(value)} has no host"
        for node in netloc.split(","):
            problem = _absolute_url_problem(f"redis://{node}", ("redis",))
            if problem:
                return f"{_show(value)}: node {node!r} is not host[:port]"
        if scheme in _SENTINEL_SCHEMES:
            parts = rest.split("?", 1)[0].split("/")[1:]
            parts = [p for p in parts if p]
            if not parts or len(parts) > 2:
                return (
                    f"{_show(value)}: name the monitored service, "
                    "e.g. redis+sentinel://host:26379[,host:26379]/mymaster[/0]"
                )
            if len(parts) == 2 and not parts[1].isdigit():
                return f"{_show(value)}: the database after the service must be a number"
        return None
    problem = _absolute_url_problem(value, schemes)
    if problem:
        return problem
    path = urlsplit(value).path.strip("/")
    if path and not path.isdigit():
        return f"{_show(value)}: the path must be a database number, e.g. /0"
    return None


def issuer_problem(value: str) -> str | None:
    """OpenID Connect Discovery §3 / RFC 8414 §2: https (http for development), a host, no
    query or fragment; no trailing slash (did-auth appends its paths)."""
    problem = _absolute_url_problem(value, ("https", "http"))
    if problem:
        return problem
    u = urlsplit(value)
    if u.query or u.fragment or "?" in value or "#" in value:
        return f"{_show(value)} must not have a query or fragment"
    if u.username is not None or u.password is not None:
        return f"{_show(value)} must not contain user information"
    if value.endswith("/"):
        return f"{_show(value)} must not end with a slash"
    return None


def client_uri_problem(value: str) -> str | None:
    """A client's `uris` entry (the SIWE `URI` the dApp signs): an absolute http(s) URI."""
    return _absolute_url_problem(value, ("https", "http"))


def kek_b64_problem(value: str) -> str | None:
    """Base64 (standard alphabet, padded) of exactly 32 bytes. The value is a secret: the
    text never echoes it."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return (
            f"not valid base64 (expected the base64 of {KEK_BYTES} random bytes, "
            "e.g. from `openssl rand -base64 32`)"
        )
    if len(raw) != KEK_BYTES:
        return (
            f"decodes to {len(raw)} bytes; a key-encryption key is exactly {KEK_BYTES} bytes "
            "(`openssl rand -base64 32`)"
        )
    return None


def kek_file_problem(path: Path) -> str | None:
    """An existing KEK file must hold exactly 32 bytes; a missing one is created at start
    (its folder must exist)."""
    if not path.exists():
        if not path.parent.is_dir():
            return f"{path}: folder {path.parent} does not exist"
        return None
    try:
        size = len(path.read_bytes())
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror})"
    if size != KEK_BYTES:
        return f"{path} holds {size} bytes; a key-encryption key file holds exactly {KEK_BYTES}"
    if os.name == "posix" and mode & 0o077:
        return f"{path}: permissions {mode:04o} are too open (must be 0600 or stricter)"
    return None


def secret_hash_problem(value: str) -> str | None:
    head, _, digest = value.partition(":")
    if head != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return SECRET_HASH_HINT
    return None


def listen_problem(value: str) -> str | None:
    """`host:port` (IPv6 in brackets) with a port in 1-65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"{_show(value)} is not host:port, e.g. 127.0.0.1:9100"
    if host.startswith("[") != host.endswith("]"):
        return f"{_show(value)} is not host:port, e.g. [::1]:9100"
    return None


def webauthn_rp_id_problem(value: str) -> str | None:
    """WebAuthn L2 §5.1.3 / §4 "RP ID": "a valid domain string" that is a registrable
    domain suffix of, or equal to, the origin's effective domain. An IP address is not a
    valid RP ID (browsers refuse it): on loopback use `localhost`."""
    host = value.strip().lower()
    if host != value or not host:
        return f"{_show(value)} must be a lower-case domain name, e.g. auth.example.com"
    if "://" in host or "/" in host or ":" in host or "@" in host:
        return f"{_show(value)} must be a bare domain (no scheme, port or path)"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"{_show(value)} is an IP address; WebAuthn needs a domain (localhost on loopback)"
    labels = host.split(".")
    if any(not label or len(label) > 63 for label in labels) or not all(
        c.isalnum() or c == "-" for label in labels for c in label
    ):
        return f"{_show(value)} is not a valid domain name"
    return None


def webauthn_origin_problem(value: str, rp_id: str | None = None) -> str | None:
    """An origin a WebAuthn ceremony may run on (WebAuthn L2 §13.4.9: the RP "MUST" check
    the origin): `https://host[:port]`, or `http://` on a loopback host (browsers treat
    only those as secure contexts); with `rp_id`, the host equals it or ends with
    `.<rp_id>` (§5.1.3: the RP ID is a registrable suffix of the origin's domain)."""
    problem = _absolute_url_problem(value, ("https", "http"))
    if problem:
        return problem
    u = urlsplit(value)
    if value != value.lower() or f"{u.scheme}://{u.netloc}" != value or "@" in u.netloc:
        return f"{_show(value)} must be a lower-case origin scheme://host[:port] (no path)"
    if u.scheme == "http" and not is_loopback_host(u.hostname):
        return f"{_show(value)}: plain http is allowed only on loopback hosts"
    host = u.hostname or ""
    if rp_id is not None and host != rp_id and not host.endswith("." + rp_id):
        return f"{_show(value)}: its host is not rp_id {rp_id!r} nor a subdomain of it"
    return None


# -- pydantic errors to lines --------------------------------------------------------------


def env_variable(path: Sequence[str | int]) -> str:
    """The environment variable that sets a key: DID_AUTH_RATE_LIMITS__NONCE_PER_IP."""
    return ENV_PREFIX + "__".join(str(p).upper() for p in path)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside an annotation (list[ChainConfig], dict[str, ScopeConfig])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None:
        return None
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _keys_at(root: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The known keys of the table at `loc` (for did-you-mean)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            continue  # a list index or a dict key (e.g. a scope name)
        model = _model_in(field.annotation)
    return list(model.model_fields) if model is not None else []


def _message(err: Mapping[str, Any], root: type[BaseModel]) -> str:
    kind = err["type"]
    loc = err["loc"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        name = str(loc[-1])
        close = difflib.get_close_matches(name, _keys_at(root, loc[:-1]), n=1, cutoff=0.6)
        return "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
    if kind == "missing":
        if loc and loc[-1] == "rpc_url":
            return (
                'required: the chain\'s JSON-RPC URL (http(s):// or ws(s)://), or "embedded" '
                "for an in-process development chain"
            )
        return "required"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", err["msg"]))
    if kind == "string_pattern_mismatch":
        return _PATTERN_HINTS.get(str(ctx.get("pattern")), f"does not match {ctx.get('pattern')}")
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    msg = msg.replace("Input should be", "must be").replace("String should", "must")
    msg = msg.replace("List should", "must").replace("Input should", "must")
    return msg[:1].lower() + msg[1:]


def _private_file_problem(path: Path) -> str | None:
    """A secret file: it exists, and group and others have no access (as for the KEK)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror})"
    if os.name == "posix" and mode & 0o077:
        return f"{path}: permissions {mode:04o} are too open (must be 0600 or stricter)"
    return None


def signing_problems(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """The `[signing]` table, one line per problem. A `pin` key is removed from `data` (and
    named): the PIN is never written in the configuration."""
    table = data.get("signing")
    if not isinstance(table, dict):
        return []
    problems: list[str] = []
    if "pin" in table:
        table.pop("pin")
        problems.append(
            "signing.pin: the PIN is never written in the config file: use pin_file (a file "
            "only this user can read) or pin_env (the name of an environment variable)"
        )
    pkcs11_keys = ("module", "token_label", "pin_file", "pin_env")
    if table.get("backend", "sealed") != "pkcs11":
        return problems + [
            f'signing.{k}: only with backend = "pkcs11"' for k in pkcs11_keys if k in table
        ]
    module = table.get("module")
    if not module:
        problems.append(
            'signing.module: required with backend = "pkcs11" (the PKCS#11 library, e.g. '
            "/usr/lib/softhsm/libsofthsm2.so)"
        )
    elif isinstance(module, str) and not Path(module).is_file():
        problems.append(f"signing.module: {module} does not exist (is the HSM client installed?)")
    if not table.get("token_label"):
        problems.append('signing.token_label: required with backend = "pkcs11"')
    pin_file, pin_env = table.get("pin_file"), table.get("pin_env")
    if bool(pin_file) == bool(pin_env):
        problems.append('signing: set exactly one of pin_file or pin_env with backend = "pkcs11"')
    elif isinstance(pin_file, str) and pin_file:
        problem = _private_file_problem(Path(pin_file))
        if problem:
            problems.append(f"signing.pin_file: {problem}")
    elif isinstance(pin_env, str) and not environ.get(pin_env):
        problems.append(f"signing.pin_env: the environment variable {pin_env} is not set")
    for key in ("key_encryption_key", "key_encryption_key_file"):
        if data.get(key):
            problems.append(
                f'{key}: not used with signing.backend = "pkcs11" (the key-encryption key is '
                "an AES key in the token)"
            )
    if not data.get("redis_url"):
        problems.append(
            'signing.backend: "pkcs11" needs redis_url (replicas agree on the current key '
            "through the store)"
        )
    alg, top = table.get("alg"), data.get("signing_alg")
    if alg and top and alg != top:
        problems.append(f"signing.alg: {alg} differs from signing_alg = {top}: set one of them")
    return problems


def describe(
    exc: ValidationError,
    *,
    root: type[BaseModel],
    from_env: Mapping[tuple[str, ...], str] | None = None,
) -> list[str]:
    """One line per problem: `key: problem` or `key (DID_AUTH_KEY): problem`."""
    from_env = from_env or {}
    out: list[str] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        message = _message(err, root)
        if not loc:
            # A whole-config rule names its own key path in its message.
            out.append(message)
            continue
        key = ".".join(str(p) for p in loc)
        parts = tuple(str(p) for p in loc)
        variable = next(
            (from_env[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in from_env),
            None,
        )
        out.append(f"{key} (from {variable}): {message}" if variable else f"{key}: {message}")
    return out
