"""A software WebAuthn authenticator for tests (ES256, attestation "none"): builds what a
browser returns from `navigator.credentials.create()` / `.get()` (WebAuthn L2 §6.1
authenticator data, §5.8.1 client data), with knobs to forge every field an attack needs
(origin, RP id, challenge, counter, flags, credential)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    rp_id: str = "localhost"
    origin: str = "http://localhost:8000"
    backup_eligible: bool = False
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    sign_count: int = 0

    def _cose_key(self) -> bytes:
        nums = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: nums.x.to_bytes(32, "big"),
                            -3: nums.y.to_bytes(32, "big")})

    def _flags(self, uv: bool, extra: int = 0) -> int:
        flags = UP | (UV if uv else 0) | extra
        if self.backup_eligible:
            flags |= BE | BS
        return flags

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None, uv: bool = True) -> dict[str, Any]:
        pk = options["publicKey"]
        client_data = self._client_data("webauthn.create", pk["challenge"], origin)
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        attested = (bytes(16) + struct.pack(">H", len(self.credential_id))
                    + self.credential_id + self._cose_key())
        auth_data = (rp_hash + bytes([self._flags(uv, AT)])
                     + struct.pack(">I", self.sign_count) + attested)
        att = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64u(self.credential_id), "rawId": b64u(self.credential_id),
            "type": "public-key",
            "response": {"clientDataJSON": b64u(client_data), "attestationObject": b64u(att),
                         "transports": ["internal"]},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
        }

    def get(self, options: dict[str, Any] | str, *, origin: str | None = None,
            rp_id: str | None = None, uv: bool = True, count: int | None = None,
            be: bool | None = None) -> dict[str, Any]:
        """An assertion for `options` (or a bare challenge string). The counter goes up by
        one unless `count` is given."""
        challenge = options if isinstance(options, str) else options["publicKey"]["challenge"]
        if count is None:
            self.sign_count += 1
            count = self.sign_count
        client_data = self._client_data("webauthn.get", challenge, origin)
        rp_hash = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        flags = self._flags(uv)
        if be is not None:
            flags = (flags | BE) if be else (flags & ~(BE | BS))
        auth_data = rp_hash + bytes([flags]) + struct.pack(">I", count)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64u(self.credential_id), "rawId": b64u(self.credential_id),
            "type": "public-key",
            "response": {"clientDataJSON": b64u(client_data),
                         "authenticatorData": b64u(auth_data),
                         "signature": b64u(signature), "userHandle": None},
            "clientExtensionResults": {}, "authenticatorAttachment": "platform",
        }
