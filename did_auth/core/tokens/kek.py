"""Key-encryption key (KEK) and AES-256-GCM sealing of private keys at rest."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from did_auth.core.errors import ConfigError

__all__ = ["KEK_BYTES", "Sealer", "SecretSealer", "load_kek", "new_kek_file"]

KEK_BYTES = 32
log = logging.getLogger("did_auth.keys")


class SecretSealer(Protocol):
    """Seals secrets at rest (TOTP seeds): `Sealer` here, or AES-GCM inside a PKCS#11 token
    (`did_auth.adapters.hsm`). `open` raises ConfigError when the ciphertext is not this key's."""

    def seal(self, plaintext: bytes, aad: bytes) -> bytes: ...

    def open(self, sealed: bytes, aad: bytes) -> bytes: ...


class Sealer:
    """AES-256-GCM with a random 96-bit nonce; `aad` binds a ciphertext to its key id."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEK_BYTES:
            raise ConfigError([f"key encryption key: must be {KEK_BYTES} bytes"])
        self._aead = AESGCM(kek)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], aad)
        except (InvalidTag, ValueError):
            raise ConfigError(
                [
                    "key_encryption_key: cannot decrypt the stored signing keys with this key "
                    "(every replica must use the same key-encryption key)"
                ]
            ) from None


def _check_private(shown: str, path: Path) -> None:
    """Refuse a KEK file that group or others may read or write (as ssh refuses a private
    key: "permissions 0644 are too open"): whoever reads it can unseal every signing key."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        problem = f"key_encryption_key_file {shown}: cannot read ({exc.strerror})"
        raise ConfigError([problem]) from None
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(
            [
                f"key_encryption_key_file {shown}: permissions {stat.S_IMODE(mode):04o} are "
                "too open (must be 0600 or stricter)"
            ]
        )


def new_kek_file(path: str | Path) -> None:
    """Create a KEK file with 32 random bytes, mode 600 (never overwrites one)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        problem = f"key_encryption_key_file: {path}: cannot create ({exc.strerror})"
        raise ConfigError([problem]) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(KEK_BYTES))
    log.warning("created a new key-encryption key at %s (mode 600); back it up", path)


def load_kek(*, file: str | None, b64: str | None, create_default: str | None) -> bytes:
    """The KEK from base64 text, else a file (created mode 600 with a warning when missing;
    refused when group or others have any access to it)."""
    if b64:
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(["key_encryption_key: not valid base64"]) from None
        if len(raw) != KEK_BYTES:
            raise ConfigError([f"key_encryption_key: must decode to {KEK_BYTES} bytes"])
        return raw
    path_text = file or create_default
    if path_text is None:
        # Embedded mode: keys live only in this process, so an ephemeral KEK is enough.
        return secrets.token_bytes(KEK_BYTES)
    path = Path(path_text)
    if not path.exists():
        new_kek_file(path)
    _check_private(path_text, path)
    raw = path.read_bytes()
    if len(raw) != KEK_BYTES:
        raise ConfigError([f"key_encryption_key_file: {path} must hold exactly {KEK_BYTES} bytes"])
    return raw
