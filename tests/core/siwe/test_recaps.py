"""EIP-5573 ReCaps: the EIP's own examples, strict decoding, statement check, scope mapping."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from did_auth.core.errors import InvalidRequest, InvalidScope, SiweParseError
from did_auth.core.siwe import SiweMessage, build_recap, extract_recap, recap_scopes
from did_auth.core.siwe.recaps import (
    RECAP_PREAMBLE,
    decode_recap_uri,
    encode_recap,
    recap_statement,
    translate_recap,
)

# From EIP-5573 "ReCap SIWE Extension" (non-normative example message).
EIP_MESSAGE = (
    "example.com wants you to sign in with your Ethereum account:\n"
    "0x0000000000000000000000000000000000000000\n\n"
    "I further authorize the stated URI to perform the following actions on my behalf: "
    "(1) 'example': 'append', 'read' for 'https://example.com'. "
    "(2) 'other': 'action' for 'https://example.com'. "
    "(3) 'example': 'append', 'delete' for 'my:resource:uri.1'. "
    "(4) 'example': 'append' for 'my:resource:uri.2'. "
    "(5) 'example': 'append' for 'my:resource:uri.3'.\n\n"
    "URI: did:key:example\nVersion: 1\nChain ID: 1\nNonce: mynonce1\n"
    "Issued At: 2022-06-21T12:00:00.000Z\nResources:\n"
    "- urn:recap:eyJhdHQiOnsiaHR0cHM6Ly9leGFtcGxlLmNvbSI6eyJleGFtcGxlL2FwcGVuZCI6W10sImV4YW1wbG"
    "UvcmVhZCI6W10sIm90aGVyL2FjdGlvbiI6W119LCJteTpyZXNvdXJjZTp1cmkuMSI6eyJleGFtcGxlL2FwcGVuZCI6"
    "W10sImV4YW1wbGUvZGVsZXRlIjpbXX0sIm15OnJlc291cmNlOnVyaS4yIjp7ImV4YW1wbGUvYXBwZW5kIjpbXX0sIm"
    "15OnJlc291cmNlOnVyaS4zIjp7ImV4YW1wbGUvYXBwZW5kIjpbXX19LCJwcmYiOltdfQ"
)
# From EIP-5573 "ReCap Details Object Schema": the capability and its expected translation.
EIP_CAPABILITY = (
    "urn:recap:eyJhdHQiOnsiaHR0cHM6Ly9leGFtcGxlLmNvbS9waWN0dXJlcy8iOnsiY3J1ZC9kZWxldGUiOlt7fV0s"
    "ImNydWQvdXBkYXRlIjpbe31dLCJvdGhlci9hY3Rpb24iOlt7fV19LCJtYWlsdG86dXNlcm5hbWVAZXhhbXBsZS5jb2"
    "0iOnsibXNnL3JlY2VpdmUiOlt7Im1heF9jb3VudCI6NSwidGVtcGxhdGVzIjpbIm5ld3NsZXR0ZXIiLCJtYXJrZXRp"
    "bmciXX1dLCJtc2cvc2VuZCI6W3sidG8iOiJzb21lb25lQGVtYWlsLmNvbSJ9LHsidG8iOiJqb2VAZW1haWwuY29tIn"
    "1dfX0sInByZiI6WyJ6ZGo3V2o2Rk5TNHJVVWJzaUp2amp4Y3NOcVpkRENTaVlSOHNLUVhmb1BmcFNadUF3Il19"
)
EIP_CAPABILITY_STATEMENT = (
    "I further authorize the stated URI to perform the following actions on my behalf: "
    "(1) 'crud': 'delete', 'update' for 'https://example.com/pictures/'. "
    "(2) 'other': 'action' for 'https://example.com/pictures/'. "
    "(3) 'msg': 'receive', 'send' for 'mailto:username@example.com'."
)

ADDRESS = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"


def uri_of(document: Any) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()
    return "urn:recap:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def uri_of_text(text: str) -> str:
    return "urn:recap:" + base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def message(statement: str | None, resources: list[str] | None) -> SiweMessage:
    return SiweMessage(
        domain="localhost:3000",
        address=ADDRESS,
        statement=statement,
        uri="http://localhost:3000/login",
        version="1",
        chain_id=31337,
        nonce="abcdefgh1234",
        issued_at="2024-01-01T00:00:00Z",
        resources=None if resources is None else tuple(resources),
    )


# --- the EIP's examples -------------------------------------------------------------------------


def test_eip_example_message_verifies() -> None:
    msg = SiweMessage.from_text(EIP_MESSAGE)
    recap = extract_recap(msg)
    assert recap is not None
    assert list(recap.att) == [
        "https://example.com",
        "my:resource:uri.1",
        "my:resource:uri.2",
        "my:resource:uri.3",
    ]
    assert recap.prf == ()
    assert msg.statement == translate_recap(recap)
    # Empty nota-bene lists grant nothing.
    assert recap.granted("https://example.com") == set()


def test_eip_capability_translates_exactly() -> None:
    recap = decode_recap_uri(EIP_CAPABILITY)
    assert translate_recap(recap) == EIP_CAPABILITY_STATEMENT
    assert recap.prf == ("zdj7Wj6FNS4rUUbsiJvjjxcsNqZdDCSiYR8sKQXfoPfpSZuAw",)
    assert recap.granted("https://example.com/pictures/") == {
        "crud/delete",
        "crud/update",
        "other/action",
    }
    # msg/* carry restrictions did-auth cannot enforce: not granted.
    assert recap.granted("mailto:username@example.com") == set()
    # Our encoder reproduces the EIP's URI byte for byte.
    assert encode_recap(recap.att, recap.prf) == EIP_CAPABILITY


# --- did-auth mapping -----------------------------------------------------------------------------


def test_build_and_map_round_trip() -> None:
    resource, suffix = build_recap("trading-api", ["trade:write", "account:read", "trade:read"])
    assert resource.startswith("urn:recap:")
    assert suffix == (
        RECAP_PREAMBLE + " (1) 'account': 'read' for 'urn:did-auth:aud:trading-api'."
        " (2) 'trade': 'read', 'write' for 'urn:did-auth:aud:trading-api'."
    )
    recap = decode_recap_uri(resource)
    assert recap.att == {
        "urn:did-auth:aud:trading-api": {
            "account/read": [{}],
            "trade/read": [{}],
            "trade/write": [{}],
        }
    }
    for statement in (None, "Sign in to the trading venue."):
        msg = message(recap_statement(statement, suffix), ["https://docs.example/tos", resource])
        assert SiweMessage.from_text(msg.to_text()) == msg
        assert recap_scopes(msg, "trading-api") == {"trade:write", "account:read", "trade:read"}
        assert recap_scopes(msg, "other-api") == set()


def test_no_recap_means_none() -> None:
    assert recap_scopes(message("hi", None), "trading-api") is None
    assert recap_scopes(message("hi", []), "trading-api") is None
    assert recap_scopes(message(None, ["https://a.example"]), "trading-api") is None


def test_only_unrestricted_abilities_become_scopes() -> None:
    att: dict[str, dict[str, list[dict[str, Any]]]] = {
        "urn:did-auth:aud:api": {
            "a/empty": [],
            "a/mixed": [{"limit": 1}, {}],
            "a/restricted": [{"limit": 1}],
            "a/free": [{}],
        }
    }
    resource = encode_recap(att)
    suffix = translate_recap(decode_recap_uri(resource))
    msg = message(suffix, [resource])
    assert recap_scopes(msg, "api") == {"a:mixed", "a:free"}


def test_ability_ordering_follows_js_sort() -> None:
    # EIP-5573: "msg/send comes before msg/send-to" (shorter prefix first).
    resource, suffix = build_recap("api", ["msg:send-to", "msg:send"])
    assert list(decode_recap_uri(resource).att["urn:did-auth:aud:api"]) == [
        "msg/send",
        "msg/send-to",
    ]
    assert "'msg': 'send', 'send-to' for" in suffix


@pytest.mark.parametrize("scope", ["trade", "trade:", ":write", "trade:wr ite", "a:b:c", "é:x", 5])
def test_build_recap_rejects_bad_scopes(scope: object) -> None:
    with pytest.raises(InvalidScope):
        build_recap("api", [scope])  # type: ignore[list-item]


def test_build_recap_rejects_empty_and_bad_audience() -> None:
    with pytest.raises(InvalidScope):
        build_recap("api", [])
    for audience in ("", "a b", "a%20b", 'a"b'):
        with pytest.raises(InvalidRequest):
            build_recap(audience, ["a:b"])


# --- statement verification -----------------------------------------------------------------------


def test_statement_must_end_with_translation() -> None:
    resource, suffix = build_recap("api", ["a:b"])
    with pytest.raises(SiweParseError):
        extract_recap(message(None, [resource]))
    with pytest.raises(SiweParseError):
        extract_recap(message("Sign in.", [resource]))
    with pytest.raises(SiweParseError):  # the translation must be preceded by one space
        extract_recap(message("Sign in." + suffix, [resource]))
    with pytest.raises(SiweParseError):  # translation of another capability
        _, other = build_recap("api", ["a:c"])
        extract_recap(message(other, [resource]))
    with pytest.raises(SiweParseError):  # text after the translation
        extract_recap(message(suffix + " More.", [resource]))
    assert extract_recap(message("Sign in. " + suffix, [resource])) is not None


def test_recap_must_be_last_and_unique() -> None:
    resource, suffix = build_recap("api", ["a:b"])
    with pytest.raises(SiweParseError):
        extract_recap(message(suffix, [resource, "https://a.example"]))
    with pytest.raises(SiweParseError):
        extract_recap(message(suffix, [resource, resource]))
    with pytest.raises(SiweParseError):  # URN scheme and NID are case-insensitive
        extract_recap(message(suffix, ["URN:ReCap:" + resource[10:]]))


# --- strict decoding ---------------------------------------------------------------------------

GOOD = {"att": {"https://a.example": {"crud/read": [{}]}}, "prf": []}


@pytest.mark.parametrize(
    "uri",
    [
        uri_of(GOOD) + "=",
        uri_of(GOOD)[:-1] + "=",
        uri_of(GOOD).replace("urn:recap:", "urn:recap:+"),
        uri_of(GOOD) + "/",
        "urn:recap:",
        "urn:recap:a",  # length 1 mod 4
        "urn:recap:eyJhdHQiOnt9fR",  # non-canonical trailing bits of '{"att":{}}'
        "urn:recap2:" + uri_of(GOOD)[10:],
        "urn:recap:" + base64.urlsafe_b64encode(b"\xff\xfe{}").rstrip(b"=").decode(),
        uri_of_text("not json"),
        uri_of_text('{"att": {"https://a.example": {"crud/read": [{}]}}, "prf": []} x'),
        uri_of_text('{"att": {"https://a.example": {"crud/read": [{"n": NaN}]}}}'),
        uri_of_text('{"att": {"https://a.example": {"crud/read": [{}]}}, "att": {}}'),
        uri_of_text('{"att": {"https://a.example": {"crud/read": [{"a": 1, "a": 2}]}}}'),
        uri_of_text(
            '{"att": {"https://a.example": {"crud/read": [' + "[" * 5000 + "]" * 5000 + "]}}}"
        ),
        uri_of([]),
        uri_of("att"),
        uri_of({}),
        uri_of({"prf": []}),
        uri_of({"att": {}}),
        uri_of({"att": [], "prf": []}),
        uri_of({"att": GOOD["att"], "prf": [], "exp": 1}),
        uri_of({"att": {"https://a.example": {}}}),
        uri_of({"att": {"https://a.example": []}}),
        uri_of({"att": {"not a uri": {"crud/read": [{}]}}}),
        uri_of({"att": {"https://a.example": {"crud": [{}]}}}),
        uri_of({"att": {"https://a.example": {"crud/re ad": [{}]}}}),
        uri_of({"att": {"https://a.example": {"crud/read/x": [{}]}}}),
        uri_of({"att": {"https://a.example": {"cr^ud/read": [{}]}}}),
        uri_of({"att": {"https://a.example": {"crud/read": {}}}}),
        uri_of({"att": {"https://a.example": {"crud/read": [[]]}}}),
        uri_of({"att": {"https://a.example": {"crud/read": [1]}}}),
        uri_of({"att": GOOD["att"], "prf": "cid"}),
        uri_of({"att": GOOD["att"], "prf": [1]}),
        uri_of({"att": GOOD["att"], "prf": ["not a cid"]}),
        # ordering (EIP-5573: keys of att and of every nested object sorted)
        uri_of({"att": {"https://b.example": {"a/b": [{}]}, "https://a.example": {"a/b": [{}]}}}),
        uri_of({"att": {"https://a.example": {"crud/update": [{}], "crud/delete": [{}]}}}),
        uri_of({"att": {"https://a.example": {"msg/send-to": [{}], "msg/send": [{}]}}}),
        uri_of({"att": {"https://a.example": {"a/b": [{"z": 1, "a": 2}]}}}),
        uri_of({"att": {"https://a.example": {"a/b": [{"x": [{"z": 1, "a": 2}]}]}}}),
    ],
)
def test_malformed_recaps_are_rejected(uri: str) -> None:
    with pytest.raises(SiweParseError) as info:
        decode_recap_uri(uri)
    assert info.value.reason == "bad_recap"


def test_well_formed_variants_decode() -> None:
    assert decode_recap_uri(uri_of(GOOD)).att == GOOD["att"]
    assert decode_recap_uri(uri_of({"att": GOOD["att"]})).prf == ()  # prf is optional
    nested = {"att": {"https://a.example": {"a/b": [{"a": {"b": 1, "c": [3, 1, 2]}, "z": 0}]}}}
    assert decode_recap_uri(uri_of(nested)).att == nested["att"]


def test_malformed_recap_in_a_message_is_an_invalid_request() -> None:
    bad = uri_of({"att": {}})
    with pytest.raises(InvalidRequest):
        recap_scopes(message(RECAP_PREAMBLE, [bad]), "api")
