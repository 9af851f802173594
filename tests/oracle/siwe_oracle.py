"""The `signinwithethereum` oracle process: runs in `.venv-oracle` (never in `.venv`).

signinwithethereum 5.0.2 pins web3 < 8 and eth-account < 0.14, older than the server's, so
it lives in an environment of its own (tests/oracle/requirements.txt, created by
`scripts/bootstrap.sh --dev`) and answers the tests and benchmarks over a pipe: one JSON
request per line on stdin, one JSON reply per line on stdout. It imports only `siwe`, what
`siwe` brings and the standard library; the client side is `tests.oracle.SiweOracle`.

Requests (`op`):
  hello                     -> {"versions": {distribution: version}}
  parse   {"texts": [...]}  -> {"verdicts": [["accept", {fields}, prepared_text] | ["reject"]]}
  time    {"case", "text", "signature", "timestamp", "provider_url", "loops"}
                            -> {"ns": elapsed}: `loops` calls timed here, in-process, so the
                               pipe is never part of a measured figure. case "parse_verify":
                               SiweMessage.from_message(text) + .verify(signature, ...) per
                               call; case "verify": the message parsed once, .verify(...) per
                               call. `provider_url` gives verify() a web3 HTTPProvider (the
                               EIP-1271 / EIP-6492 path); `timestamp` (ISO 8601) fixes "now".
Every reply carries "ok"; a failed request answers {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from importlib import metadata
from typing import Any

from siwe import SiweMessage

_providers: dict[str, Any] = {}


def _fields(msg: SiweMessage) -> dict[str, Any]:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "scheme": msg.scheme,
        "domain": msg.domain,
        "address": msg.address,
        "statement": msg.statement,
        "uri": str(msg.uri),
        "version": str(msg.version),
        "chain_id": msg.chain_id,
        "nonce": msg.nonce,
        "issued_at": str(msg.issued_at),
        "expiration_time": text(msg.expiration_time),
        "not_before": text(msg.not_before),
        "request_id": msg.request_id,
        "resources": None if msg.resources is None else [str(r) for r in msg.resources],
    }


def parse(text: str) -> list[Any]:
    try:
        msg = SiweMessage.from_message(text)
    except Exception:  # the oracle raises ValueError / pydantic errors
        return ["reject"]
    return ["accept", _fields(msg), msg.prepare_message()]


def _provider(url: str | None) -> Any:
    if url is None:
        return None
    if url not in _providers:  # one provider (one keep-alive session) per node
        from web3 import HTTPProvider

        _providers[url] = HTTPProvider(url)
    return _providers[url]


def time_case(req: dict[str, Any]) -> int:
    text, signature, loops = req["text"], req["signature"], int(req["loops"])
    kwargs: dict[str, Any] = {}
    if req.get("timestamp"):
        kwargs["timestamp"] = datetime.fromisoformat(req["timestamp"])
    if req.get("provider_url"):
        kwargs["provider"] = _provider(req["provider_url"])
    if req["case"] == "parse_verify":
        start = time.perf_counter_ns()
        for _ in range(loops):
            SiweMessage.from_message(text).verify(signature, **kwargs)
        return time.perf_counter_ns() - start
    if req["case"] == "verify":
        msg = SiweMessage.from_message(text)
        start = time.perf_counter_ns()
        for _ in range(loops):
            msg.verify(signature, **kwargs)
        return time.perf_counter_ns() - start
    raise ValueError(f"unknown case {req['case']!r}")


def handle(req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "hello":
        names = ("signinwithethereum", "web3", "eth-account")
        return {"versions": {name: metadata.version(name) for name in names}}
    if op == "parse":
        return {"verdicts": [parse(text) for text in req["texts"]]}
    if op == "time":
        return {"ns": time_case(req)}
    raise ValueError(f"unknown op {op!r}")


def main() -> int:
    for line in sys.stdin:
        try:
            reply = {"ok": True, **handle(json.loads(line))}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
