"""EIP-5573 (SIWE ReCaps): strict ReCap decoding, statement verification, did-auth scope mapping.

A ReCap is the last SIWE resource, `urn:recap:<unpadded base64url of a JSON details object>`,
and the SIWE statement must end with its human-readable translation, so what the user read
is what they granted.

did-auth mapping
----------------
A did-auth scope `ns:ability` (e.g. `trade:write`) for audience `A` (e.g. `trading-api`) is
the ReCap ability `ns/ability` on the resource URI `urn:did-auth:aud:A`
(e.g. `urn:did-auth:aud:trading-api`):

    {"att": {"urn:did-auth:aud:trading-api": {"account/read": [{}], "trade/write": [{}]}},
     "prf": []}

grants `account:read` and `trade:write` to `trading-api`. Rules:

- Only the resource of the requested audience counts; other resources are ignored (they
  may be capabilities for other services in the same sign-in).
- An ability counts only when its nota-bene list contains the empty object `{}`
  ("no restrictions"). did-auth scopes carry no caveats, so an ability offered only with
  restrictions we cannot enforce is not granted (fail closed); an empty list grants nothing,
  as EIP-5573 says.
- No wildcard semantics: `trade/*` maps to the literal scope `trade:*`, which matches no
  configured scope unless one is literally named so.
- `prf` (delegation proofs) is checked for shape only: the signer of the SIWE message is the
  subject of the did-auth session, so its own grants need no parent capability.

`recap_scopes` returns None when the message has no ReCap (the caller then uses the
requested/default scopes), else the set of granted scopes (possibly empty).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from did_auth_verifier.jose import JoseError, b64url_decode, b64url_encode, json_dumps, json_loads

from did_auth.core.errors import InvalidRequest, InvalidScope, SiweParseError
from did_auth.core.siwe.message import SiweMessage
from did_auth.core.siwe.parse import STATEMENT_RE, URI_RE

__all__ = [
    "AUDIENCE_RESOURCE_PREFIX",
    "RECAP_PREAMBLE",
    "RECAP_PREFIX",
    "Recap",
    "audience_resource",
    "build_recap",
    "decode_recap_uri",
    "encode_recap",
    "extract_recap",
    "recap_scopes",
    "recap_statement",
    "translate_recap",
]

RECAP_PREFIX: Final = "urn:recap:"
RECAP_PREAMBLE: Final = (
    "I further authorize the stated URI to perform the following actions on my behalf:"
)
AUDIENCE_RESOURCE_PREFIX: Final = "urn:did-auth:aud:"

# EIP-5573 "Ability Strings": namespace and ability "MUST contain only alphanumeric
# characters as well as the characters ., *, _, +, -". (The EIP's regex spells the second
# class `a-zA-z`, a typo that would also admit [\]^_`; the prose is followed here.)
_ABILITY_RE: Final = re.compile("([a-zA-Z0-9.*_+-]+)/([a-zA-Z0-9.*_+-]+)")
_SCOPE_RE: Final = re.compile("([a-zA-Z0-9.*_+-]+):([a-zA-Z0-9.*_+-]+)")
# A CID as a multibase/base58 string (CIDv0 "Qm...", base32 "bafy...", base58btc "z..."):
# only its alphabet is checked, its contents are not used.
_CID_RE: Final = re.compile("[A-Za-z0-9]+")


def _fail(description: str) -> SiweParseError:
    return SiweParseError(f"ReCap: {description}", reason="bad_recap")


def _js_order(key: str) -> bytes:
    """Sort key equal to JavaScript's default `Array.sort()`: UTF-16 code units."""
    return key.encode("utf-16-be", "surrogatepass")


def _check_sorted(keys: list[str], where: str) -> None:
    # EIP-5573: objects in `att` "MUST NOT contain duplicate keys and MUST have their keys
    # ordered lexicographically" (byte value, shorter prefix first - JS Array.sort()).
    for previous, current in itertools.pairwise(keys):
        if _js_order(previous) >= _js_order(current):
            raise _fail(f"keys of {where} are not in lexicographic order")


@dataclass(frozen=True, slots=True)
class Recap:
    """A decoded ReCap details object: `att` (resource -> ability -> nota-benes) and `prf`."""

    att: dict[str, dict[str, list[dict[str, Any]]]]
    prf: tuple[str, ...]

    def granted(self, resource: str) -> set[str]:
        """Abilities on `resource` offered without restrictions (nota-bene list holds {})."""
        abilities = self.att.get(resource, {})
        return {name for name, notes in abilities.items() if {} in notes}


def _check_nested_order(root: object) -> None:
    """Every object below `att` must have sorted keys (iterative: depth is attacker-chosen)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            _check_sorted(list(node), "a nota-bene object")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _validate_details(obj: object) -> Recap:
    # EIP-5573 "ReCap Details Object Schema".
    if not isinstance(obj, dict):
        raise _fail("the details object must be a JSON object")
    unknown = set(obj) - {"att", "prf"}
    if unknown:
        raise _fail(f"unknown member(s) {sorted(unknown)}")
    att = obj.get("att")
    # att: "MUST be a JSON object where each key is a URI"; minProperties 1. A ReCap with
    # no attenuation has nothing to translate, and its statement ABNF needs 1* entries.
    if not isinstance(att, dict) or not att:
        raise _fail("att must be a non-empty object")
    _check_sorted(list(att), "att")
    for resource, abilities in att.items():
        if URI_RE.fullmatch(resource) is None:
            raise _fail(f"att key {resource[:80]!r} is not an RFC 3986 URI")
        # Each value "is an object containing Ability Strings as keys" (minProperties 1).
        if not isinstance(abilities, dict) or not abilities:
            raise _fail(f"abilities of {resource[:80]!r} must be a non-empty object")
        _check_sorted(list(abilities), f"att[{resource[:80]!r}]")
        for ability, notes in abilities.items():
            if _ABILITY_RE.fullmatch(ability) is None:
                raise _fail(f"{ability[:80]!r} is not a namespace/ability string")
            # "... a corresponding value which is an array of qualifications" (objects).
            if not isinstance(notes, list) or not all(isinstance(n, dict) for n in notes):
                raise _fail(f"nota-benes of {ability!r} must be an array of objects")
            _check_nested_order(notes)
    prf = obj.get("prf", [])
    # prf: "MUST be a JSON array of string values" identifying CIDs. The schema says
    # minItems 1, but the EIP's own example message carries "prf": [], so [] is accepted.
    if not isinstance(prf, list) or not all(
        isinstance(p, str) and _CID_RE.fullmatch(p) is not None for p in prf
    ):
        raise _fail("prf must be an array of CID strings")
    return Recap(att=att, prf=tuple(prf))


def decode_recap_uri(uri: str) -> Recap:
    """Decode and validate `urn:recap:<base64url, no padding>`; raises SiweParseError."""
    if not isinstance(uri, str) or not uri.startswith(RECAP_PREFIX):
        raise _fail(f"a ReCap URI starts with {RECAP_PREFIX!r}")
    payload = uri[len(RECAP_PREFIX) :]
    # EIP-5573: "followed by the unpadded base64url-encoded payload" (RFC 4648 section 5);
    # canonical encoding only (non-zero pad bits would give several URIs per object).
    if not payload:
        raise _fail("payload is not unpadded base64url")
    try:
        raw = b64url_decode(payload)
    except JoseError as exc:
        raise _fail(f"payload is not canonical unpadded base64url ({exc})") from exc
    # EIP-5573: objects in `att` "MUST NOT contain duplicate keys"; strict JSON refuses
    # duplicate names (and NaN / Infinity) at every level.
    try:
        obj = json_loads(raw)
    except JoseError as exc:
        raise _fail(f"payload is not a JSON document ({exc})") from exc
    return _validate_details(obj)


def translate_recap(recap: Recap) -> str:
    """EIP-5573 "ReCap Translation Algorithm" without an input statement.

    For each resource (in `att` order), group its abilities by namespace, and for each
    group append " (<n>) '<namespace>': '<ability>', '<ability>' for '<resource>'.",
    numbering from 1 across all resources (the EIP's worked example fixes the spacing).
    """
    parts = [RECAP_PREAMBLE]
    number = 1
    for resource, abilities in recap.att.items():
        groups: dict[str, list[str]] = {}
        for ability in abilities:
            namespace, _, name = ability.partition("/")
            groups.setdefault(namespace, []).append(name)
        for namespace, names in groups.items():
            listed = ", ".join(f"'{name}'" for name in names)
            parts.append(f" ({number}) '{namespace}': {listed} for '{resource}'.")
            number += 1
    return "".join(parts)


def recap_statement(statement: str | None, suffix: str) -> str:
    """The SIWE statement carrying `suffix`: "<statement> <suffix>", or the suffix alone."""
    return suffix if statement is None else f"{statement} {suffix}"


def extract_recap(msg: SiweMessage) -> Recap | None:
    """The message's ReCap after EIP-5573 verification, or None if it has none."""
    resources = msg.resources or ()
    positions = [i for i, r in enumerate(resources) if r[:10].lower() == RECAP_PREFIX]
    if not positions:
        return None
    # EIP-5573: "There MUST be at most one ReCap URI in the SIWE resource list and, if
    # present, it MUST occupy the final entry."
    if len(positions) > 1:
        raise _fail("more than one ReCap URI in the resources")
    if positions[0] != len(resources) - 1:
        raise _fail("the ReCap URI must be the last resource")
    recap = decode_recap_uri(resources[-1])
    # EIP-5573 "ReCap Verification Algorithm": "Assert that the statement field of
    # recap-siwe ends with recap-transformed-statement". The translation algorithm appends
    # the preamble to a present statement after one space, so we require exactly that.
    suffix = translate_recap(recap)
    statement = msg.statement
    if statement is None or not (statement == suffix or statement.endswith(" " + suffix)):
        raise _fail("the statement does not end with the ReCap's translation")
    return recap


def audience_resource(audience: str) -> str:
    """`urn:did-auth:aud:<audience>`, the ReCap resource standing for a did-auth audience."""
    if not isinstance(audience, str) or not audience:
        raise InvalidRequest("audience must be a non-empty string")
    resource = AUDIENCE_RESOURCE_PREFIX + audience
    # It must be a URI (att keys) and also printable in a SIWE statement (no "%").
    if URI_RE.fullmatch(resource) is None or STATEMENT_RE.fullmatch(resource) is None:
        raise InvalidRequest(f"audience {audience[:80]!r} cannot be used in a ReCap")
    return resource


def recap_scopes(msg: SiweMessage, audience: str) -> set[str] | None:
    """did-auth scopes granted to `audience` by the message's ReCap; None without a ReCap.

    Raises SiweParseError when the ReCap is malformed or its statement does not match.
    """
    recap = extract_recap(msg)
    if recap is None:
        return None
    return {ability.replace("/", ":", 1) for ability in recap.granted(audience_resource(audience))}


def encode_recap(
    att: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], prf: Iterable[str] = ()
) -> str:
    """Canonical `urn:recap:` URI for `att` (keys sorted as EIP-5573 requires) and `prf`."""

    def ordered(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: ordered(node[k]) for k in sorted(node, key=_js_order)}
        if isinstance(node, (list, tuple)):
            return [ordered(item) for item in node]
        return node

    document = {"att": ordered(att), "prf": list(prf)}
    uri = RECAP_PREFIX + b64url_encode(json_dumps(document))
    decode_recap_uri(uri)  # whatever we emit must pass our own strict decoder
    return uri


def build_recap(audience: str, scopes: Iterable[str]) -> tuple[str, str]:
    """(resource_uri, statement_suffix) granting did-auth `scopes` to `audience`.

    Put `resource_uri` last in the SIWE resources and make the statement
    `recap_statement(statement, statement_suffix)`.
    """
    abilities: dict[str, list[dict[str, Any]]] = {}
    for scope in scopes:
        match = _SCOPE_RE.fullmatch(scope) if isinstance(scope, str) else None
        if match is None:
            raise InvalidScope(f"scope {str(scope)[:80]!r} is not of the form namespace:ability")
        abilities[f"{match[1]}/{match[2]}"] = [{}]
    if not abilities:
        raise InvalidScope("a ReCap needs at least one scope")
    uri = encode_recap({audience_resource(audience): abilities})
    return uri, translate_recap(decode_recap_uri(uri))
