"""EIP-4361 ABNF: strict line-based Sign-In with Ethereum parser, RFC 3986 / RFC 3339 term checks.

The grammar (ERC-4361, "ABNF Message Format"):

    sign-in-with-ethereum =
        [ scheme "://" ] domain %s" wants you to sign in with your Ethereum account:" LF
        address LF
        LF
        [ statement LF ]
        LF
        %s"URI: " uri LF
        %s"Version: " version LF
        %s"Chain ID: " chain-id LF
        %s"Nonce: " nonce LF
        %s"Issued At: " issued-at
        [ LF %s"Expiration Time: " expiration-time ]
        [ LF %s"Not Before: " not-before ]
        [ LF %s"Request ID: " request-id ]
        [ LF %s"Resources:" resources ]

No term may contain LF, so the message is split on LF and each line is matched against the
one shape the grammar allows at that point. This module only finds the terms (structure);
`did_auth.core.siwe.message.SiweMessage` validates each term with the regexes defined here, so
text and hand-built messages go through the same checks.

All character classes are spelled out in ASCII: Python's `\\d`, `\\w` and `str.isalnum`
accept non-ASCII digits and letters, which the ABNF core rules (RFC 5234) do not.
"""

from __future__ import annotations

import re
from typing import Any, Final

from did_auth.core.errors import SiweParseError

__all__ = [
    "ADDRESS_RE",
    "CHAIN_ID_RE",
    "DOMAIN_RE",
    "HEADER_SUFFIX",
    "MAX_MESSAGE_LENGTH",
    "NONCE_RE",
    "REQUEST_ID_RE",
    "SCHEME_RE",
    "STATEMENT_RE",
    "URI_RE",
    "rfc3339_epoch",
    "split_message",
]

#: ERC-4361 "Maximum Lengths for ABNF Terms": implementers SHOULD choose maximum lengths to
#: prevent denial of service. A whole message above 16 KiB is refused before any parsing.
MAX_MESSAGE_LENGTH: Final = 16 * 1024

HEADER_SUFFIX: Final = " wants you to sign in with your Ethereum account:"

# --- RFC 3986 (section 2 and appendix A) ---------------------------------------------------

_HEXDIG = "0-9A-Fa-f"
_UNRESERVED = "A-Za-z0-9._~\\-"  # ALPHA / DIGIT / "-" / "." / "_" / "~"
_SUB_DELIMS = "!$&'()*+,;="
_GEN_DELIMS = ":/?#\\[\\]@"


def _star(chars: str) -> str:
    """`*( [chars] / pct-encoded )` as an unrolled, backtracking-safe regex."""
    return f"[{chars}]*(?:%[{_HEXDIG}]{{2}}[{chars}]*)*"


_PCHAR = _UNRESERVED + _SUB_DELIMS + ":@"
_SEGMENT = _star(_PCHAR)  # segment = *pchar
_PATH_CHARS = _star(_PCHAR + "/")
_QUERY = _star(_PCHAR + "/?")  # query = fragment = *( pchar / "/" / "?" )
_USERINFO = _star(_UNRESERVED + _SUB_DELIMS + ":")
_REG_NAME = _star(_UNRESERVED + _SUB_DELIMS)
_DEC_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = f"{_DEC_OCTET}(?:\\.{_DEC_OCTET}){{3}}"
_H16 = f"[{_HEXDIG}]{{1,4}}"
_LS32 = f"(?:{_H16}:{_H16}|{_IPV4})"


def _h16s(n: int) -> str:
    """`*n( h16 ":" ) h16`, i.e. 1..n+1 colon-separated h16 groups."""
    return f"(?:{_H16}:){{0,{n}}}{_H16}"


_IPV6 = (
    "(?:"
    + "|".join(
        [
            f"(?:{_H16}:){{6}}{_LS32}",
            f"::(?:{_H16}:){{5}}{_LS32}",
            f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            f"(?:{_h16s(1)})?::(?:{_H16}:){{3}}{_LS32}",
            f"(?:{_h16s(2)})?::(?:{_H16}:){{2}}{_LS32}",
            f"(?:{_h16s(3)})?::{_H16}:{_LS32}",
            f"(?:{_h16s(4)})?::{_LS32}",
            f"(?:{_h16s(5)})?::{_H16}",
            f"(?:{_h16s(6)})?::",
        ]
    )
    + ")"
)
_IPVFUTURE = f"v[{_HEXDIG}]+\\.[{_UNRESERVED}{_SUB_DELIMS}:]+"
_IP_LITERAL = f"\\[(?:{_IPV6}|{_IPVFUTURE})\\]"
# host = IP-literal / IPv4address / reg-name; every IPv4address is also a reg-name, so the
# IPv4 alternative adds nothing to what is accepted.
_HOST = f"(?:{_IP_LITERAL}|{_REG_NAME})"
_PORT = "[0-9]*"
_AUTHORITY = f"(?:{_USERINFO}@)?{_HOST}(?::{_PORT})?"
_SCHEME = "[A-Za-z][A-Za-z0-9+.\\-]*"

#: RFC 3986 `URI = scheme ":" hier-part [ "?" query ] [ "#" fragment ]`, where hier-part is
#: `"//" authority path-abempty` or a path that does not start with "//" (path-absolute,
#: path-rootless and path-empty together are exactly that).
URI_RE: Final = re.compile(
    f"{_SCHEME}:(?://{_AUTHORITY}(?:/{_PATH_CHARS})?|(?!//){_PATH_CHARS})"
    f"(?:\\?{_QUERY})?(?:#{_QUERY})?"
)
#: RFC 3986 scheme.
SCHEME_RE: Final = re.compile(_SCHEME)
#: EIP-4361 `domain = authority`, with one deliberate restriction: the host must not be
#: empty. RFC 3986 allows an empty reg-name, which would make " wants you to sign in..."
#: (the "missing domain" vector) valid; a sign-in request always comes from some host.
DOMAIN_RE: Final = re.compile(f"(?:{_USERINFO}@)?(?![:]|\\Z){_HOST}(?::{_PORT})?")

# --- EIP-4361 terms ---------------------------------------------------------------------

#: address = "0x" 40*40HEXDIG (EIP-55 checked separately).
ADDRESS_RE: Final = re.compile(f"0x[{_HEXDIG}]{{40}}")
#: statement = *( reserved / unreserved / " " ); reserved = gen-delims / sub-delims.
STATEMENT_RE: Final = re.compile(f"[{_UNRESERVED}{_GEN_DELIMS}{_SUB_DELIMS} ]*")
#: chain-id = 1*DIGIT. Stricter than the ABNF: no leading zeros ("01"), because the field is
#: an integer and "Chain ID: 01" could not round-trip byte for byte (see message.py).
CHAIN_ID_RE: Final = re.compile("0|[1-9][0-9]*")
#: nonce = 8*( ALPHA / DIGIT )
NONCE_RE: Final = re.compile("[A-Za-z0-9]{8,}")
#: request-id = *pchar
REQUEST_ID_RE: Final = re.compile(_SEGMENT)

# --- RFC 3339 section 5.6 ------------------------------------------------------------------
# date-time = full-date "T" full-time. ABNF quoted strings are case-insensitive (RFC 5234
# section 2.3) and RFC 3339 section 5.6 says "T" and "Z" may be lower case, so t/z are valid.
_DATE_TIME_RE: Final = re.compile(
    "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?"
    "(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (year 0 is 1 BC)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def rfc3339_epoch(value: str) -> float | None:
    """Seconds since the Unix epoch of an RFC 3339 date-time, or None if it is not one.

    Checks the ranges that RFC 3339 section 5.7 puts on each term: month 01-12, day valid
    for the month and year, hour 00-23, minute 00-59, second 00-59, and offsets 00-23:00-59.
    A leap second (second 60) is accepted only when it falls at 23:59 UTC (section 5.7:
    leap seconds are the last second of a UTC day) and counts as the following 00:00:00.
    """
    # The shape is fixed-width up to the seconds, so after the regex check the numbers
    # are read by position (faster than capture groups).
    if _DATE_TIME_RE.fullmatch(value) is None:
        return None
    year, month, day = int(value[0:4]), int(value[5:7]), int(value[8:10])
    hour, minute, second = int(value[11:13]), int(value[14:16]), int(value[17:19])
    if not 1 <= month <= 12:
        return None
    max_day = 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= max_day or hour > 23 or minute > 59 or second > 60:
        return None
    offset = 0  # minutes east of UTC
    if value[-1] not in "Zz":
        off_h, off_m = int(value[-5:-3]), int(value[-2:])
        if off_h > 23 or off_m > 59:
            return None
        offset = off_h * 60 + off_m
        if value[-6] == "-":
            offset = -offset
        frac = value[19:-6]
    else:
        frac = value[19:-1]
    if second == 60 and (hour * 60 + minute - offset) % 1440 != 1439:
        return None
    epoch = (
        _days_from_civil(year, month, day) * 86400
        + hour * 3600
        + minute * 60
        + second
        - offset * 60
    )
    return epoch + float(frac) if frac else float(epoch)


# --- structure -----------------------------------------------------------------------------

_URI_TAG: Final = "URI: "
_TAGGED: Final = (
    # (line prefix, field name); all required, in this order
    ("Version: ", "version"),
    ("Chain ID: ", "chain_id"),
    ("Nonce: ", "nonce"),
    ("Issued At: ", "issued_at"),
)
_OPTIONAL: Final = (
    ("Expiration Time: ", "expiration_time"),
    ("Not Before: ", "not_before"),
    ("Request ID: ", "request_id"),
)


def _fail(description: str, reason: str = "malformed_message") -> SiweParseError:
    return SiweParseError(f"SIWE message: {description}", reason=reason)


def split_message(text: object) -> dict[str, Any]:
    """Split EIP-4361 text into its raw terms (strings; chain_id stays text), or raise.

    Returns keyword arguments for `SiweMessage`, with `chain_id` as the matched decimal text
    converted to int. Term contents are validated by `SiweMessage`, not here.
    """
    # ERC-4361: "A SIWE Message MUST conform with the following ABNF" and relying parties
    # "MUST" check that conformance; every structural deviation below is fatal.
    if not isinstance(text, str):
        raise _fail("message must be a string")
    # ERC-4361 "Maximum Lengths for ABNF Terms": implementers SHOULD bound lengths.
    if len(text) > MAX_MESSAGE_LENGTH:
        raise _fail(f"message is longer than {MAX_MESSAGE_LENGTH} characters", "message_too_long")
    lines = text.split("\n")
    n = len(lines)
    if n < 9:  # header, address, blank, blank, URI, Version, Chain ID, Nonce, Issued At
        raise _fail("message is truncated: required lines are missing")

    header = lines[0]
    if not header.endswith(HEADER_SUFFIX):
        raise _fail(f"line 1 must end with {HEADER_SUFFIX.strip()!r}")
    origin = header[: -len(HEADER_SUFFIX)]
    # [ scheme "://" ] domain: an authority cannot contain "/", so the first "://" (if
    # any) is the scheme separator.
    scheme: str | None
    scheme, sep, domain = origin.partition("://")
    if not sep:
        scheme, domain = None, origin
    fields: dict[str, Any] = {"scheme": scheme, "domain": domain, "address": lines[1]}

    if lines[2] != "":
        raise _fail("line 3 must be empty")
    # LF [ statement LF ] LF: with no statement the line after the blank one is the URI line;
    # with a statement (possibly the empty string) it is followed by one more blank line.
    if lines[3] == "" and lines[4] != "":
        fields["statement"] = None
        i = 4
    else:
        if lines[4] != "":
            raise _fail("the statement must be one line followed by an empty line", "bad_statement")
        fields["statement"] = lines[3]
        i = 5

    if i + 5 > n:
        raise _fail("message is truncated: required lines are missing")
    line = lines[i]
    if not line.startswith(_URI_TAG):
        raise _fail(f"line {i + 1} must start with {_URI_TAG!r}")
    fields["uri"] = line[len(_URI_TAG) :]
    i += 1
    for prefix, name in _TAGGED:
        line = lines[i]
        if not line.startswith(prefix):
            raise _fail(f"line {i + 1} must start with {prefix!r}")
        fields[name] = line[len(prefix) :]
        i += 1
    chain_text = fields["chain_id"]
    # Checked here because it has to become an int; 78 digits bound 2**256 - 1.
    if CHAIN_ID_RE.fullmatch(chain_text) is None or len(chain_text) > 78:
        raise _fail("Chain ID must be a decimal integer without leading zeros", "bad_chain_id")
    fields["chain_id"] = int(chain_text)

    for prefix, name in _OPTIONAL:
        if i < n and lines[i].startswith(prefix):
            fields[name] = lines[i][len(prefix) :]
            i += 1
    if i < n:
        if lines[i] != "Resources:":
            raise _fail(
                f"unexpected line {i + 1}: after 'Issued At' only 'Expiration Time', "
                "'Not Before', 'Request ID' and 'Resources' may follow, in that order"
            )
        resources = []
        for j in range(i + 1, n):
            line = lines[j]
            if not line.startswith("- "):
                raise _fail(
                    f"line {j + 1}: each resource line must start with '- '", "bad_resource"
                )
            resources.append(line[2:])
        fields["resources"] = resources
    return fields
