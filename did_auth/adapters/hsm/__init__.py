"""PKCS#11 adapter (`[signing] backend = "pkcs11"`): token-signing keys and the
key-encryption key inside a hardware security module. The core sees only the
`SigningBackend` and `SecretSealer` seams (did_auth.core.tokens); the binding (python-pkcs11)
is imported here and nowhere in the core."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from did_auth.adapters.hsm.backend import Pkcs11Backend
from did_auth.adapters.hsm.sealer import HsmSealer
from did_auth.adapters.hsm.token import HsmUnavailable, KeyMissing, Pkcs11Token
from did_auth.config.models import SigningConfig

__all__ = ["Hsm", "HsmUnavailable", "KeyMissing", "open_hsm", "read_pin"]

# The DPoP server-nonce MAC key (flows/dpop_gate.py) derived from the token's AES key.
DPOP_SECRET_LABEL = b"did-auth dpop nonce"


@dataclass(frozen=True)
class Hsm:
    token: Pkcs11Token
    backend: Pkcs11Backend
    sealer: HsmSealer

    def dpop_secret(self) -> bytes:
        return self.sealer.derive(DPOP_SECRET_LABEL)

    def close(self) -> None:
        self.token.close()


def read_pin(config: SigningConfig) -> str:
    """The user PIN from `pin_file` or the `pin_env` variable (never from the config)."""
    if config.pin_file:
        try:
            return Path(config.pin_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            problem = f"signing.pin_file: {config.pin_file}: cannot read ({reason})"
            raise HsmUnavailable(problem) from None
    pin = os.environ.get(config.pin_env or "")
    if not pin:
        problem = f"signing.pin_env: the environment variable {config.pin_env} is not set"
        raise HsmUnavailable(problem)
    return pin


def open_hsm(config: SigningConfig) -> Hsm:
    """Log in to the token and make sure its key-encryption key exists (HsmUnavailable
    with one operator line when the module, the token, the PIN or the key is wrong)."""
    assert config.module and config.token_label
    token = Pkcs11Token(config.module, config.token_label, read_pin(config))
    sealer = HsmSealer(token, config.kek_label)
    sealer.ensure_key()
    return Hsm(token=token, backend=Pkcs11Backend(token), sealer=sealer)
