"""The `did-auth` command line: serve, keys, contracts, check-config.

Exit codes: 0 success, 1 user error (one line on stderr, no traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from did_auth.clock import SystemClock
from did_auth.errors import ConfigError, DidAuthError
from did_auth.settings import Settings, load_settings

__all__ = ["main"]

CONFIG_ENV = "DID_AUTH_CONFIG"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="did-auth", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the auth server")
    serve.add_argument("--config", help="TOML config file (default: embedded defaults)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)

    keys = sub.add_parser("keys", help="signing keys")
    keys.add_argument("action", choices=["list", "rotate"])
    keys.add_argument("--config", help="TOML config file")
    keys.add_argument(
        "--publish-ahead",
        type=float,
        default=60.0,
        help="seconds the new key is published before it signs (default 60)",
    )

    contracts = sub.add_parser("contracts", help="on-chain registries")
    contracts.add_argument("action", choices=["deploy"])
    contracts.add_argument("--rpc-url", required=True)
    contracts.add_argument("--private-key", help="deployer key (default: the node's account 0)")

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file")
    return p


def _fail(message: str) -> int:
    print(f"did-auth: {message}", file=sys.stderr)
    return 1


def _load(path: str | None, overrides: dict[str, Any] | None = None) -> Settings:
    return load_settings(path or os.environ.get(CONFIG_ENV) or None, overrides=overrides)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, Any] = {}
    path = args.config or os.environ.get(CONFIG_ENV)
    if path is None and "DID_AUTH_ISSUER" not in os.environ:
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
        overrides["issuer"] = f"http://{host}:{args.port}"
    settings = _load(path, overrides)
    if args.workers > 1 and settings.embedded:
        return _fail("--workers > 1 needs a shared store: set redis_url")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(_preflight(settings))
    mode = "embedded defaults (in-memory store)" if path is None else path
    print(f"did-auth {settings.issuer} ({mode})", flush=True)
    print(f"  issuer:    {settings.issuer}", flush=True)
    print(f"  discovery: {settings.issuer}/.well-known/openid-configuration", flush=True)
    if settings.demo_client is not None:
        print(f"  demo page: {settings.issuer}/demo/", flush=True)
    if args.workers > 1:
        os.environ[CONFIG_ENV] = os.path.abspath(path) if path else ""
        for k, v in overrides.items():
            os.environ[f"DID_AUTH_{k.upper()}"] = str(v)
        uvicorn.run(
            "did_auth.api.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
            **_uvicorn_options(settings),
        )
        return 0
    from did_auth.api.app import create_app

    uvicorn.run(
        create_app(settings), host=args.host, port=args.port, log_level="warning",
        **_uvicorn_options(settings),
    )
    return 0


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvloop and httptools when installed (issue 9: the event loop and HTTP parser in C),
    else uvicorn's pure-Python ones. No uvicorn proxy-header rewriting: did-auth reads
    X-Forwarded-For itself, only from its configured `trusted_proxies` (uvicorn would also
    trust any 127.0.0.1 peer, and redo the work on every request). The HTTP protocol
    closes a connection that has not sent a complete request head within
    `header_timeout` seconds (slow-header clients); it is pickled to every worker."""
    import importlib.util

    from did_auth.api.header_timeout import protocol_factory

    opts: dict[str, Any] = {"proxy_headers": False}
    if importlib.util.find_spec("uvloop") is not None:
        opts["loop"] = "uvloop"
    httptools = importlib.util.find_spec("httptools") is not None
    opts["http"] = protocol_factory(settings.header_timeout, httptools=httptools)
    return opts


async def _preflight(settings: Settings) -> None:
    """Fail fast with a one-line message on a wrong key-encryption key (not on an
    unreachable Redis: the server then starts and answers 503 until it returns)."""
    if settings.embedded:
        return
    from did_auth.errors import TemporarilyUnavailable
    from did_auth.store.base import open_store
    from did_auth.tokens.kek import Sealer, load_kek
    from did_auth.tokens.keys import KeyRing

    store = open_store(settings.redis_url)
    kek = load_kek(
        file=settings.key_encryption_key_file,
        b64=settings.key_encryption_key,
        create_default="kek.bin",
    )
    ring = KeyRing(
        store, Sealer(kek), SystemClock(), alg=settings.signing_alg,
        max_token_ttl=settings.access_token_ttl,
    )
    try:
        await ring.load()
    except TemporarilyUnavailable:
        print("did-auth: warning: Redis unreachable; serving 503 until it is back", file=sys.stderr)
    finally:
        await store.close()


async def _keys(args: argparse.Namespace) -> int:
    from did_auth.services import build_services

    settings = _load(args.config)
    if settings.embedded:
        return _fail("keys are per-process with the in-memory store: set redis_url to manage them")
    svc = build_services(settings)
    try:
        await svc.keys.load()
        if args.action == "rotate":
            from did_auth.tokens.keys import REFRESH_INTERVAL

            if args.publish_ahead <= REFRESH_INTERVAL:
                return _fail(f"--publish-ahead must be more than {REFRESH_INTERVAL:g} seconds")
            new = await svc.keys.rotate(publish_ahead=args.publish_ahead)
            print(f"rotated: new key {new.kid} signs from {_ts(new.active_from)}")
        for k in svc.keys.keys:
            state = "current" if k.retire_at is None else f"retires {_ts(k.retire_at)}"
            print(f"{k.kid}  {k.alg}  active from {_ts(k.active_from)}  {state}")
    finally:
        await svc.close()
    return 0


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_config(args: argparse.Namespace) -> int:
    try:
        load_settings(args.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def _contracts(args: argparse.Namespace) -> int:
    from did_auth.chain.deploy import deploy_registries

    print(deploy_registries(args.rpc_url, args.private_key))
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
        if args.command == "contracts":
            return _contracts(args)
    except ConfigError as exc:
        return _fail("invalid configuration: " + "; ".join(exc.problems))
    except DidAuthError as exc:
        return _fail(exc.description)
    except KeyboardInterrupt:
        return 0
    return 2
