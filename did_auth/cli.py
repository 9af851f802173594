"""The `did-auth` command line: serve, keys, contracts, sessions, check-config.

Exit codes: 0 success, 1 user error (one line on stderr, no traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from did_auth import __version__
from did_auth.cli_sessions import add_sessions_parser, run_sessions
from did_auth.config.check import is_loopback_host
from did_auth.config.settings import Settings, load_settings
from did_auth.core.clock import SystemClock
from did_auth.core.errors import ConfigError, DidAuthError

__all__ = ["main"]

CONFIG_ENV = "DID_AUTH_CONFIG"
#: Seconds a `--workers N` worker may take to import and start (uvicorn's
#: `timeout_worker_healthcheck`) before its supervisor declares it hung.
WORKER_START_TIMEOUT = 120
DEPLOYER_KEY_ENV = "DID_AUTH_DEPLOYER_KEY"
WORKERS_ENV = "DID_AUTH_WORKERS"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="did-auth", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"did-auth {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the auth server")
    serve.add_argument(
        "--config",
        help=f"TOML config file (default: ${CONFIG_ENV}, else the embedded development "
        "defaults: in-memory store, embedded chain, demo client)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes; more than 1 needs redis_url (default: %(default)s)",
    )

    keys = sub.add_parser("keys", help="signing keys")
    keys.add_argument("action", choices=["list", "rotate", "retire"])
    keys.add_argument(
        "--kid",
        help="retire: this key now, not the one that signs (default: every key whose last "
        "token has expired)",
    )
    keys.add_argument("--config", help=f"TOML config file (default: ${CONFIG_ENV})")
    keys.add_argument(
        "--publish-ahead",
        type=float,
        default=60.0,
        help="seconds the new key is published before it signs (default: %(default)s)",
    )
    keys.add_argument(
        "--compromised",
        action="store_true",
        help="rotate: a key leaked; the new key signs now and every old key leaves the JWKS "
        "at once, no overlap (default: off)",
    )

    contracts = sub.add_parser("contracts", help="on-chain registries")
    contracts.add_argument("action", choices=["deploy"])
    contracts.add_argument("--rpc-url", required=True, help="the chain's JSON-RPC URL (required)")
    contracts.add_argument(
        "--private-key-file",
        help=f"file holding the deployer's private key (default: ${DEPLOYER_KEY_ENV}, else the "
        "node's first unlocked account)",
    )
    # Refused: a key on the command line is visible to every user (ps, /proc/*/cmdline).
    contracts.add_argument("--private-key", help=argparse.SUPPRESS)

    add_sessions_parser(sub)  # sessions revoke-all (did_auth/cli_sessions.py)
    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", help="the TOML config file to check")
    return p


def _fail(message: str) -> int:
    print(f"did-auth: {message}", file=sys.stderr)
    return 1


def _load(path: str | None, overrides: dict[str, Any] | None = None) -> Settings:
    return load_settings(path or os.environ.get(CONFIG_ENV) or None, overrides=overrides)


def _listen_url(host: str, port: int) -> str:
    """The http:// URL of a listen address (a wildcard address is reached on loopback)."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, Any] = {}
    path = args.config or os.environ.get(CONFIG_ENV) or None
    if path is None and "DID_AUTH_ISSUER" not in os.environ:
        # Embedded development mode: the issuer follows --host/--port.
        overrides["issuer"] = _listen_url(args.host, args.port)
    settings = _load(path, overrides)
    if path is not None and "issuer" not in settings.model_fields_set:
        # With a config file the issuer (the URL clients use) is required, except on
        # loopback where the listen address is the only URL clients can use.
        if not is_loopback_host(args.host):
            return _fail(
                "issuer: required in the config file (or DID_AUTH_ISSUER) when listening on "
                f"{args.host}, not loopback: the https:// URL clients reach this server at"
            )
        overrides["issuer"] = _listen_url(args.host, args.port)
        settings = _load(path, overrides)
    if args.workers < 1:
        return _fail("--workers must be at least 1")
    if args.workers > 1 and settings.embedded:
        return _fail("--workers > 1 needs a shared store: set redis_url")
    embedded_chains = [c.chain_id for c in settings.chains if c.rpc_url == "embedded"]
    if args.workers > 1 and embedded_chains:
        return _fail(
            f"chain {embedded_chains[0]}: an embedded chain lives in one process, so it needs "
            "--workers 1 (or an rpc_url every worker can reach, e.g. a hardhat node)"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Everything is checked before anything is created (the KEK file, the audit log).
    _check_listen(args.host, args.port, "--host/--port")
    if settings.metrics_listen:
        m_host, m_port = _split_listen(settings.metrics_listen)
        _check_listen(m_host, m_port, "metrics_listen")
    _check_chains(settings)
    asyncio.run(_preflight(settings))
    _banner(settings, path, args)
    if args.workers > 1:
        os.environ[CONFIG_ENV] = os.path.abspath(path) if path else ""
        os.environ[WORKERS_ENV] = str(args.workers)
        for k, v in overrides.items():
            os.environ[f"DID_AUTH_{k.upper()}"] = str(v)
        uvicorn.run(
            "did_auth.edge.api.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
            # uvicorn's supervisor kills and restarts a worker that has not finished its
            # start-up within this many seconds (default 5). Importing and starting a
            # worker takes longer than 5 s on a busy host: the workers were then killed and
            # respawned for ever and the server never answered.
            timeout_worker_healthcheck=WORKER_START_TIMEOUT,
            **_uvicorn_options(settings),
        )
        return 0
    from did_auth.edge.api.app import create_app
    from did_auth.edge.api.startup_guard import StartupGuard

    _quiet_startup_failure()
    try:
        uvicorn.run(
            StartupGuard(create_app(settings)),
            host=args.host,
            port=args.port,
            log_level="warning",
            **_uvicorn_options(settings),
        )
    except SystemExit as exc:  # uvicorn exits 3 when the application fails to start
        return 1 if exc.code else 0
    return 0


def _banner(settings: Settings, path: str | None, args: argparse.Namespace) -> None:
    """Where it listens, the issuer, and a warning when clients would be sent elsewhere."""
    listen = _listen_url(args.host, args.port)
    mode = "embedded defaults (in-memory store, embedded chain)" if path is None else path
    print(f"did-auth {__version__} ({mode})", flush=True)
    print(f"  listening: http://{args.host}:{args.port}" if ":" not in args.host
          else f"  listening: http://[{args.host}]:{args.port}", flush=True)
    print(f"  issuer:    {settings.issuer}", flush=True)
    print(f"  discovery: {settings.issuer}/.well-known/openid-configuration", flush=True)
    if settings.demo_client is not None:
        print(f"  demo page: {settings.issuer}/demo/", flush=True)
    if settings.metrics_listen:
        print(f"  metrics:   http://{settings.metrics_listen}/metrics", flush=True)
    warning = _issuer_mismatch(settings.issuer, listen, args.host, args.port)
    if warning:
        print(f"did-auth: warning: {warning}", file=sys.stderr, flush=True)


def _issuer_mismatch(issuer: str, listen: str, host: str, port: int) -> str | None:
    """The issuer is what clients use; on a loopback or IP-literal issuer host (no proxy
    name in between) it must be the listen address itself."""
    from urllib.parse import urlsplit

    u = urlsplit(issuer)
    issuer_port = u.port or (443 if u.scheme == "https" else 80)
    literal = u.hostname is not None and (is_loopback_host(u.hostname) or _is_ip(u.hostname))
    wildcard = host in ("0.0.0.0", "::", "")  # noqa: S104
    same_host = wildcard or u.hostname == host.strip("[]") or (
        is_loopback_host(u.hostname) and is_loopback_host(host)
    )
    if literal and (issuer_port != port or not same_host):
        return (
            f"the issuer {issuer} is not the address this server listens on ({listen}): "
            "clients following the discovery document will not reach it"
        )
    return None


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _check_chains(settings: Settings) -> None:
    """Each http(s) chain RPC must serve the chain its entry names (a wrong rpc_url refuses
    the start); one that does not answer now is a warning: the server starts and its logins
    on that chain answer 503 until it does (/readyz says so)."""
    import json
    import urllib.request

    for i, chain in enumerate(settings.chains):
        if not chain.rpc_url.startswith(("http://", "https://")):
            continue  # embedded, or ws(s):// (checked on first use)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            chain.rpc_url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        shown = _redact(chain.rpc_url)
        try:
            timeout = min(chain.rpc_timeout, 3.0)
            with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
                answer = json.loads(resp.read(65536))
            served = int(answer["result"], 16)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            reason = _redis_reason(exc) if isinstance(exc, OSError) else "not a JSON-RPC answer"
            print(
                f"did-auth: warning: chains.{i}: cannot reach chain {chain.chain_id} at "
                f"{shown} ({reason}); its logins answer 503 until it does",
                file=sys.stderr,
                flush=True,
            )
            continue
        if served != chain.chain_id:
            raise StartupError(
                f"chains.{i}.rpc_url: {shown} serves chain id {served}, not {chain.chain_id}"
            )


def _split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _check_listen(host: str, port: int, what: str) -> None:
    """Fail now, in one line, when the address cannot be bound (in use, not local)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise StartupError(f"{what}: cannot listen on {host}:{port} ({reason})") from None


class StartupError(DidAuthError):
    """The server cannot start (port in use, Redis unreachable): one line, exit 1."""

    code = "startup_failed"
    status = 500


def _quiet_startup_failure() -> None:
    """uvicorn's own "Application startup failed" line repeats the line printed above."""

    class _Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Application startup failed" not in record.getMessage()

    logging.getLogger("uvicorn.error").addFilter(_Drop())


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvloop and httptools when installed (the event loop and HTTP parser in C),
    else uvicorn's pure-Python ones. No uvicorn proxy-header rewriting: did-auth reads
    X-Forwarded-For itself, only from its configured `trusted_proxies` (uvicorn would also
    trust any 127.0.0.1 peer, and redo the work on every request). The HTTP protocol
    closes a connection that has not sent a complete request head within
    `header_timeout` seconds (slow-header clients) or the rest of its body within
    `body_timeout` seconds (slow-body clients), and caps the connections of one peer
    address (`max_connections_per_ip`); it is pickled to every worker."""
    import importlib.util

    from did_auth.edge.api.header_timeout import protocol_factory

    opts: dict[str, Any] = {"proxy_headers": False}
    if importlib.util.find_spec("uvloop") is not None:
        opts["loop"] = "uvloop"
    httptools = importlib.util.find_spec("httptools") is not None
    opts["http"] = protocol_factory(
        settings.header_timeout,
        httptools=httptools,
        body_timeout=settings.body_timeout,
        max_connections_per_ip=settings.max_connections_per_ip,
        trusted_proxies=settings.trusted_proxies,
    )
    return opts


async def _preflight(settings: Settings) -> None:
    """With a shared store: Redis answers, and the key-encryption key opens the signing keys
    stored there. A missing KEK file is created only after every check has passed (never
    by a start-up that then refuses)."""
    if settings.embedded:
        return
    from did_auth.adapters.store.factory import open_store
    from did_auth.core.errors import TemporarilyUnavailable
    from did_auth.core.tokens.kek import Sealer, load_kek, new_kek_file
    from did_auth.core.tokens.keys import KEYS_KEY, KeyRing

    assert settings.redis_url is not None
    kek_file = settings.key_encryption_key_file
    missing = settings.key_encryption_key is None and kek_file is not None and not (
        os.path.exists(kek_file)
    )
    store = open_store(settings.redis_url)
    try:
        try:
            await store.ping()
            stored = await store.get(KEYS_KEY)
        except TemporarilyUnavailable as exc:
            cause = exc.__cause__
            why = f" ({_redis_reason(cause)})" if cause is not None else ""
            raise StartupError(
                f"cannot reach Redis at {_redact(settings.redis_url)}{why}"
            ) from None
        if settings.signing.backend == "pkcs11":
            from did_auth.cli_keys import check_token

            problem = await check_token(settings, store)
            if problem:
                raise StartupError(problem)
            return
        if missing:
            assert kek_file is not None
            if stored is not None:
                raise StartupError(
                    f"key_encryption_key_file: {kek_file} does not exist, but Redis already "
                    "holds signing keys sealed with a key-encryption key: restore that file "
                    "(every replica uses the same one)"
                )
            new_kek_file(kek_file)  # the last check passed: create it now
        kek = load_kek(
            file=kek_file, b64=settings.key_encryption_key, create_default=None
        )
        ring = KeyRing(
            store, Sealer(kek), SystemClock(), alg=settings.key_alg,
            max_token_ttl=settings.access_token_ttl,
        )
        try:
            await ring.load()  # ConfigError when the KEK cannot open the stored keys
        except TemporarilyUnavailable:
            raise StartupError(f"cannot reach Redis at {_redact(settings.redis_url)}") from None
    finally:
        await store.close()


def _redact(url: str) -> str:
    """The Redis URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(url)
    if u.password is None:
        return url
    netloc = u.netloc.rsplit("@", 1)[1]
    user = f"{u.username}:***@" if u.username else ":***@"
    return urlunsplit((u.scheme, user + netloc, u.path, u.query, u.fragment))


def _redis_reason(exc: BaseException) -> str:
    """The operating system's reason (Connection refused) when there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and (seen.errno or seen.strerror):
            errno = seen.errno if isinstance(seen.errno, int) else 0
            return os.strerror(errno) if errno > 0 else str(seen.strerror)
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


async def _keys(args: argparse.Namespace) -> int:

    settings = _load(args.config)
    if settings.embedded:
        return _fail("keys are per-process with the in-memory store: set redis_url to manage them")
    kek_file = settings.key_encryption_key_file
    sealed = settings.signing.backend == "sealed"
    if sealed and settings.key_encryption_key is None and kek_file and not os.path.exists(kek_file):
        # Only serve creates a KEK (after its checks); keys would seal with a lost one.
        return _fail(
            f"key_encryption_key_file: {kek_file} does not exist (serve creates it at its "
            "first start; every replica and this command use the same file)"
        )
    from did_auth.cli_keys import run_keys

    return await run_keys(args, settings)


def _check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    if "issuer" not in settings.model_fields_set:
        print(
            "note: issuer is not set: serve uses http://HOST:PORT on a loopback --host and "
            "refuses any other (set issuer to the https:// URL clients use)"
        )
    return 0


def _contracts(args: argparse.Namespace) -> int:
    from did_auth.adapters.chain.deploy import deploy_registries

    if args.private_key is not None:
        return _fail(
            "--private-key is refused: a key on the command line is visible to every user "
            f"of this machine (ps); use --private-key-file PATH or ${DEPLOYER_KEY_ENV}"
        )
    key: str | None = None
    if args.private_key_file:
        try:
            with open(args.private_key_file, encoding="utf-8") as fh:
                key = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            return _fail(f"--private-key-file {args.private_key_file}: cannot read ({reason})")
    elif os.environ.get(DEPLOYER_KEY_ENV):
        key = os.environ[DEPLOYER_KEY_ENV].strip()
    print(deploy_registries(args.rpc_url, key))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "keys":
            return asyncio.run(_keys(args))
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "sessions":
            return asyncio.run(run_sessions(args, _load(args.config)))
        if args.command == "contracts":
            return _contracts(args)
    except ConfigError as exc:
        return _fail("invalid configuration: " + "; ".join(exc.problems))
    except DidAuthError as exc:  # HsmUnavailable carries the operator's line in detail
        return _fail(getattr(exc, "detail", None) or exc.description)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:  # e.g. the audit log cannot be opened
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{':' if where else ''}{where}")
    except Exception as exc:  # never a traceback: one line, exit 1
        return _fail(f"cannot {args.command}: {type(exc).__name__}: {exc}")
    return 2
