"""Every key name did-auth writes to the store, in one place.

All keys start with `PREFIX` (`da:`). The part in braces is the Redis Cluster hash tag
(https://redis.io/docs/reference/cluster-spec/#hash-tags): every key of one family member
(a session, a nonce, a bucket) lands in one slot, so that the multi-key scripts the stores
run on it stay single-slot. The strings below are a storage format: existing data and the
cluster slot tests depend on them, so a change here is a migration.

This module imports nothing: the core (flows, policy, tokens, oauth) and the adapters name
keys through it without depending on a store implementation.
"""

from __future__ import annotations

__all__ = [
    "FEED_CHANNEL",
    "FEED_STREAM",
    "PREFIX",
    "SIGNING_KEYS",
    "account_sessions",
    "auth_key_sessions",
    "authorize_request",
    "backoff_otp",
    "backoff_scope",
    "client_assertion_jti",
    "concurrency_cap",
    "denied_jti",
    "dpop_jti",
    "nonce",
    "oauth_code",
    "otp_pending",
    "otp_secret",
    "rate_bucket",
    "session",
    "watch_cursor",
    "watch_lease",
]

PREFIX = "da:"

#: The signing key ring (sealed private keys and the public JWKS).
SIGNING_KEYS = "da:{keys}:ring"
#: The revocation feed (a stream) and the pub/sub channel each entry is also published on.
FEED_STREAM = "da:{feed}:revocations"
FEED_CHANNEL = "da:revocations"


# --------------------------------------------------------------------- sessions, tokens


def session(sid: str) -> str:
    """A login session (its refresh-token family)."""
    return f"da:{{s:{sid}}}:sess"


def denied_jti(jti: str) -> str:
    """A revoked access token (until its `exp`)."""
    return f"da:{{jti:{jti}}}"


def account_sessions(account: str) -> str:
    """The index of the sessions of one Ethereum account (lower-case address)."""
    return f"da:{{acct:{account.lower()}}}:sids"


def auth_key_sessions(key: str) -> str:
    """The index of the sessions authenticated with one key (an address or CAIP-10)."""
    return f"da:{{authkey:{key.lower()}}}:sids"


# ------------------------------------------------------------------- one-time values


def nonce(kind: str, value: str) -> str:
    """A nonce of one kind (`n`: EIP-4361 login nonces; others per flow)."""
    return f"da:{{{kind}:{value}}}"


def dpop_jti(jti: str) -> str:
    """A DPoP proof's `jti`, remembered for replay detection (RFC 9449 §11.1)."""
    return f"da:{{dpop:{jti}}}"


def client_assertion_jti(digest: str) -> str:
    """A client assertion's `jti` (RFC 7523 §3), remembered until its `exp`."""
    return f"da:{{cajti:{digest}}}"


def oauth_code(key_id: str) -> str:
    """An authorization code (RFC 6749 §4.1), by the id derived from it."""
    return f"da:{{code:{key_id}}}"


def authorize_request(request_id: str) -> str:
    """A pending `/authorize` request between the redirect and the wallet's signature."""
    return f"da:{{az:{request_id}}}"


# ---------------------------------------------------------------------- second factor


def otp_secret(account: str) -> str:
    return f"da:{{otp:{account}}}:secret"


def otp_pending(account: str) -> str:
    return f"da:{{otp:{account}}}:pending"


# ------------------------------------------------------------------------ abuse policy


def rate_bucket(bucket: str, prefix: str = PREFIX) -> str:
    """A GCRA rate-limit bucket, e.g. `da:{rl:verify:ip:203.0.113.7}`."""
    return f"{prefix}{{rl:{bucket}}}"


def backoff_scope(scope: str, prefix: str = PREFIX) -> tuple[str, str]:
    """(failure counter, block marker) of one login backoff scope (`ip:…`, `pair:…`)."""
    return f"{prefix}{{bo:{scope}}}:f", f"{prefix}{{bo:{scope}}}:b"


def backoff_otp(account: str, prefix: str = PREFIX) -> tuple[str, str]:
    """(failure counter, gate) of one account's second-factor backoff."""
    return f"{prefix}{{bo:otp:{account}}}:f", f"{prefix}{{bo:otp:{account}}}:g"


def concurrency_cap(client_id: str, ip_key: str) -> str:
    """The in-flight login counter of one client and source address."""
    return f"da:{{cap:{client_id}:{ip_key}}}"


# ----------------------------------------------------------------------- chain watcher


def watch_cursor(chain_id: int) -> str:
    """The revocation watcher's last processed block of one chain."""
    return f"da:{{watch:{chain_id}}}:cursor"


def watch_lease(chain_id: int) -> str:
    """The lease that makes one replica the watcher of one chain."""
    return f"da:{{watch:{chain_id}}}:lease"
