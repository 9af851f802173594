"""RFC 9449 at the authorization server: check a DPoP proof, bind tokens to its key.

Proof checks are those of `did_auth_verifier.dpop` (§4.3); here we add what needs shared
state: `jti` single use across replicas (the store), and server-provided nonces (§8), which
are stateless HMACs over a time window so that every replica accepts every other's nonces.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from did_auth_verifier import errors as verifier_errors
from did_auth_verifier.dpop import DPoPVerifier
from did_auth_verifier.jose import b64url_encode

from did_auth.core.clock import Clock
from did_auth.core.errors import (
    DidAuthError,
    InvalidDpopProof,
    InvalidToken,
    TemporarilyUnavailable,
    UseDpopNonce,
)
from did_auth.core.ports import store_keys
from did_auth.core.ports.store import Store

__all__ = ["DpopGate"]

_NONCE_WINDOW = 300


class _NoReplayCache:
    """jti single use is enforced against the shared store after the proof checks."""

    def add_if_absent(self, key: str, ttl: float) -> bool:
        return True


def _server_error(exc: verifier_errors.VerifierError) -> DidAuthError:
    """The server's error for a failure of the verifier's proof checks, same code and
    description (`did_auth.edge.api.errors` maps only the `did_auth.core.errors` tree to HTTP)."""
    if isinstance(exc, verifier_errors.InvalidToken):
        return InvalidToken(exc.description, reason=exc.reason)
    if isinstance(exc, verifier_errors.UseDpopNonce):
        return UseDpopNonce(exc.description, nonce=exc.nonce, reason=exc.reason)
    if isinstance(exc, verifier_errors.TemporarilyUnavailable):
        return TemporarilyUnavailable(exc.description, reason=exc.reason)
    return InvalidDpopProof(exc.description, reason=exc.reason)


class DpopGate:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        secret: bytes,
        require_nonce: bool,
        iat_window: int = 60,
    ) -> None:
        self._store = store
        self._clock = clock
        self._secret = hashlib.sha256(b"did-auth dpop nonce\x00" + secret).digest()
        self._require_nonce = require_nonce
        self._iat_window = iat_window
        self._verifier = DPoPVerifier(_NoReplayCache(), clock=clock, iat_window=iat_window)

    @property
    def algs(self) -> tuple[str, ...]:
        """The proof algorithms accepted (RFC 9449 §7.1 `algs`, §5.1 discovery)."""
        return self._verifier.allowed_algs

    def new_nonce(self) -> str:
        window = int(self._clock.now()) // _NONCE_WINDOW
        return self._nonce_for(window)

    def _nonce_for(self, window: int) -> str:
        raw = struct.pack(">Q", window)
        mac = hmac.new(self._secret, raw, hashlib.sha256).digest()[:16]
        return b64url_encode(raw + mac)

    def _nonce_ok(self, nonce: str | None) -> bool:
        if not nonce:
            return False
        window = int(self._clock.now()) // _NONCE_WINDOW
        return any(hmac.compare_digest(nonce, self._nonce_for(w)) for w in (window, window - 1))

    async def check(
        self, proofs: list[str], *, htm: str, htu: str, required: bool, bound_jkt: str | None = None
    ) -> str | None:
        """The proof key's thumbprint (`cnf.jkt`), or None when no proof was sent."""
        if not proofs:
            if required or bound_jkt:
                raise InvalidDpopProof("a DPoP proof is required", reason="dpop_missing")
            return None
        # RFC 9449 §4.3 ¶1: there is not more than one DPoP HTTP request header field.
        if len(proofs) > 1:
            raise InvalidDpopProof("more than one DPoP header", reason="dpop_multiple")
        nonce_check = None
        if self._require_nonce:

            def nonce_check(n: str | None) -> bool:
                return self._nonce_ok(n)

        try:
            proof = self._verifier.verify_proof(
                proofs[0], htm=htm, htu=htu, nonce=nonce_check, jkt=bound_jkt
            )
        except verifier_errors.UseDpopNonce:
            raise UseDpopNonce(
                "a fresh DPoP nonce is required", nonce=self.new_nonce(), reason="dpop_nonce"
            ) from None
        except verifier_errors.InvalidToken:
            # The verifier's key-binding failure is a resource-server answer (RFC 9449 §7.1);
            # at the authorization server every DPoP failure is invalid_dpop_proof (§5: "If
            # the DPoP proof is invalid, the authorization server issues an error response
            # per Section 5.2 of [RFC6749] with invalid_dpop_proof as the value of the error
            # parameter").
            raise InvalidDpopProof(
                "the DPoP proof's key is not the one the grant is bound to",
                reason="dpop_binding",
            ) from None
        except verifier_errors.VerifierError as exc:
            raise _server_error(exc) from None
        # §11.1: the server MUST NOT accept a proof whose jti it has seen within the window.
        ttl = 2 * self._iat_window + 5
        if not await self._store.put(store_keys.dpop_jti(proof.jti), b"1", ttl, nx=True):
            raise InvalidDpopProof("DPoP proof replayed", reason="dpop_replay")
        return proof.jkt

    async def check_resource(
        self, proofs: list[str], *, htm: str, htu: str, access_token: str, jkt: str
    ) -> None:
        """A proof for a request to one of our own protected endpoints (with `ath`)."""
        if len(proofs) != 1:
            raise InvalidDpopProof("exactly one DPoP proof is required", reason="dpop_missing")
        try:
            proof = self._verifier.verify_proof(
                proofs[0], htm=htm, htu=htu, access_token=access_token, jkt=jkt
            )
        except verifier_errors.VerifierError as exc:
            raise _server_error(exc) from None
        if not await self._store.put(
            store_keys.dpop_jti(proof.jti), b"1", 2 * self._iat_window + 5, nx=True
        ):
            raise InvalidDpopProof("DPoP proof replayed", reason="dpop_replay")
