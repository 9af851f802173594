"""Differential test: our EIP-4361 parser against signinwithethereum 5.0.2 (`siwe`, ABNF mode).

Every input (all spruceid vectors, generated messages, named and random mutations) goes
through both parsers. They must agree on accept/reject, and when both accept, on every field
and on the serialised text, except for the cases in KNOWN_DIFFERENCES, each of which must
really differ (so the list cannot go stale).

The oracle pins web3 < 8 and eth-account < 0.14, so it runs in `.venv-oracle`, its own
environment, and parses every input in one request to that process (tests.oracle).
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest
from abnf.grammars import rfc3986
from abnf.parser import ParseError

from did_auth.core.errors import SiweParseError
from did_auth.core.siwe import SiweMessage
from did_auth.core.siwe.parse import DOMAIN_RE, URI_RE
from tests.oracle import SiweOracle

from .test_message import STATEMENT_CHARS, random_fields
from .test_vectors import (
    NEGATIVE,
    NEGATIVE_OBJECTS,
    POSITIVE,
    VERIFY_NEGATIVE,
    VERIFY_POSITIVE,
    render,
    split_verification,
)

REQUIRED = ("domain", "address", "uri", "version", "chainId", "nonce", "issuedAt")

_UNCHECKSUMMED = (
    "EIP-55: we reject unchecksummed (all-lowercase/all-uppercase) addresses; the oracle "
    "accepts them with a warning. The ABNF comment says the address must conform to EIP-55."
)

# case name -> why we deliberately disagree with the oracle.
KNOWN_DIFFERENCES: dict[str, str] = {
    "vector:parsing_negative:address not EIP-55": _UNCHECKSUMMED,
    "named:lowercase-address": _UNCHECKSUMMED,
    "named:uppercase-address": _UNCHECKSUMMED,
    "named:chain-id-leading-zero": (
        "'Chain ID: 01' fits 1*DIGIT, but chain_id is an int and could not round-trip; we "
        "reject it. The oracle accepts it and then re-serialises 'Chain ID: 1', so its own "
        "verify() would check a signature over different text."
    ),
    "named:chain-id-above-uint256": (
        "we bound chain ids by 2**256 - 1 (an EVM word); the oracle has no bound."
    ),
    "named:lowercase-t-z": (
        "RFC 3339 section 5.6 allows 't' and 'z' (ABNF literals are case-insensitive); we "
        "accept them. The oracle's ABNF accepts them too but datetime.fromisoformat fails."
    ),
    "named:leap-second": (
        "RFC 3339 allows second 60 for a leap second (23:59:60 UTC); Python's datetime "
        "cannot represent it, so the oracle rejects."
    ),
    "named:year-zero": (
        "RFC 3339 date-fullyear is 4DIGIT, year 0000 included; Python's datetime starts at "
        "year 1, so the oracle rejects."
    ),
    "named:userinfo-without-host": (
        "we require a non-empty host in the domain ('user@' is an RFC 3986 authority with "
        "an empty reg-name); the oracle accepts it."
    ),
}


# --- inputs ------------------------------------------------------------------------------------


def _vector_cases() -> Iterator[tuple[str, str]]:
    for name, case in POSITIVE.items():
        yield f"vector:parsing_positive:{name}", case["message"]
    for name, text in NEGATIVE.items():
        yield f"vector:parsing_negative:{name}", text
    for name, fields in NEGATIVE_OBJECTS.items():
        if all(key in fields for key in REQUIRED):
            yield f"vector:parsing_negative_objects:{name}", render(fields)
    for source, cases in (
        ("verification_positive", VERIFY_POSITIVE),
        ("verification_negative", VERIFY_NEGATIVE),
    ):
        for name, case in cases.items():
            fields, _ = split_verification(case)
            yield f"vector:{source}:{name}", render(fields)


BASE = SiweMessage(
    domain="service.org",
    address="0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    statement="I accept the ServiceOrg Terms of Service: https://service.org/tos",
    uri="https://service.org/login",
    version="1",
    chain_id=1,
    nonce="32891757",
    issued_at="2021-09-30T16:25:24.000Z",
    expiration_time="2021-10-30T16:25:24+02:00",
    request_id="req-1",
    resources=("ipfs://Qme7ss3ARVgxv6rXqVPiikMJ8u2NLgmgszg13pYrDKEoiu",),
).to_text()
ADDR = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"


def _named_cases() -> Iterator[tuple[str, str]]:
    named = {
        "lowercase-address": BASE.replace(ADDR, ADDR.lower()),
        "uppercase-address": BASE.replace(ADDR, "0x" + ADDR[2:].upper()),
        "bad-checksum-address": BASE.replace(ADDR, ADDR.replace("C02a", "c02a")),
        "chain-id-leading-zero": BASE.replace("Chain ID: 1", "Chain ID: 01"),
        "chain-id-zero": BASE.replace("Chain ID: 1", "Chain ID: 0"),
        "chain-id-above-uint256": BASE.replace("Chain ID: 1", f"Chain ID: {2**256}"),
        "lowercase-t-z": BASE.replace("2021-09-30T16:25:24.000Z", "2021-09-30t16:25:24.000z"),
        "leap-second": BASE.replace("2021-09-30T16:25:24.000Z", "2016-12-31T23:59:60Z"),
        "year-zero": BASE.replace("2021-09-30T16:25:24.000Z", "0000-01-01T00:00:00Z"),
        "userinfo-without-host": BASE.replace("service.org wants", "user@ wants"),
        "empty-port": BASE.replace("service.org wants", "service.org: wants"),
        "ipv6-domain": BASE.replace("service.org wants", "[2001:db8::1]:8443 wants"),
        "ipvfuture-domain": BASE.replace("service.org wants", "[v1.x] wants"),
        "bad-ipv6-domain": BASE.replace("service.org wants", "[1::2::3] wants"),
        "scheme": "https://" + BASE,
        "empty-statement": BASE.replace(
            "I accept the ServiceOrg Terms of Service: https://service.org/tos", ""
        ),
        "no-statement": BASE.replace(
            "\nI accept the ServiceOrg Terms of Service: https://service.org/tos\n", "\n"
        ),
        "empty-request-id": BASE.replace("Request ID: req-1", "Request ID: "),
        "empty-resources": BASE.split("\n- ")[0],
        "trailing-newline": BASE + "\n",
        "crlf": BASE.replace("\n", "\r\n"),
        "statement-quote": BASE.replace("I accept", 'I "accept'),
        "statement-percent": BASE.replace("I accept", "I 100% accept"),
        "statement-non-ascii": BASE.replace("I accept", "I accépt"),
        "offset-24": BASE.replace("+02:00", "+24:00"),
        "feb-29-non-leap": BASE.replace("2021-09-30T16:25:24.000Z", "2021-02-29T16:25:24.000Z"),
        "feb-29-leap": BASE.replace("2021-09-30T16:25:24.000Z", "2024-02-29T16:25:24.000Z"),
        "uri-pct-bad": BASE.replace("https://service.org/login", "https://service.org/%zz"),
        "uri-file": BASE.replace("https://service.org/login", "file:///etc/hosts"),
        "nonce-non-ascii-digit": BASE.replace("32891757", "3289175٣"),
    }
    for name, text in named.items():
        yield f"named:{name}", text


def _generated_cases() -> Iterator[tuple[str, str]]:
    r = random.Random(20240601)
    texts = [SiweMessage(**random_fields(r, exotic=False)).to_text() for _ in range(150)]
    for i, text in enumerate(texts):
        yield f"generated:{i}", text
    alphabet = STATEMENT_CHARS + '\n%"<>é\r'
    for i in range(250):
        text = r.choice(texts)
        pos = r.randrange(len(text))
        op = r.randrange(3)
        if op == 0:
            mutated = text[:pos] + r.choice(alphabet) + text[pos + 1 :]
        elif op == 1:
            mutated = text[:pos] + r.choice(alphabet) + text[pos:]
        else:
            mutated = text[:pos] + text[pos + 1 :]
        yield f"mutation:{i}", mutated


CASES = dict([*_vector_cases(), *_named_cases(), *_generated_cases()])


# --- comparison --------------------------------------------------------------------------------

Verdict = tuple[str, Any]


def ours(text: str) -> Verdict:
    try:
        msg = SiweMessage.from_text(text)
    except SiweParseError:
        return ("reject", None)
    fields = msg.to_dict()
    return ("accept", (fields, msg.to_text()))


@pytest.fixture(scope="module")
def theirs() -> dict[str, Verdict]:
    """The oracle's verdict on every case: one request to the `.venv-oracle` process."""
    with SiweOracle() as oracle:
        assert oracle.versions["signinwithethereum"] == "5.0.2"
        return dict(zip(CASES, oracle.parse(list(CASES.values())), strict=True))


def test_oracle_runs_in_its_own_environment() -> None:
    """signinwithethereum keeps its web3 7 / eth-account 0.13 in `.venv-oracle`; the server's
    environment has today's majors (and no `siwe`)."""
    with SiweOracle() as oracle:
        assert oracle.versions["web3"].startswith("7.")
        assert oracle.versions["eth-account"].startswith("0.13.")
    assert metadata.version("web3").startswith("8.")
    assert metadata.version("eth-account").startswith("0.14.")
    assert importlib.util.find_spec("siwe") is None


def test_known_differences_name_real_cases() -> None:
    assert set(KNOWN_DIFFERENCES) <= set(CASES)
    assert all(KNOWN_DIFFERENCES.values())


def test_inputs_cover_both_outcomes() -> None:
    verdicts = [ours(text)[0] for text in CASES.values()]
    assert verdicts.count("accept") > 150 and verdicts.count("reject") > 150


@pytest.mark.parametrize("name", list(CASES))
def test_agrees_with_signinwithethereum(name: str, theirs: dict[str, Verdict]) -> None:
    text = CASES[name]
    mine, oracle = ours(text), theirs[name]
    if name in KNOWN_DIFFERENCES:
        assert mine != oracle, f"{name} is listed as a known difference but both agree"
        return
    assert mine[0] == oracle[0], f"we {mine[0]}, signinwithethereum {oracle[0]}s"
    if mine[0] == "accept":
        my_fields, my_text = mine[1]
        their_fields, their_text = oracle[1]
        assert my_fields == their_fields
        assert my_text == their_text == text


# --- grammar level: RFC 3986 URI and authority against the `abnf` package's RFC 3986 grammar ----

_TOKENS = [
    "http", "https", "a", "urn", ":", "//", "/", "?", "#", "@", "[", "]", "::1", "v1.x", "%",
    "%4", "%41", "%zz", "1.2.3.4", ":80", "x", "-", ".", "_", "~", "!", "$", "&", "'", "(",
    ")", "*", "+", ",", ";", "=", " ", "é", "\\", '"', "user", "host", "0", "9", "[::ffff:1.2.3.4]",
]  # fmt: skip


def _accepts(rule: Any, text: str) -> bool:
    try:
        rule.parse_all(text)
    except ParseError:
        return False
    return True


def _host_is_empty(authority: str) -> bool:
    host = authority.rpartition("@")[2]
    return host.rstrip("0123456789").removesuffix(":") == ""


def test_uri_and_authority_agree_with_abnf_rfc3986() -> None:
    """Random token soups through URI_RE / DOMAIN_RE and the abnf package's RFC 3986 rules.
    The one allowed difference: a domain whose host is empty (see DOMAIN_RE)."""
    r = random.Random(3986)
    uri_rule, authority_rule = rfc3986.Rule("URI"), rfc3986.Rule("authority")
    for _ in range(2000):
        text = "".join(r.choice(_TOKENS) for _ in range(r.randint(1, 8)))
        if r.random() < 0.5:
            text = "http://" + text
        assert bool(URI_RE.fullmatch(text)) == _accepts(uri_rule, text), text
    empty_hosts = 0
    for _ in range(2000):
        text = "".join(r.choice(_TOKENS) for _ in range(r.randint(1, 6)))
        mine, reference = bool(DOMAIN_RE.fullmatch(text)), _accepts(authority_rule, text)
        if mine != reference:
            assert reference and _host_is_empty(text), text
            empty_hosts += 1
    assert empty_hosts > 0
