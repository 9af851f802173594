"""Every key name did-auth writes to the store, in one place.

All keys start with `PREFIX` (`da:`). The part in braces is the Redis Cluster hash tag
(https://redis.io/docs/reference/cluster-spec/#hash-tags): every key of one family member
(a session, a nonce, a bucket) lands in one slot, so that the multi-key scripts the stores
run on it stay single-slot. The strings below are a storage format: existing data and the
cluster slot tests depend on them, so a change here is a migration.

This module imports only the standard library: the core (flows, policy, tokens, oauth)
and the adapters name keys through it without depending on a store implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FEED_CHANNEL",
    "FEED_STREAM",
    "HSM_SIGNING_KEYS",
    "PREFIX",
    "REVOKED_ALL_BEFORE",
    "SIGNING_KEYS",
    "KeyFamily",
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
    "passkey_challenge",
    "passkey_credential_owner",
    "passkey_outstanding",
    "passkeys",
    "rate_bucket",
    "session",
    "watch_cursor",
    "watch_lease",
]

PREFIX = "da:"

#: The signing key ring (sealed private keys and the public JWKS).
SIGNING_KEYS = "da:{keys}:ring"
#: The ring of the PKCS#11 backend (key ids and times only: the keys stay in the token).
HSM_SIGNING_KEYS = "da:{keys}:hsm-ring"
#: The revocation feed (a stream) and the pub/sub channel each entry is also published on.
FEED_STREAM = "da:{feed}:revocations"
FEED_CHANNEL = "da:revocations"
#: The global revocation cut-off (`did-auth sessions revoke-all`): Unix seconds; every
#: session authenticated at or before it is dead.
REVOKED_ALL_BEFORE = "da:{revoke-all}:before"


@dataclass(frozen=True, slots=True)
class KeyFamily:
    """The keys `da:{<tag>:<id>}<suffix>` of one family; calling it with the id (or the ids,
    joined by `:`) names one key. `lower`: ids are case-insensitive (addresses)."""

    tag: str
    suffix: str = ""
    lower: bool = False

    def __call__(self, *ids: object) -> str:
        ident = ":".join(str(i) for i in ids)
        return f"{PREFIX}{{{self.tag}:{ident.lower() if self.lower else ident}}}{self.suffix}"


# Sessions and tokens.
#: A login session (its refresh-token family), by sid.
session = KeyFamily("s", ":sess")
#: A revoked access token, by jti (kept until its `exp`).
denied_jti = KeyFamily("jti")
#: The index of the sessions of one Ethereum account (an address).
account_sessions = KeyFamily("acct", ":sids", lower=True)
#: The index of the sessions authenticated with one key (an address or a CAIP-10 account).
auth_key_sessions = KeyFamily("authkey", ":sids", lower=True)

# One-time values.
#: A DPoP proof's `jti`, remembered for replay detection (RFC 9449 §11.1).
dpop_jti = KeyFamily("dpop")
#: A client assertion's `jti` (RFC 7523 §3), by digest, remembered until its `exp`.
client_assertion_jti = KeyFamily("cajti")
#: An authorization code (RFC 6749 §4.1), by the id derived from it.
oauth_code = KeyFamily("code")
#: A pending `/authorize` request between the redirect and the wallet's signature.
authorize_request = KeyFamily("az")


def nonce(kind: str, value: str) -> str:
    """A nonce of one kind (`n`: EIP-4361 login nonces; others per flow)."""
    return KeyFamily(kind)(value)


# Second factor (by account key).
otp_secret = KeyFamily("otp", ":secret")
otp_pending = KeyFamily("otp", ":pending")
#: The passkeys (WebAuthn credentials, sign counters) of one account: one record.
passkeys = KeyFamily("pk", ":creds", lower=True)
#: Which account registered a WebAuthn credential id (WebAuthn L2 §7.1 step 22: one
#: credential id is registered for at most one user).
passkey_credential_owner = KeyFamily("pkid")
#: An outstanding WebAuthn challenge (registration or assertion), single use, by its value.
passkey_challenge = KeyFamily("pkch")
#: The outstanding passkey challenges of one account (a capped set: flooding the options
#: endpoints cannot fill the store).
passkey_outstanding = KeyFamily("pk", ":outstanding", lower=True)

# Chain watcher (by chain id): the last processed block, and the lease that makes one
# replica the watcher of the chain.
watch_cursor = KeyFamily("watch", ":cursor")
watch_lease = KeyFamily("watch", ":lease")
#: The in-flight login counter of one client and source address (client_id, ip key).
concurrency_cap = KeyFamily("cap")


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
