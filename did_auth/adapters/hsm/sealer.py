"""The key-encryption key as an AES-256 key in the token: TOTP seeds are sealed by
CKM_AES_GCM inside the token (a random 96-bit IV, a 128-bit tag, the record's key name as
additional authenticated data), so no key-encryption key exists in a file or in memory.

The layout is the same as `did_auth.core.tokens.kek.Sealer`'s: IV || ciphertext || tag
(PKCS#11 v2.40 §2.11.1 CKM_AES_GCM appends the tag to the ciphertext).

`derive(label)` gives a 32-byte secret for MACs that need bytes in memory (the DPoP
server-nonce key): NIST SP 800-108 counter-mode KDF with AES-CMAC (CKM_AES_CMAC) as the
PRF, K(i) = CMAC(KEK, [i]8 || label || 0x00 || [256]16), so every replica sharing the
token derives the same secret and nobody without the token can.
"""

from __future__ import annotations

import secrets

from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, ObjectClass

from did_auth.adapters.hsm.token import HsmUnavailable, KeyMissing, Pkcs11Token, TokenSession
from did_auth.core.errors import ConfigError

__all__ = ["HsmSealer"]

_IV_BYTES = 12
_TAG_BITS = 128


class HsmSealer:
    """`SecretSealer` by the token's AES key labelled `label`."""

    def __init__(self, token: Pkcs11Token, label: str) -> None:
        self.token = token
        self.label = label

    def ensure_key(self) -> None:
        """Create the AES-256 key-encryption key in the token unless it exists (sensitive,
        never extractable, encrypt/decrypt/sign for CMAC only)."""

        def op(ts: TokenSession) -> None:
            try:
                ts.find(ObjectClass.SECRET_KEY, self.label, cached=False)
            except KeyMissing:
                ts.session.generate_key(
                    KeyType.AES,
                    256,
                    store=True,
                    label=self.label,
                    id=self.label.encode(),
                    template={
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.PRIVATE: True,
                        Attribute.ENCRYPT: True,
                        Attribute.DECRYPT: True,
                        Attribute.SIGN: True,
                        Attribute.WRAP: False,
                        Attribute.UNWRAP: False,
                    },
                )

        self.token.run(op)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        iv = secrets.token_bytes(_IV_BYTES)

        def op(ts: TokenSession) -> bytes:
            key = ts.find(ObjectClass.SECRET_KEY, self.label)
            params = GCMParams(iv, aad, _TAG_BITS)
            sealed = key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            return bytes(sealed)

        return iv + self.token.run(op)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        def op(ts: TokenSession) -> bytes:
            key = ts.find(ObjectClass.SECRET_KEY, self.label)
            params = GCMParams(sealed[:_IV_BYTES], aad, _TAG_BITS)
            data = sealed[_IV_BYTES:]
            return bytes(key.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))

        try:
            return self.token.run(op)
        except KeyMissing:
            raise
        except HsmUnavailable:
            # A token that answers other calls refused this ciphertext: not sealed by this
            # key (or altered). SoftHSM reports a bad tag as CKR_GENERAL_ERROR, so ask.
            self.token.run(lambda ts: ts.find(ObjectClass.SECRET_KEY, self.label, cached=False))
            raise ConfigError(
                [f"signing.kek_label: the token's key {self.label!r} cannot open this sealed "
                 "secret (sealed under another key-encryption key, or altered)"]
            ) from None

    def derive(self, label: bytes) -> bytes:
        def op(ts: TokenSession) -> bytes:
            key = ts.find(ObjectClass.SECRET_KEY, self.label)
            blocks = [
                bytes(key.sign(bytes([i]) + label + b"\x00" + (256).to_bytes(2, "big"),
                               mechanism=Mechanism.AES_CMAC))
                for i in (1, 2)
            ]
            return b"".join(blocks)

        return self.token.run(op)
