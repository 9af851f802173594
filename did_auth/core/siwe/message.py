"""EIP-4361 Sign-In with Ethereum message: validated on construction, exact text round trip.

Every way of building a `SiweMessage` (keyword construction, `from_dict`, `from_text`) runs
the same per-term checks in `__post_init__` and raises `did_auth.core.errors.SiweParseError`
naming the offending field. `from_text(t).to_text() == t` for every message `from_text`
accepts: optional parts keep their presence, so

- `statement=None` (no statement line) differs from `statement=""` (an empty statement line),
- `resources=None` (no "Resources:" line) differs from `resources=()` ("Resources:" alone),
- `request_id=None` differs from `request_id=""` ("Request ID: " with nothing after it),

exactly as the ABNF tells these texts apart. Timestamps are kept as their exact text.

Deliberate choices that are stricter than the ABNF alone:

- The address MUST be EIP-55 checksummed; all-lowercase or all-uppercase is refused (the
  siwe 4.4.0 behaviour; signinwithethereum 5.x only warns). The ABNF comment says the
  address "Must also conform to capitalization checksum encoding specified in EIP-55", and a
  relying party that accepts unchecksummed text lets one account sign many distinct
  messages meaning the same thing; wallets always emit the checksummed form.
- Chain ID must not have leading zeros ("01"): `chain_id` is an int, so such text could
  not be serialised back byte for byte. Values above 2**256 - 1 are refused.
- The domain's host must be non-empty (RFC 3986 would allow an empty reg-name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from did_auth.core.errors import SiweParseError
from did_auth.core.signatures.eip191 import is_checksum_address
from did_auth.core.siwe.parse import (
    ADDRESS_RE,
    DOMAIN_RE,
    HEADER_SUFFIX,
    NONCE_RE,
    REQUEST_ID_RE,
    SCHEME_RE,
    STATEMENT_RE,
    URI_RE,
    rfc3339_epoch,
    split_message,
)

__all__ = ["MAX_CHAIN_ID", "SiweMessage"]

#: EIP-155 chain ids are EVM words at most.
MAX_CHAIN_ID: Final = 2**256 - 1

_REQUIRED: Final = ("domain", "address", "uri", "version", "chain_id", "nonce", "issued_at")
_OPTIONAL: Final = (
    "statement",
    "expiration_time",
    "not_before",
    "request_id",
    "resources",
    "scheme",
)
_CAMEL: Final = {
    "chainId": "chain_id",
    "issuedAt": "issued_at",
    "expirationTime": "expiration_time",
    "notBefore": "not_before",
    "requestId": "request_id",
}


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bad(field: str, problem: str, value: object, reason: str) -> SiweParseError:
    return SiweParseError(f"SIWE {field}: {problem} (got {_show(value)})", reason=reason)


def _require_str(field: str, value: object) -> str:
    if not isinstance(value, str):
        if value is None:
            raise SiweParseError(f"SIWE {field} is required", reason="missing_field")
        raise _bad(field, "must be a string", value, "bad_type")
    return value


def _check_time(name: str, value: object) -> float:
    text = _require_str(name, value)
    # ERC-4361: issued-at / expiration-time / not-before "MUST be an RFC 3339 datetime string".
    epoch = rfc3339_epoch(text)
    if epoch is None:
        raise _bad(name, "is not an RFC 3339 date-time", text, f"bad_{name}")
    return epoch


@dataclass(frozen=True, slots=True, kw_only=True)
class SiweMessage:
    """One EIP-4361 message. Fields use the EIP's names in snake_case."""

    domain: str
    address: str
    statement: str | None = None
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: str
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None
    scheme: str | None = None
    # The three times in seconds since the Unix epoch, computed once when they are checked.
    _issued_epoch: float = field(init=False, repr=False, compare=False, default=0.0)
    _expiration_epoch: float | None = field(init=False, repr=False, compare=False, default=None)
    _not_before_epoch: float | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.scheme is not None:
            scheme = _require_str("scheme", self.scheme)
            # ERC-4361: scheme "MUST be an RFC 3986 URI scheme".
            if SCHEME_RE.fullmatch(scheme) is None:
                raise _bad("scheme", "is not an RFC 3986 scheme", scheme, "bad_scheme")

        domain = _require_str("domain", self.domain)
        # ERC-4361: domain "MUST be an RFC 3986 authority" (and here: a non-empty host).
        if DOMAIN_RE.fullmatch(domain) is None:
            raise _bad("domain", "is not an RFC 3986 authority", domain, "bad_domain")

        address = _require_str("address", self.address)
        # ABNF: address = "0x" 40*40HEXDIG
        if ADDRESS_RE.fullmatch(address) is None:
            raise _bad("address", "must be 0x followed by 40 hex digits", address, "bad_address")
        # ABNF comment: the address "Must also conform to capitalization checksum encoding
        # specified in EIP-55". We require it for every address (see the module docstring).
        if not is_checksum_address(address):
            raise _bad("address", "is not EIP-55 checksummed", address, "address_not_eip55")

        if self.statement is not None:
            statement = _require_str("statement", self.statement)
            # ERC-4361: the statement "MUST NOT include '\n'"; ABNF:
            # statement = *( reserved / unreserved / " " ).
            if STATEMENT_RE.fullmatch(statement) is None:
                raise _bad(
                    "statement",
                    "may only contain RFC 3986 reserved/unreserved characters and spaces",
                    statement,
                    "bad_statement",
                )

        uri = _require_str("uri", self.uri)
        # ERC-4361: uri is "An RFC 3986 URI".
        if URI_RE.fullmatch(uri) is None:
            raise _bad("uri", "is not an RFC 3986 URI", uri, "bad_uri")

        version = _require_str("version", self.version)
        # ERC-4361: version "MUST be 1 for this specification".
        if version != "1":
            raise _bad("version", "must be '1'", version, "bad_version")

        chain_id = self.chain_id
        if chain_id is None:
            raise SiweParseError("SIWE chain_id is required", reason="missing_field")
        # ABNF: chain-id = 1*DIGIT (an EIP-155 chain id).
        if type(chain_id) is not int:
            raise _bad("chain_id", "must be an integer", chain_id, "bad_chain_id")
        if not 0 <= chain_id <= MAX_CHAIN_ID:
            raise _bad("chain_id", "must be in [0, 2**256 - 1]", chain_id, "bad_chain_id")

        nonce = _require_str("nonce", self.nonce)
        # ERC-4361: nonce is "at least 8 alphanumeric characters"; ABNF 8*( ALPHA / DIGIT ).
        if NONCE_RE.fullmatch(nonce) is None:
            raise _bad("nonce", "must be at least 8 ASCII letters or digits", nonce, "bad_nonce")

        object.__setattr__(self, "_issued_epoch", _check_time("issued_at", self.issued_at))
        if self.expiration_time is not None:
            expiration = _check_time("expiration_time", self.expiration_time)
            object.__setattr__(self, "_expiration_epoch", expiration)
        if self.not_before is not None:
            not_before = _check_time("not_before", self.not_before)
            object.__setattr__(self, "_not_before_epoch", not_before)

        if self.request_id is not None:
            request_id = _require_str("request_id", self.request_id)
            # ABNF: request-id = *pchar
            if REQUEST_ID_RE.fullmatch(request_id) is None:
                raise _bad("request_id", "must be RFC 3986 pchar*", request_id, "bad_request_id")

        resources = self.resources
        if resources is not None:
            if isinstance(resources, (str, bytes)) or not isinstance(resources, (list, tuple)):
                raise _bad("resources", "must be a list of URIs", resources, "bad_type")
            for index, resource in enumerate(resources):
                text = _require_str(f"resources[{index}]", resource)
                # ERC-4361: "Every resource MUST be an RFC 3986 URI".
                if URI_RE.fullmatch(text) is None:
                    raise _bad(
                        f"resources[{index}]", "is not an RFC 3986 URI", text, "bad_resource"
                    )
            if type(resources) is not tuple:
                object.__setattr__(self, "resources", tuple(resources))

    # --- construction ------------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str) -> SiweMessage:
        """Strict EIP-4361 parse; raises SiweParseError on any deviation from the ABNF."""
        return cls(**split_message(text))

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> SiweMessage:
        """Build from a mapping with snake_case or camelCase keys (as in the spruceid vectors).

        Unlike keyword construction (where a missing argument is a TypeError), missing or
        unknown keys raise SiweParseError, so untrusted JSON can be passed straight in.
        """
        if not isinstance(fields, Mapping):
            raise SiweParseError("SIWE fields must be an object", reason="bad_type")
        kwargs: dict[str, Any] = {}
        for key, value in fields.items():
            name = _CAMEL.get(key, key)
            if name not in _REQUIRED and name not in _OPTIONAL:
                raise SiweParseError(f"SIWE: unknown field {_show(key)}", reason="unknown_field")
            if name in kwargs:
                raise SiweParseError(f"SIWE: field {name} given twice", reason="duplicate_field")
            kwargs[name] = value
        for name in _REQUIRED:
            if name not in kwargs:
                raise SiweParseError(f"SIWE {name} is required", reason="missing_field")
        return cls(**kwargs)

    # --- serialisation -----------------------------------------------------------------

    def to_text(self) -> str:
        """The exact EIP-4361 text of this message (what the wallet signs)."""
        origin = self.domain if self.scheme is None else f"{self.scheme}://{self.domain}"
        lines = [origin + HEADER_SUFFIX, self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {self.issued_at}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {self.expiration_time}")
        if self.not_before is not None:
            lines.append(f"Not Before: {self.not_before}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources is not None:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """snake_case fields (resources as a list), suitable for JSON."""
        return {
            "scheme": self.scheme,
            "domain": self.domain,
            "address": self.address,
            "statement": self.statement,
            "uri": self.uri,
            "version": self.version,
            "chain_id": self.chain_id,
            "nonce": self.nonce,
            "issued_at": self.issued_at,
            "expiration_time": self.expiration_time,
            "not_before": self.not_before,
            "request_id": self.request_id,
            "resources": None if self.resources is None else list(self.resources),
        }

    # --- derived values ------------------------------------------------------------------

    @property
    def issued_at_epoch(self) -> float:
        """`issued_at` in seconds since the Unix epoch."""
        return self._issued_epoch

    @property
    def expiration_epoch(self) -> float | None:
        """`expiration_time` in seconds since the Unix epoch, or None when absent."""
        return self._expiration_epoch

    @property
    def not_before_epoch(self) -> float | None:
        """`not_before` in seconds since the Unix epoch, or None when absent."""
        return self._not_before_epoch

    @property
    def did_pkh(self) -> str:
        """`did:pkh:eip155:<chain_id>:<EIP-55 address>`, the subject of a SIWE login."""
        return f"did:pkh:eip155:{self.chain_id}:{self.address}"
