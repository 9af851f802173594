"""The audit trail: one JSON line per security decision.

Each line is a JSON object (RFC 8259) with, in this order:
`ts` (RFC 3339 UTC time, milliseconds, `Z`), `event` (one of `AuditEvent`), `outcome`,
`reason` (a machine-readable reason code), `request_id`, `client_id`, `subject`, `ip`, then
any extra fields. Absent values are `null`.

Never a secret: a redaction guard runs on every record before it is written. A field is
dropped (its dotted path listed in `"redacted"`) when its *name* is secret-like
(signature, token, access_token, refresh_token, otp, proof, private_key, secret, password,
message, dpop, authorization, cookie, ...), or when its *value* looks like a credential:
a compact JWS/JWT (`xxx.yyy.zzz`), an `rt_` refresh token, a 0x-hex signature (>= 65 bytes),
or a 64-hex private key (except in fields that carry public 32-byte identifiers: `sid`,
`tx_hash`, `block_hash`). Long strings are truncated, so attacker-supplied input cannot
bloat the log.

Sinks (the `audit_log` setting): `"stdout"`, or a file path opened once with `O_APPEND` and
written with one `write(2)` per line, so several worker processes can share one file
without interleaving; `AuditLog.memory()` keeps the records in memory for tests.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from did_auth.core.ports.audit import AuditEvent, Outcome, RequestOrigin

__all__ = [
    "AuditEvent",
    "AuditLog",
    "AuditSink",
    "FileSink",
    "MemorySink",
    "Outcome",
    "RequestOrigin",
    "StdoutSink",
    "redact",
]

log = logging.getLogger(__name__)


_CORE = ("ts", "event", "outcome", "reason", "request_id", "client_id", "subject", "ip")
_MAX_STR = 1024

_SECRET_NAMES = frozenset(
    {
        "signature",
        "sig",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "otp",
        "code",
        "proof",
        "private_key",
        "privkey",
        "secret",
        "client_secret",
        "password",
        "message",
        "dpop",
        "authorization",
        "cookie",
        "kek",
        "key_encryption_key",
        "mnemonic",
        "seed",
    }
)
_SECRET_PARTS = ("secret", "password", "passwd", "private", "signature", "mnemonic")
_SECRET_SUFFIXES = ("_token", "_otp", "_proof")
# Public 32-byte identifiers that are hex by design and must stay searchable.
_HEX_ID_FIELDS = frozenset({"sid", "tx_hash", "block_hash"})

_SECRET_VALUES = (
    # A compact JWS/JWT: a JOSE header always starts with '{"' = "eyJ" in base64url...
    re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
    # ...and any three long base64url segments joined by dots.
    re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
    # did-auth refresh tokens: rt_ + base64url(sid || secret).
    re.compile(r"(?<![A-Za-z0-9])rt_[A-Za-z0-9_-]{16,}"),
    # Signatures: 0x + at least 65 bytes of hex (EOA 65 bytes; EIP-1271/6492 longer).
    re.compile(r"0x[0-9a-fA-F]{130,}"),
)
_PRIVATE_KEY = re.compile(r"(?<![0-9a-fA-Fx])(?:0x)?[0-9a-fA-F]{64}(?![0-9a-fA-F])")


@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    n = name.lower().replace("-", "_")
    return (
        n in _SECRET_NAMES
        or any(p in n for p in _SECRET_PARTS)
        or n.endswith(_SECRET_SUFFIXES)
    )


# One pass over a value instead of one per pattern (the audit line is on every login).
_ANY_SECRET_VALUE = re.compile("|".join(f"(?:{p.pattern})" for p in _SECRET_VALUES))


def _secret_value(value: str, field: str) -> bool:
    if len(value) < 16:
        return False  # shorter than the shortest pattern above (and than a private key)
    if _ANY_SECRET_VALUE.search(value):
        return True
    return field not in _HEX_ID_FIELDS and _PRIVATE_KEY.search(value) is not None


def _clean(value: Any, path: str, field: str, dropped: list[str]) -> tuple[bool, Any]:
    """(keep, cleaned value)."""
    if value is None or isinstance(value, (bool, int, float)):
        return True, value
    if isinstance(value, (bytes, bytearray, memoryview)):
        dropped.append(path)  # raw bytes in an audit record are never needed
        return False, None
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            ks = str(k)
            sub = f"{path}.{ks}"
            if _secret_name(ks):
                dropped.append(sub)
                continue
            keep, cv = _clean(v, sub, ks.lower(), dropped)
            if keep:
                out[ks] = cv
        return True, out
    if isinstance(value, (list, tuple, set, frozenset)):
        items: list[Any] = []
        for i, v in enumerate(value):
            keep, cv = _clean(v, f"{path}[{i}]", field, dropped)
            if keep:
                items.append(cv)
        return True, items
    text = value if isinstance(value, str) else str(value)
    if _secret_value(text, field):
        dropped.append(path)
        return False, None
    if len(text) > _MAX_STR:
        text = text[:_MAX_STR] + "...[truncated]"
    return True, text


def redact(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `record` without secret-looking fields; their paths go to `"redacted"`."""
    dropped: list[str] = []
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("ts", "event"):
            out[key] = value
            continue
        if _secret_name(key):
            dropped.append(key)
            if key in _CORE:
                out[key] = None
            continue
        keep, cv = _clean(value, key, key.lower(), dropped)
        if keep:
            out[key] = cv
        elif key in _CORE:
            out[key] = None  # core fields are always present
    if dropped:
        out["redacted"] = dropped
    return out


class AuditSink(Protocol):
    def write(self, line: bytes) -> None:
        """Write one complete line (ending in a newline) in one piece."""
        ...

    def close(self) -> None: ...


class StdoutSink:
    """Lines to standard output (looked up at each write, so redirection works)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def write(self, line: bytes) -> None:
        with self._lock:
            out = sys.stdout
            out.write(line.decode())
            out.flush()

    def close(self) -> None:
        return None


class FileSink:
    """Append to a file, opened once (mode 600 when created), one `write(2)` per line.

    `O_APPEND` makes each write land atomically at the current end of the file, so worker
    processes sharing the path never interleave or overwrite each other's lines.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd: int | None = os.open(self.path, flags, 0o600)

    def write(self, line: bytes) -> None:
        if self._fd is None:
            raise OSError("audit sink is closed")
        view = memoryview(line)
        while view:  # a regular file takes it whole; loop only on a short write
            n = os.write(self._fd, view)
            view = view[n:]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class MemorySink:
    """Keeps lines in memory (tests, the load test's bookkeeping)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def write(self, line: bytes) -> None:
        with self._lock:
            self.lines.append(line.decode())

    def close(self) -> None:
        return None

    @property
    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.lines]


def _rfc3339(t: float) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class AuditLog:
    """Writes audit records through a sink; see the module docstring for the line format."""

    def __init__(self, sink: AuditSink, *, clock: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self._clock = clock
        self.write_errors = 0

    @classmethod
    def from_setting(cls, audit_log: str) -> AuditLog:
        """`"stdout"` (or `"-"`) writes to standard output; anything else is a file path."""
        if audit_log in ("stdout", "-", ""):
            return cls(StdoutSink())
        return cls(FileSink(audit_log))

    @classmethod
    def memory(cls, *, clock: Callable[[], float] = time.time) -> AuditLog:
        return cls(MemorySink(), clock=clock)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records written so far, for a memory sink."""
        if not isinstance(self.sink, MemorySink):
            raise TypeError("records are only kept by the memory sink")
        return self.sink.records

    def emit(
        self,
        event: AuditEvent | str,
        outcome: Outcome | str,
        *,
        reason: str | None = None,
        ctx: RequestOrigin | None = None,
        request_id: str | None = None,
        client_id: str | None = None,
        subject: str | None = None,
        ip: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write one record and return it (as written, after redaction). `ctx`: the
        request the event is about, whose id and client IP it records.

        A failing sink (disk full, closed pipe) does not fail the request: the error is
        logged and counted in `write_errors`.
        """
        ev = AuditEvent(event)  # ValueError for an unknown event name
        if ctx is not None:
            request_id, ip = ctx.request_id, ctx.ip
        clash = set(extra) & set(_CORE)
        if clash:
            raise ValueError(f"reserved audit field(s): {sorted(clash)}")
        record: dict[str, Any] = {
            "ts": _rfc3339(self._clock()),
            "event": ev.value,
            "outcome": str(outcome),
            "reason": reason,
            "request_id": request_id,
            "client_id": client_id,
            "subject": subject,
            "ip": ip,
            **extra,
        }
        clean = redact(record)
        line = orjson.dumps(clean, default=str) + b"\n"
        try:
            self.sink.write(line)
        except OSError:
            self.write_errors += 1
            log.exception("audit sink write failed")
        return clean

    def close(self) -> None:
        self.sink.close()
