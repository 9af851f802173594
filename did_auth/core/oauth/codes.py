"""Authorization codes at rest (RFC 6749 §4.1.2): the record a code stands for, sealed
with a key derived from the code itself, so the store (Redis) never holds usable tokens.

Written by the authorization endpoint (`OidcProvider.complete`), spent by the
`authorization_code` grant. A spent code's value is replaced by a marker naming its
session, so that a second use revokes what the first one gave (RFC 6749 §4.1.2).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any, Final

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from did_auth_verifier.jose import sha256_b64url

from did_auth.core.ports import store_keys

__all__ = [
    "USED_TTL",
    "VERIFIER_RE",
    "code_keys",
    "open_code",
    "s256_challenge",
    "seal_code",
    "used_marker",
    "used_sid",
]

USED_TTL: Final = 600  # how long a used code is remembered (replay -> revoke the session)
# RFC 7636 §4.1: code-verifier = 43*128unreserved.
VERIFIER_RE: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")

_LIVE: Final = b"\x01"
_USED: Final = b"\x00used:"


def s256_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return sha256_b64url(verifier.encode("ascii"))


def code_keys(code: str) -> tuple[str, bytes]:
    """(store key, AES-256-GCM key), both derived from the code; the store sees neither."""
    raw = code.encode("ascii", "replace")
    key_id = hashlib.sha256(b"did-auth code id\x00" + raw).hexdigest()
    enc = hashlib.sha256(b"did-auth code key\x00" + raw).digest()
    return store_keys.oauth_code(key_id), enc


def seal_code(code: str, record: dict[str, Any]) -> tuple[str, bytes]:
    """(store key, sealed value) for a fresh code."""
    key, enc = code_keys(code)
    iv = secrets.token_bytes(12)
    return key, _LIVE + iv + AESGCM(enc).encrypt(iv, orjson.dumps(record), key.encode())


def open_code(code: str, raw: bytes) -> dict[str, Any] | None:
    """The record sealed under `code`, or None (wrong code, spent, or tampered with)."""
    if not raw.startswith(_LIVE):
        return None
    key, enc = code_keys(code)
    try:
        record: dict[str, Any] = orjson.loads(
            AESGCM(enc).decrypt(raw[1:13], raw[13:], key.encode())
        )
    except (InvalidTag, ValueError, orjson.JSONDecodeError):
        return None
    return record


def used_marker(sid: str) -> bytes:
    return _USED + sid.encode()


def used_sid(raw: bytes) -> str | None:
    """The session a spent code stood for, or None when `raw` is not a spent-code marker."""
    if not raw.startswith(_USED):
        return None
    return raw[len(_USED) :].decode("ascii", "replace")
