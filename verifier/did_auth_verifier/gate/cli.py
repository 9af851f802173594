"""`did-auth-gate --config gate.toml`: the gateway check service.

A bad configuration prints one line per problem (`gate.toml: routes[0].method: ...`) and
exits 1, with no traceback; `--check-config` validates and exits (0 and "ok", or 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from did_auth_verifier.gate.config import ConfigError, GateConfig, load_config

__all__ = ["main"]


async def _run(config: GateConfig) -> None:
    from did_auth_verifier.gate.app import Gate

    gate = Gate(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await gate.start()
    host, port = gate.server.sockets[0]
    print(f"did-auth-gate: listening on http://{host}:{port} for {config.audience} "
          f"(issuer {config.issuer}, {len(config.routes)} routes)", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await gate.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="did-auth-gate",
                                     description="did-auth gateway check service")
    parser.add_argument("--config", required=True, help="path of gate.toml")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration and exit")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    if args.check_config:
        print("ok")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_run(config))
    except OSError as exc:
        print(f"did-auth-gate: cannot listen on {config.host}:{config.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
