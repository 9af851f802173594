"""`did-auth sessions revoke-all --config FILE [--reason TEXT]`: end every session at once.

An incident command (a signing key or the KEK leaked): the global cut-off T goes to the
shared store, so every replica refuses at once the refresh of every session authenticated
at or before T and, at its own resources, every access token issued before it; one feed
entry tells every verifier (and did-auth-gate) of this release the same, pushed to it
within a second; then each session is ended and announced by sid for older verifiers
(`did_auth.core.flows.revoke_all`). Users sign in again; a login from the second after T works.

Only with `redis_url`: an in-memory store lives inside the serving process, which this
command cannot reach (restarting that process ends its sessions). One line on success
(T); Redis down is one line on stderr and exit 1; the command is safe to repeat.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from did_auth.adapters.monitoring.audit import AuditEvent, AuditLog, Outcome
from did_auth.config.settings import Settings
from did_auth.core.clock import SystemClock
from did_auth.core.errors import TemporarilyUnavailable
from did_auth.core.flows.revocations import RevocationBook
from did_auth.core.flows.revoke_all import announce_sessions, revoke_all_sessions
from did_auth.core.ports import store_keys
from did_auth.core.tokens.sessions import SessionStore

__all__ = ["add_sessions_parser", "run_sessions"]


def add_sessions_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sessions = sub.add_parser("sessions", help="login sessions (incident commands)")
    sessions.add_argument("action", choices=["revoke-all"])
    sessions.add_argument(
        "--config", help="TOML config file of the servers, with redis_url "
        "(default: $DID_AUTH_CONFIG)"
    )
    sessions.add_argument(
        "--reason",
        default="",
        help="why, for the audit log, never on the public feed (default: none)",
    )


def _fail(message: str) -> int:
    print(f"did-auth: {message}", file=sys.stderr)
    return 1


def _redact(url: str) -> str:
    u = urlsplit(url)
    if u.password is None:
        return url
    netloc = ("" if not u.username else u.username) + ":***@" + u.netloc.rsplit("@", 1)[1]
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def _why(exc: BaseException) -> str:
    """The operating system's reason (Connection refused) when there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno > 0:
            return f" ({os.strerror(seen.errno)})"
        seen = seen.__cause__ or seen.__context__
    return ""


async def _session_ids(client: object) -> AsyncIterator[str]:
    """Every session id in the store (SCAN: on every node of a cluster, never blocking
    Redis); a session that ends meanwhile is skipped by the caller."""
    head, tail = store_keys.session("*").split("*")
    async for key in client.scan_iter(match=f"{head}*{tail}", count=1000):  # type: ignore[attr-defined]
        name = key.decode() if isinstance(key, bytes) else str(key)
        yield name[len(head):len(name) - len(tail)]


async def run_sessions(args: argparse.Namespace, settings: Settings) -> int:
    if settings.redis_url is None:
        return _fail(
            "sessions revoke-all needs the shared store (redis_url in --config): an in-memory "
            "store lives inside the serving process and cannot be reached from here; "
            "restarting that process ends all of its sessions"
        )
    from redis.exceptions import RedisError

    from did_auth.adapters.store.redis import RedisStore

    url = settings.redis_url
    store = RedisStore.from_url(url)
    down = (TemporarilyUnavailable, RedisError, OSError)
    try:
        try:
            await store.ping()
        except down as exc:
            return _fail(f"cannot reach Redis at {_redact(url)}{_why(exc)}: nothing was revoked")
        clock = SystemClock()
        sessions = SessionStore(
            store, clock, refresh_ttl=settings.refresh_token_ttl,
            max_lifetime=settings.session_max_lifetime, grace=settings.refresh_grace,
        )
        book = RevocationBook(
            store, sessions, clock, access_ttl=settings.access_token_ttl,
            session_lifetime=settings.session_max_lifetime,
        )
        try:
            result = await revoke_all_sessions(book)
        except down as exc:
            return _fail(
                f"cannot reach Redis at {_redact(url)}{_why(exc)}: the revocation may be "
                "incomplete; run the command again (it is safe to repeat)"
            )
        failed: BaseException | None = None
        announced = 0
        try:
            announced = await announce_sessions(book, result.before, _session_ids(store.client))
        except down as exc:
            failed = exc
        audit = AuditLog.from_setting(settings.audit_log)
        try:
            audit.emit(
                AuditEvent.SESSIONS_REVOKED_ALL,
                Outcome.FAILURE if failed else Outcome.SUCCESS,
                reason=args.reason or None, before=result.before,
                feed_cursor=result.cursor, sessions_announced=announced,
            )
        finally:
            audit.close()
        when = datetime.fromtimestamp(result.before, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if failed is not None:
            return _fail(
                f"cut-off {result.before} ({when}) is in force, but Redis failed while "
                f"announcing each session for older verifiers{_why(failed)}: run the "
                "command again (it is safe to repeat)"
            )
        print(
            f"revoked every session: cut-off {result.before} ({when}); sessions authenticated "
            f"at or before it are refused by every replica now and by verifiers as the feed "
            f"reaches them; {announced} sessions also announced by sid for older verifiers"
        )
        return 0
    finally:
        await store.close()
