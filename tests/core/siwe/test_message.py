"""EIP-4361 message model: randomised round trips, mutations and grammar edge cases."""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import re
import string
from typing import Any

import pytest

from did_auth.core.errors import SiweParseError
from did_auth.core.signatures import to_checksum_address
from did_auth.core.siwe import MAX_MESSAGE_LENGTH, SiweMessage
from did_auth.core.siwe.parse import _IPV6, DOMAIN_RE, URI_RE, rfc3339_epoch

from .test_vectors import render

HEX = "0123456789abcdefABCDEF"
UNRESERVED = string.ascii_letters + string.digits + "-._~"
SUB_DELIMS = "!$&'()*+,;="
PCHAR = UNRESERVED + SUB_DELIMS + ":@"
STATEMENT_CHARS = UNRESERVED + ":/?#[]@" + SUB_DELIMS + " "


# --- generator of valid messages --------------------------------------------------------------


def _text(r: random.Random, alphabet: str, lo: int, hi: int, pct: bool = False) -> str:
    out = []
    for _ in range(r.randint(lo, hi)):
        if pct and r.random() < 0.05:
            out.append("%" + r.choice(HEX) + r.choice(HEX))
        else:
            out.append(r.choice(alphabet))
    return "".join(out)


def _label(r: random.Random) -> str:
    return _text(r, string.ascii_lowercase + string.digits, 1, 10)


def _host(r: random.Random, exotic: bool) -> str:
    kind = r.random()
    if kind < 0.55:
        return ".".join(_label(r) for _ in range(r.randint(1, 4)))
    if kind < 0.7:
        return ".".join(str(r.randint(0, 255)) for _ in range(4))
    if kind < 0.9:
        ip = ipaddress.IPv6Address(r.getrandbits(128) if r.random() < 0.5 else r.getrandbits(16))
        text = ip.compressed if r.random() < 0.7 else ip.exploded
        if r.random() < 0.2:
            text = f"::ffff:{r.randint(0, 255)}.{r.randint(0, 255)}.1.{r.randint(0, 255)}"
        return f"[{text}]"
    if exotic:
        return "[v" + _text(r, "0123456789abcdef", 1, 2) + "." + _text(r, UNRESERVED, 1, 6) + "]"
    return "localhost"


def _authority(r: random.Random, exotic: bool) -> str:
    out = _host(r, exotic)
    if r.random() < 0.15:
        out = _text(r, UNRESERVED + SUB_DELIMS + ":", 1, 8, pct=exotic) + "@" + out
    if r.random() < 0.3:
        out += ":" + str(r.randint(1, 65535))
    return out


def _uri(r: random.Random, exotic: bool) -> str:
    scheme = r.choice(["https", "http", "ipfs", "urn", "did", "mailto", "git+ssh", "a.b-c"])
    if scheme in ("https", "http", "ipfs", "git+ssh") or r.random() < 0.2:
        out = f"{scheme}://{_authority(r, exotic)}"
        if r.random() < 0.7:
            out += "".join("/" + _text(r, PCHAR, 0, 8, pct=exotic) for _ in range(r.randint(1, 3)))
    else:
        out = scheme + ":" + _text(r, PCHAR, 1, 12, pct=exotic).lstrip("/")
        if r.random() < 0.3:
            out += "/" + _text(r, PCHAR + "/", 0, 10, pct=exotic)
    if r.random() < 0.3:
        out += "?" + _text(r, PCHAR + "/?", 0, 12, pct=exotic)
    if r.random() < 0.2:
        out += "#" + _text(r, PCHAR + "/?", 0, 8, pct=exotic)
    assert URI_RE.fullmatch(out), out
    return out


def _timestamp(r: random.Random, exotic: bool) -> str:
    year = r.randint(1970, 2200) if not exotic else r.randint(0, 9999)
    month = r.randint(1, 12)
    days = [
        31,
        29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][month - 1]
    out = f"{year:04d}-{month:02d}-{r.randint(1, days):02d}"
    out += "t" if exotic and r.random() < 0.2 else "T"
    out += f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
    if r.random() < 0.6:
        out += "." + "".join(r.choice(string.digits) for _ in range(r.randint(1, 9)))
    if r.random() < 0.6:
        out += "z" if exotic and r.random() < 0.2 else "Z"
    else:
        out += f"{r.choice('+-')}{r.randint(0, 23):02d}:{r.randint(0, 59):02d}"
    return out


def random_fields(r: random.Random, *, exotic: bool = True) -> dict[str, Any]:
    """Keyword arguments of a random valid SiweMessage. `exotic=False` keeps to the forms
    that every implementation handles (used by the differential test)."""
    fields: dict[str, Any] = {
        "domain": _authority(r, exotic),
        "address": to_checksum_address(r.randbytes(20)),
        "uri": _uri(r, exotic),
        "version": "1",
        "chain_id": r.choice([0, 1, 5, 10, 137, 31337, 11155111, r.getrandbits(64)]),
        "nonce": _text(r, string.ascii_letters + string.digits, 8, 32),
        "issued_at": _timestamp(r, exotic),
    }
    if r.random() < 0.3:
        fields["scheme"] = r.choice(["https", "http", "chrome-extension", "HTTPS", "x+y.z"])
    if r.random() < 0.8:
        fields["statement"] = _text(r, STATEMENT_CHARS, 0 if exotic else 1, 80).strip() or "ok"
        if exotic and r.random() < 0.1:
            fields["statement"] = ""
    for key in ("expiration_time", "not_before"):
        if r.random() < 0.4:
            fields[key] = _timestamp(r, exotic)
    if r.random() < 0.3:
        fields["request_id"] = _text(r, PCHAR, 0 if exotic else 1, 16, pct=exotic)
    if r.random() < 0.5:
        fields["resources"] = [_uri(r, exotic) for _ in range(r.randint(0 if exotic else 1, 4))]
    return fields


# --- properties ---------------------------------------------------------------------------------


def test_random_messages_round_trip() -> None:
    r = random.Random(4361)
    for _ in range(600):
        fields = random_fields(r)
        msg = SiweMessage(**fields)
        text = msg.to_text()
        assert text == render(fields)  # an independent serialiser agrees
        again = SiweMessage.from_text(text)
        assert again == msg
        assert again.to_text() == text
        assert SiweMessage.from_dict(msg.to_dict()) == msg


def _mutate(r: random.Random, text: str) -> str:
    i = r.randrange(len(text) + 1)
    op = r.random()
    alphabet = STATEMENT_CHARS + '\n\r\t%"<>\\^`{|}é\x00'
    if op < 0.4 and i < len(text):
        return text[:i] + r.choice(alphabet) + text[i + 1 :]
    if op < 0.7:
        return text[:i] + r.choice(alphabet) + text[i:]
    return text[:i] + text[i + 1 :]


def test_mutations_are_rejected_or_round_trip_exactly() -> None:
    """Whatever the parser accepts serialises back to the very same bytes; everything else
    is a SiweParseError (never another exception)."""
    r = random.Random(55)
    accepted = rejected = 0
    for _ in range(300):
        text = SiweMessage(**random_fields(r)).to_text()
        for _ in range(10):
            mutated = _mutate(r, text)
            try:
                msg = SiweMessage.from_text(mutated)
            except SiweParseError:
                rejected += 1
                continue
            accepted += 1
            assert msg.to_text() == mutated
    assert accepted > 100 and rejected > 100


def test_parse_is_deterministic_and_hashable_fields() -> None:
    text = SiweMessage(**random_fields(random.Random(1))).to_text()
    assert SiweMessage.from_text(text) == SiweMessage.from_text(text)


# --- edge cases ----------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "domain": "service.org",
    "address": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    "uri": "https://service.org/login",
    "version": "1",
    "chain_id": 1,
    "nonce": "32891757",
    "issued_at": "2021-09-30T16:25:24.000Z",
}
BASE_TEXT = SiweMessage(**BASE).to_text()


def make(**changes: Any) -> SiweMessage:
    return SiweMessage(**{**BASE, **changes})


def rejects(reason: str, **changes: Any) -> None:
    with pytest.raises(SiweParseError) as info:
        make(**changes)
    assert info.value.reason == reason


def test_statement_absent_vs_empty_are_distinct_texts() -> None:
    none = make().to_text()
    empty = make(statement="").to_text()
    assert "0x" in none and none.count("\n\n\n") == 1
    assert empty.count("\n\n\n\n") == 1
    assert SiweMessage.from_text(none).statement is None
    assert SiweMessage.from_text(empty).statement == ""


def test_resources_absent_vs_empty_are_distinct_texts() -> None:
    assert "Resources" not in make().to_text()
    text = make(resources=()).to_text()
    assert text.endswith("\nResources:")
    assert SiweMessage.from_text(text).resources == ()
    assert make(resources=["https://a.example"]).resources == ("https://a.example",)


def test_empty_request_id_is_kept() -> None:
    text = make(request_id="").to_text()
    assert text.endswith("\nRequest ID: ")
    assert SiweMessage.from_text(text).request_id == ""


@pytest.mark.parametrize(
    "text",
    [
        BASE_TEXT + "\n",
        "\n" + BASE_TEXT,
        BASE_TEXT.replace("\n", "\r\n"),
        BASE_TEXT.replace("Version: 1", "version: 1"),
        BASE_TEXT.replace("URI: ", "URI:  "),
        BASE_TEXT.replace("Nonce: ", "Nonce:"),
        BASE_TEXT.replace(" wants you", "  wants you"),
        BASE_TEXT.replace("Ethereum account:", "ethereum account:"),
        BASE_TEXT + "\nResources:\n- https://a.example\n",
        BASE_TEXT + "\nResources:\n-https://a.example",
        BASE_TEXT
        + "\nExpiration Time: 2021-09-30T16:25:24Z\nExpiration Time: 2021-09-30T16:25:24Z",
        BASE_TEXT + "\nFoo: bar",
        BASE_TEXT.split("\nIssued At")[0],
        "",
        "\n" * 20,
    ],
)
def test_structural_deviations_are_rejected(text: str) -> None:
    with pytest.raises(SiweParseError):
        SiweMessage.from_text(text)


@pytest.mark.parametrize("value", [None, 42, b"bytes", ["list"]])
def test_from_text_rejects_non_strings(value: object) -> None:
    with pytest.raises(SiweParseError):
        SiweMessage.from_text(value)  # type: ignore[arg-type]


def test_length_cap() -> None:
    room = MAX_MESSAGE_LENGTH - len(BASE_TEXT) - len("\nRequest ID: ")
    fits = make(request_id="a" * room).to_text()
    assert len(fits) == MAX_MESSAGE_LENGTH
    assert SiweMessage.from_text(fits).request_id == "a" * room
    with pytest.raises(SiweParseError) as info:
        SiweMessage.from_text(fits + "a")
    assert info.value.reason == "message_too_long"


@pytest.mark.parametrize("chain_id", [0, 1, 2**256 - 1])
def test_chain_id_bounds_accepted(chain_id: int) -> None:
    assert SiweMessage.from_text(make(chain_id=chain_id).to_text()).chain_id == chain_id


@pytest.mark.parametrize("chain_id", [-1, 2**256, True, 1.0, "1", None])
def test_chain_id_values_rejected(chain_id: object) -> None:
    with pytest.raises(SiweParseError):
        make(chain_id=chain_id)


@pytest.mark.parametrize("text", ["01", "00", "+1", "-1", "1 ", " 1", "1e3", "٣", "9" * 79, ""])
def test_chain_id_text_rejected(text: str) -> None:
    """`01` matches the ABNF's 1*DIGIT but cannot round-trip through an int: refused."""
    with pytest.raises(SiweParseError):
        SiweMessage.from_text(BASE_TEXT.replace("Chain ID: 1", f"Chain ID: {text}"))


@pytest.mark.parametrize(
    "nonce",
    [
        "1234567",
        "12345678 ",
        "1234-5678",
        "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
        "abcdefgé",
        "",
        "abcd\nefgh",
    ],
)
def test_bad_nonces(nonce: str) -> None:
    rejects("bad_nonce", nonce=nonce)


@pytest.mark.parametrize("version", ["2", "1.0", " 1", "", "01"])
def test_bad_versions(version: str) -> None:
    rejects("bad_version", version=version)


@pytest.mark.parametrize(
    "statement",
    ['say "hi"', "100%", "a\nb", "a\rb", "tab\there", "é", "<b>", "a\\b", "{x}", "a|b", "^", "`"],
)
def test_statement_outside_abnf_rejected(statement: str) -> None:
    rejects("bad_statement", statement=statement)


def test_statement_may_use_every_abnf_character() -> None:
    statement = STATEMENT_CHARS
    assert SiweMessage.from_text(make(statement=statement).to_text()).statement == statement


@pytest.mark.parametrize(
    "domain",
    [
        "service.org",
        "localhost:8080",
        "127.0.0.1",
        "999.999.999.999",  # a reg-name, as RFC 3986's grammar reads it
        "test@127.0.0.1:8080",
        "user:pass@host",
        "%41host",
        "[::1]",
        "[::cafe]",
        "[2001:db8::8a2e:370:7334]",
        "[::ffff:192.0.2.1]",
        "[1:2:3:4:5:6:7:8]",
        "[v1.fe80::a+en1]",
        "example.com:",  # RFC 3986: port = *DIGIT
        "a!$&'()*+,;=b",
    ],
)
def test_domains_accepted(domain: str) -> None:
    assert DOMAIN_RE.fullmatch(domain)
    assert SiweMessage.from_text(make(domain=domain).to_text()).domain == domain


@pytest.mark.parametrize(
    "domain",
    [
        "",
        ":80",
        "user@",
        "user@:80",
        "#notrfc4501",
        "exa mple.com",
        "example.com/path",
        "example.com?q",
        "example.com:80a",
        "[::1",
        "[1::2::3]",
        "[1:2:3:4:5:6:7:8:9]",
        "[::ffff:256.1.1.1]",
        "[fe80::1%eth0]",
        "[fe80::1%25eth0]",
        "[v1.]",
        "%4",
        "%zz",
        "exämple.com",
        "https://example.com",  # the scheme belongs in its own field
    ],
)
def test_domains_rejected(domain: str) -> None:
    rejects("bad_domain", domain=domain)


def test_scheme_in_header() -> None:
    msg = make(scheme="https", domain="example.com")
    assert msg.to_text().startswith("https://example.com wants you")
    assert SiweMessage.from_text(msg.to_text()).scheme == "https"
    for bad in ("", "1http", "ht tp", "http:", "é"):
        rejects("bad_scheme", scheme=bad)
    with pytest.raises(SiweParseError):
        SiweMessage.from_text("://" + BASE_TEXT)


@pytest.mark.parametrize(
    "uri",
    [
        "https://service.org/login",
        "https://[::cafe]",
        "https://127.0.0.1:4361/?query=one#begin",
        "file:///etc/hosts",
        "urn:isbn:0451450523",
        "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "mailto:a@b.example",
        "ipfs://Qme7ss3ARVgxv6rXqVPiikMJ8u2NLgmgszg13pYrDKEoiu",
        "http://a/%20b?c=%7E#d",
        "x:",
        "x:/",
        "x:a//b",
        "http://",
        "http://u@h:/p",
    ],
)
def test_uris_accepted(uri: str) -> None:
    assert SiweMessage.from_text(make(uri=uri, resources=[uri]).to_text()).uri == uri


@pytest.mark.parametrize(
    "uri",
    [
        "",
        ":not_a_rfc3986_valid_uri_",
        "//no-scheme",
        "relative/path",
        "1http://x",
        "http://a b",
        "http://a:b",
        "http://[::1",
        "http://%zz",
        "http://a/%2",
        'http://a/"',
        "http://a/<>",
        "http://a/é",
        "x://a\\b",
        "http://a#b#c",
        "http://a/{x}",
    ],
)
def test_uris_rejected(uri: str) -> None:
    rejects("bad_uri", uri=uri)
    rejects("bad_resource", resources=["https://ok.example", uri])


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2021-09-30T16:25:24.000Z", 1633019124.0),
        ("2021-09-30T16:25:24.5Z", 1633019124.5),
        ("2021-09-30T16:25:24-02:00", 1633026324.0),
        ("2021-09-30T16:25:24+05:30", 1632999324.0),
        ("2021-09-30t16:25:24z", 1633019124.0),  # RFC 3339 section 5.6: t/z may be lower case
        ("2020-02-29T00:00:00Z", 1582934400.0),
        ("2000-02-29T00:00:00Z", 951782400.0),
        ("2016-12-31T23:59:60Z", 1483228800.0),  # leap second, counted as the next 00:00:00
        ("2017-01-01T00:59:60+01:00", 1483228800.0),
        ("1969-12-31T23:59:59Z", -1.0),
        ("0000-01-01T00:00:00Z", -62167219200.0),
        ("9999-12-31T23:59:59Z", 253402300799.0),
    ],
)
def test_timestamps_and_epochs(value: str, epoch: float) -> None:
    assert rfc3339_epoch(value) == pytest.approx(epoch)
    msg = make(issued_at=value, expiration_time=value, not_before=value)
    assert msg.issued_at_epoch == pytest.approx(epoch)
    assert msg.expiration_epoch == pytest.approx(epoch)
    assert msg.not_before_epoch == pytest.approx(epoch)
    assert SiweMessage.from_text(msg.to_text()).issued_at == value


@pytest.mark.parametrize(
    "value",
    [
        "2021-13-01T00:00:00Z",
        "2021-00-01T00:00:00Z",
        "2021-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2021-02-30T00:00:00Z",
        "2021-04-31T00:00:00Z",
        "2021-01-00T00:00:00Z",
        "2021-01-01T24:00:00Z",
        "2021-01-01T00:60:00Z",
        "2021-01-01T00:00:61Z",
        "2021-06-30T12:00:60Z",  # a leap second not at 23:59 UTC
        "2021-01-01T00:00:00+24:00",
        "2021-01-01T00:00:00+01:60",
        "2021-01-01T00:00:00",
        "2021-01-01 00:00:00Z",
        "2021-01-01T00:00:00.Z",
        "2021-01-01T00:00Z",
        "21-01-01T00:00:00Z",
        "2021-1-01T00:00:00Z",
        "2021-01-01T00:00:00+0100",
        "2021-01-01T00:00:00UTC",
        "\uff12\uff10\uff12\uff11-01-01T00:00:00Z",
        "",
    ],
)
def test_invalid_timestamps_rejected(value: str) -> None:
    assert rfc3339_epoch(value) is None
    rejects("bad_issued_at", issued_at=value)
    rejects("bad_expiration_time", expiration_time=value)
    rejects("bad_not_before", not_before=value)


@pytest.mark.parametrize("request_id", ["", "some_id", "a:b@c", "%41", "!$&'()*+,;="])
def test_request_ids_accepted(request_id: str) -> None:
    assert SiweMessage.from_text(make(request_id=request_id).to_text()).request_id == request_id


@pytest.mark.parametrize("request_id", ["a b", "a/b", "a?b", "a#b", "%zz", "é", "a\nb"])
def test_request_ids_rejected(request_id: str) -> None:
    rejects("bad_request_id", request_id=request_id)


def test_types_are_checked() -> None:
    rejects("bad_type", domain=b"service.org")
    rejects("bad_type", nonce=12345678)
    rejects("bad_type", resources="https://a.example")
    rejects("bad_type", resources=[b"https://a.example"])
    rejects("missing_field", issued_at=None)


def test_from_dict_keys() -> None:
    camel = {**BASE, "chainId": 1, "issuedAt": BASE["issued_at"]}
    del camel["chain_id"], camel["issued_at"]
    assert SiweMessage.from_dict(camel) == make()
    with pytest.raises(SiweParseError) as info:
        SiweMessage.from_dict({**BASE, "extra": 1})
    assert info.value.reason == "unknown_field"
    with pytest.raises(SiweParseError) as info:
        SiweMessage.from_dict({**BASE, "chainId": 1})
    assert info.value.reason == "duplicate_field"
    with pytest.raises(SiweParseError):
        SiweMessage.from_dict([("domain", "x")])  # type: ignore[arg-type]


def test_message_is_frozen_and_derives_did_pkh() -> None:
    msg = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.nonce = "otherNonce1"  # type: ignore[misc]
    assert msg.did_pkh == "did:pkh:eip155:1:0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert dataclasses.replace(msg, chain_id=5).chain_id == 5
    with pytest.raises(SiweParseError):
        dataclasses.replace(msg, nonce="short")


def test_errors_name_the_field() -> None:
    with pytest.raises(SiweParseError) as info:
        make(uri="not a uri")
    assert "uri" in info.value.description
    assert info.value.to_dict()["error"] == "invalid_request"


def test_ipv6_grammar_agrees_with_ipaddress() -> None:
    """RFC 3986 IPv6address (our regex) against Python's ipaddress on random near-addresses
    (zone ids excluded: RFC 3986 has none, ipaddress accepts them)."""
    r = random.Random(6)
    ipv6 = re.compile(_IPV6)
    for _ in range(20000):
        parts = []
        for _ in range(r.randint(1, 9)):
            t = r.random()
            if t < 0.6:
                parts.append(format(r.getrandbits(16), "x")[: r.randint(1, 4)])
            elif t < 0.75:
                parts.append("")
            elif t < 0.85:
                parts.append(".".join(str(r.randint(0, 300)) for _ in range(r.choice([3, 4, 5]))))
            else:
                parts.append(r.choice(["0", "00000", "g", "1.2.3.4"]))
        text = ":".join(parts)
        if r.random() < 0.3:
            text = r.choice(["::", ""]) + text + r.choice(["::", ""])
        try:
            ipaddress.IPv6Address(text)
            reference = True
        except ValueError:
            reference = False
        assert bool(ipv6.fullmatch(text)) == reference, text
