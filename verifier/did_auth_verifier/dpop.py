"""DPoP (RFC 9449) proofs: checking, JWK thumbprints (RFC 7638) and a client-side helper.

Pure and reusable by the authorization server (token endpoint) and by resource servers:

* `jwk_thumbprint(jwk)`: RFC 7638 SHA-256 thumbprint, the value of `cnf.jkt` (RFC 9449 §6.1).
* `DPoPVerifier(replay_cache).verify_proof(proof, htm=..., htu=..., access_token=..., ...)`:
  every check of RFC 9449 §4.3, returning a `DPoPProof` whose `jkt` the server binds into
  the token (`cnf.jkt`) or compares with the token's binding.
* `make_dpop_proof(private_key, htm=..., htu=..., access_token=...)`: builds a proof (clients,
  tests, examples).

The replay cache is a small protocol (`add_if_absent(key, ttl) -> bool`) so the server can
back it by its shared store; `InMemoryReplayCache` is a bounded single-process version.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from did_auth_verifier import jose
from did_auth_verifier.clock import Clock, SystemClock
from did_auth_verifier.errors import (
    InvalidDpopProof,
    InvalidToken,
    TemporarilyUnavailable,
    UseDpopNonce,
)
from did_auth_verifier.jose import (
    ALG_CURVES,
    JoseError,
    b64url_decode,
    parse_json_object,
    public_jwk,
    public_key_from_jwk,
    sha256_b64url,
    sign_jws,
)

__all__ = [
    "DEFAULT_DPOP_ALGS",
    "DPoPProof",
    "DPoPVerifier",
    "InMemoryReplayCache",
    "ReplayCache",
    "access_token_hash",
    "jwk_thumbprint",
    "make_dpop_proof",
    "normalize_htu",
]

DEFAULT_DPOP_ALGS: tuple[str, ...] = ("ES256", "EdDSA")
_DPOP_TYPS: Final = frozenset({"dpop+jwt", "application/dpop+jwt"})
# Header parameters that would make a verifier look for keys elsewhere, or that we do not
# understand: never acceptable in a proof, whose key is the embedded `jwk`.
_FORBIDDEN_HEADER: Final = frozenset({"jku", "x5u", "x5c", "crit", "b64", "zip", "enc"})
_MAX_JTI = 256


# -- RFC 7638 thumbprints ---------------------------------------------------------------

def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint (the `cnf.jkt` value, RFC 9449 §6.1) of a proof's
    key: `did_auth_verifier.jose.jwk_thumbprint`, raising `InvalidDpopProof` on a malformed
    JWK."""
    try:
        return jose.jwk_thumbprint(jwk)
    except JoseError as exc:
        raise InvalidDpopProof(str(exc), reason="malformed_jwk") from None


def access_token_hash(access_token: str) -> str:
    """The `ath` value: RFC 9449 §4.2 "the base64url encoding [...] [of] the SHA-256 [...]
    hash of the ASCII encoding of the associated access token's value"."""
    return sha256_b64url(access_token.encode("ascii"))


# -- htu normalisation (RFC 9449 §4.3, RFC 3986 §6.2.2 and §6.2.3) ---------------------------

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_PCT: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters allowed verbatim in a path (pchar + "/"), besides percent-encodings.
_PATH_SAFE: Final = "-._~!$&'()*+,;=:@/%"


def _pct_normalize(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    # §6.2.2.1: hex digits upper case; §6.2.2.2: decode percent-encoded unreserved chars.
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 §5.2.4 / §6.2.2.3 for absolute paths.
    if "." not in path:
        return path
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if path.endswith(("/.", "/..")):
        out.append("")
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def normalize_htu(url: str) -> str:
    """Normalise an http(s) URI for `htu` comparison, dropping query and fragment.

    RFC 9449 §4.3 ¶9: "The htu claim matches the HTTP URI value for the HTTP request in which
    the JWT was received, ignoring any query and fragment parts." and "servers SHOULD employ
    syntax-based normalization (Section 6.2.2 of [RFC3986]) and scheme-based normalization
    (Section 6.2.3 of [RFC3986]) before comparing the htu claim": lower-case scheme and
    host, default port removed, empty path -> "/", percent-encodings upper-cased, unreserved
    characters decoded, dot segments removed. Raises `ValueError` on anything else.
    """
    if not isinstance(url, str):
        raise ValueError("URI is not a string")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("URI scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        # RFC 9110 §4.2.4: "A sender MUST NOT generate the userinfo subcomponent".
        raise ValueError("userinfo is not allowed in an http(s) URI")
    host = parts.hostname
    if not host:
        raise ValueError("URI has no host")
    port = parts.port  # raises ValueError when not a valid port
    authority = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        authority += f":{port}"
    path = _PCT.sub(_pct_normalize, parts.path)
    path = quote(path, safe=_PATH_SAFE)
    path = _remove_dot_segments(path) if path else "/"
    return urlunsplit((scheme, authority, path, "", ""))


# -- replay protection --------------------------------------------------------------------


@runtime_checkable
class ReplayCache(Protocol):
    def add_if_absent(self, key: str, ttl: float) -> bool:
        """Record `key` for `ttl` seconds; False when it is already recorded (a replay)."""
        ...


class InMemoryReplayCache:
    """Bounded, thread-safe, single-process replay cache.

    When full of live entries it fails closed (`TemporarilyUnavailable`) rather than
    evicting entries that are still inside their acceptance window, which would reopen
    a replay window.
    """

    def __init__(self, *, max_entries: int = 100_000, clock: Clock | None = None) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._entries: dict[str, float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def add_if_absent(self, key: str, ttl: float) -> bool:
        now = self._clock.now()
        with self._lock:
            expires = self._entries.get(key)
            if expires is not None and expires > now:
                return False
            if expires is None and len(self._entries) >= self._max:
                self._purge(now)
                if len(self._entries) >= self._max:
                    raise TemporarilyUnavailable(
                        "DPoP replay cache is full", reason="replay_cache_full"
                    )
            self._entries[key] = now + max(ttl, 1.0)
            return True

    def _purge(self, now: float) -> None:
        expired = [k for k, exp in self._entries.items() if exp <= now]
        for k in expired:
            del self._entries[k]


# -- proof checking -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A checked DPoP proof. `jkt` is what `cnf.jkt` binds to (RFC 9449 §6.1)."""

    jkt: str
    jti: str
    htm: str
    htu: str
    iat: float
    alg: str
    jwk: Mapping[str, str]
    ath: str | None = None
    nonce: str | None = None


NonceCheck = str | Callable[[str | None], bool]


def _is_number(value: object) -> bool:
    return type(value) is int or type(value) is float


class DPoPVerifier:
    """Checks DPoP proof JWTs against the request they arrived with (RFC 9449 §4.3).

    The caller guarantees §4.3 ¶1 ("There is not more than one DPoP HTTP request header
    field"); `did_auth_verifier.fastapi` does.
    """

    def __init__(
        self,
        replay_cache: ReplayCache | None = None,
        *,
        clock: Clock | None = None,
        iat_window: float = 60.0,
        allowed_algs: Iterable[str] = DEFAULT_DPOP_ALGS,
        max_proof_length: int = 4096,
    ) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._replay: ReplayCache = (
            replay_cache if replay_cache is not None else InMemoryReplayCache(clock=self._clock)
        )
        if iat_window <= 0:
            raise ValueError("iat_window must be positive")
        self._iat_window = float(iat_window)
        algs = tuple(allowed_algs)
        for alg in algs:
            # RFC 9449 §4.2: alg "MUST NOT be none or an identifier for a symmetric
            # algorithm"; only asymmetric algorithms we can verify are accepted.
            if alg not in ALG_CURVES:
                raise ValueError(f"DPoP algorithm {alg!r} is not supported")
        if not algs:
            raise ValueError("at least one DPoP algorithm is required")
        self._algs = frozenset(algs)
        self._algs_ordered = algs
        self._max_len = max_proof_length

    @property
    def allowed_algs(self) -> tuple[str, ...]:
        """For `dpop_signing_alg_values_supported` and the `algs` challenge parameter."""
        return self._algs_ordered

    @property
    def clock(self) -> Clock:
        return self._clock

    def verify_proof(
        self,
        proof_jwt: str,
        *,
        htm: str,
        htu: str,
        access_token: str | None = None,
        nonce: NonceCheck | None = None,
        jkt: str | None = None,
    ) -> DPoPProof:
        """Check `proof_jwt` for a request `htm htu`; consume its `jti`; return the proof.

        `access_token`: the token presented with the proof at a resource server (`ath` is
        then required and compared). `nonce`: the nonce the server demands (a string, or a
        predicate accepting the proof's `nonce`). `jkt`: the thumbprint the presented token
        is bound to (`cnf.jkt`); checked before the `jti` is consumed.
        Raises `InvalidDpopProof`, `UseDpopNonce`, `InvalidToken` (key binding mismatch) or
        `TemporarilyUnavailable` (replay cache unavailable).
        """
        # §4.3 ¶2: "The DPoP HTTP request header field value is a single and well-formed JWT."
        if not isinstance(proof_jwt, str) or not proof_jwt or len(proof_jwt) > self._max_len:
            raise InvalidDpopProof("DPoP proof is not a JWT", reason="dpop_malformed")
        try:
            raw = proof_jwt.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidDpopProof("DPoP proof is not a JWT", reason="dpop_malformed") from None
        segments = raw.split(b".")
        if len(segments) != 3 or not segments[2]:
            raise InvalidDpopProof("DPoP proof is not a signed JWT", reason="dpop_malformed")
        try:
            header = parse_json_object(b64url_decode(segments[0]))
            claims = parse_json_object(b64url_decode(segments[1]))
            signature = b64url_decode(segments[2])
        except JoseError:
            raise InvalidDpopProof("DPoP proof is not a JWT", reason="dpop_malformed") from None

        # §4.3 ¶4: "The typ JOSE Header Parameter has the value dpop+jwt."
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in _DPOP_TYPS:
            raise InvalidDpopProof("DPoP proof typ must be dpop+jwt", reason="dpop_typ")
        # §4.3 ¶5: "The alg JOSE Header Parameter indicates a registered asymmetric digital
        # signature algorithm [...], is not none, is supported by the application, and is
        # acceptable per local policy."
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algs:
            raise InvalidDpopProof("DPoP proof alg not allowed", reason="dpop_alg")
        if _FORBIDDEN_HEADER.intersection(header):
            raise InvalidDpopProof("unsupported DPoP header parameter", reason="dpop_header")
        # §4.3 ¶7: "The jwk JOSE Header Parameter does not contain a private key."
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidDpopProof("DPoP proof has no jwk", reason="dpop_jwk")
        try:
            key = public_key_from_jwk(jwk, alg=alg, allowed_algs=self._algs)
        except JoseError as exc:
            raise InvalidDpopProof(f"DPoP jwk rejected: {exc}", reason="dpop_jwk") from None
        # §4.3 ¶6: "The JWT signature verifies with the public key contained in the jwk JOSE
        # Header Parameter."
        signing_input = raw[: len(segments[0]) + 1 + len(segments[1])]
        if not key.verify(signing_input, signature):
            raise InvalidDpopProof("DPoP proof signature is invalid", reason="dpop_signature")

        # §4.3 ¶3: "All required claims per Section 4.2 are contained in the JWT."
        jti = claims.get("jti")
        c_htm = claims.get("htm")
        c_htu = claims.get("htu")
        iat = claims.get("iat")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise InvalidDpopProof("DPoP proof jti missing", reason="dpop_claims")
        if not isinstance(c_htm, str) or not isinstance(c_htu, str) or not _is_number(iat):
            raise InvalidDpopProof("DPoP proof lacks htm/htu/iat", reason="dpop_claims")
        assert isinstance(iat, int | float)

        # §4.3 ¶8: "The htm claim matches the HTTP method of the current request."
        if c_htm != htm:
            raise InvalidDpopProof("DPoP proof htm mismatch", reason="dpop_htm")
        # §4.3 ¶9: "The htu claim matches the HTTP URI value for the HTTP request in which the
        # JWT was received, ignoring any query and fragment parts." (normalised, see above)
        try:
            request_htu = normalize_htu(htu)
        except ValueError:
            raise InvalidDpopProof("request URI is not http(s)", reason="dpop_htu") from None
        try:
            proof_htu = normalize_htu(c_htu)
        except ValueError:
            raise InvalidDpopProof("DPoP proof htu is invalid", reason="dpop_htu") from None
        if proof_htu != request_htu:
            raise InvalidDpopProof("DPoP proof htu mismatch", reason="dpop_htu")

        # §4.3 ¶11: "The creation time of the JWT [...] is within an acceptable window."
        now = self._clock.now()
        if abs(now - iat) > self._iat_window:
            raise InvalidDpopProof("DPoP proof iat outside the window", reason="dpop_iat")

        # §4.3 ¶10: "If the server provided a nonce value to the client, the nonce claim
        # matches the server-provided nonce value."
        c_nonce = claims.get("nonce")
        if c_nonce is not None and not isinstance(c_nonce, str):
            raise InvalidDpopProof("DPoP proof nonce is invalid", reason="dpop_nonce")
        if nonce is not None:
            if isinstance(nonce, str):
                ok = c_nonce is not None and hmac.compare_digest(c_nonce, nonce)
                expected = nonce
            else:
                ok = bool(nonce(c_nonce))
                expected = ""
            if not ok:
                raise UseDpopNonce(
                    "a fresh DPoP nonce is required", nonce=expected, reason="dpop_nonce"
                )

        # §4.3 ¶12: "If presented to a protected resource in conjunction with an access
        # token, ensure that the value of the ath claim equals the hash of that access
        # token, and confirm that the public key to which the access token is bound matches
        # the public key from the DPoP proof."
        c_ath = claims.get("ath")
        if c_ath is not None and not isinstance(c_ath, str):
            raise InvalidDpopProof("DPoP proof ath is invalid", reason="dpop_ath")
        if access_token is not None:
            try:
                expected_ath = access_token_hash(access_token)
            except UnicodeEncodeError:
                raise InvalidToken("access token is not ASCII", reason="malformed") from None
            if c_ath is None or not hmac.compare_digest(c_ath, expected_ath):
                raise InvalidDpopProof("DPoP proof is not for this access token", reason="dpop_ath")
        thumbprint = jwk_thumbprint(key.jwk)
        if jkt is not None and not hmac.compare_digest(thumbprint, jkt):
            # RFC 9449 §7.1 example: error="invalid_token", "Invalid DPoP key binding".
            raise InvalidToken("Invalid DPoP key binding", reason="dpop_binding")

        # RFC 9449 §11.1: servers "MUST only accept DPoP proofs for a limited time after
        # their creation" and SHOULD store, "in the context of the target URI", the jti of
        # each proof for that window. Consumed last, once every other check has passed.
        replay_key = sha256_b64url(
            b"\x00".join((proof_htu.encode("utf-8"), thumbprint.encode(), jti.encode("utf-8")))
        )
        ttl = iat + self._iat_window - now + 1.0
        try:
            fresh = self._replay.add_if_absent("dpop-jti:" + replay_key, ttl)
        except TemporarilyUnavailable:
            raise
        except Exception as exc:  # store down: fail closed
            raise TemporarilyUnavailable(
                "DPoP replay cache unavailable", reason="replay_cache_unavailable"
            ) from exc
        if not fresh:
            raise InvalidDpopProof("DPoP proof replayed", reason="dpop_replay")
        return DPoPProof(
            jkt=thumbprint,
            jti=jti,
            htm=c_htm,
            htu=c_htu,
            iat=iat,
            alg=alg,
            jwk=MappingProxyType(dict(key.jwk)),
            ath=c_ath,
            nonce=c_nonce,
        )


# -- client helper ------------------------------------------------------------------------


def make_dpop_proof(
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    *,
    htm: str,
    htu: str,
    access_token: str | None = None,
    nonce: str | None = None,
    jti: str | None = None,
    iat: float | None = None,
    clock: Clock | None = None,
) -> str:
    """A DPoP proof JWT for one request (ES256 for P-256 keys, EdDSA for Ed25519 keys).

    `htu` is stripped of query and fragment (RFC 9449 §4.2). `ath` is added when
    `access_token` is given. `jti` defaults to 128 random bits; `iat` to `clock.now()`.
    """
    alg, jwk = public_jwk(private_key.public_key())
    parts = urlsplit(htu)
    payload: dict[str, Any] = {
        "jti": jti if jti is not None else secrets.token_urlsafe(16),
        "htm": htm,
        "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
        "iat": int(iat if iat is not None else (clock or SystemClock()).now()),
    }
    if access_token is not None:
        payload["ath"] = access_token_hash(access_token)
    if nonce is not None:
        payload["nonce"] = nonce
    return sign_jws(private_key, {"typ": "dpop+jwt", "alg": alg, "jwk": jwk}, payload)
