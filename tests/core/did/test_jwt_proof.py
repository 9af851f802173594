"""DID proofs: parsing, signature formats, and the attack suite through `DidLogin`.

No chain here: did:ethr documents come from `build_document` over synthetic registry
events (the Hardhat-backed flow is in test_did_login_flow.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from coincurve import PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from did_auth.core.clock import FixedClock
from did_auth.core.did.document import Resolution
from did_auth.core.did.ethr import (
    DelegateChanged,
    EthrDid,
    OwnerChanged,
    build_document,
)
from did_auth.core.did.jwt_proof import parse_proof, sign_proof
from did_auth.core.did.key import did_key
from did_auth.core.did.resolver import DidResolver, ParsedDid, parse_did
from did_auth.core.errors import DidAuthError
from did_auth.core.flows.did_login import DidLogin, DidRequest
from did_auth.core.signatures.eip191 import SECP256K1_N
from tests.core.did import CHAIN_ID, Key, claims_of, make_login
from tests.fixtures.servers import settings_for

NOW = 1_800_000_000
REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ZERO = "0x" + "00" * 20


class SyntheticRegistry(DidResolver):
    """did:ethr documents from in-memory registry events (block 1.., all before NOW)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: dict[str, list[Any]] = {}

    def add(self, identity: str, event: Any) -> None:
        self.events.setdefault(identity, []).append(event)

    def parse(self, did: object) -> ParsedDid:
        return parse_did(did)

    async def resolve(self, did: str | ParsedDid, *, now: float | None = None) -> Resolution:
        parsed = parse_did(did) if isinstance(did, str) else did
        if not isinstance(parsed, EthrDid):
            return await super().resolve(parsed, now=now)
        at = int(now or NOW)
        state = build_document(
            parsed.did,
            parsed.address,
            parsed.public_key,
            self.events.get(parsed.address, []),
            parsed.chain_id,
            at,
        )
        return Resolution(
            document=state.document,
            deactivated=state.deactivated,
            block=100,
            timestamp=at,
            history_keys=state.history_keys,
        )


def delegate(kind: str, address: str, valid_to: int = NOW + 3600) -> DelegateChanged:
    return DelegateChanged(
        block=10, previous_change=0, delegate_type=kind, delegate=address, valid_to=valid_to
    )


def ed_key() -> tuple[bytes, str]:
    seed = PrivateKey().secret
    pub = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    return seed, did_key("Ed25519", pub)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def synthetic() -> SyntheticRegistry:
    return SyntheticRegistry()


@pytest.fixture
async def login(clock: FixedClock, synthetic: SyntheticRegistry) -> DidLogin:
    settings = settings_for(
        chains=[{"chain_id": CHAIN_ID, "rpc_url": "http://127.0.0.1:9", "did_registry": REGISTRY}]
    )
    flow, _ = await make_login(settings, clock, resolver=synthetic)
    return flow


async def proof_for(
    login: DidLogin,
    did: str,
    key: bytes,
    alg: str = "ES256K-R",
    *,
    audience: str | None = None,
    **claims: Any,
) -> str:
    ch = await login.challenge("dapp", did, audience)
    body = {
        "iss": did,
        "aud": ch["audience"],
        "nonce": ch["challenge"],
        "iat": NOW - 5,
        "exp": NOW + 120,
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return sign_proof(body, alg=alg, private_key=key)


async def fails(login: DidLogin, proof: str, code: str, **kw: Any) -> DidAuthError:
    with pytest.raises(DidAuthError) as exc:
        await login.verify(DidRequest(client_id=kw.pop("client_id", "dapp"), proof=proof, **kw))
    assert exc.value.code == code, exc.value.description
    return exc.value


def b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --------------------------------------------------------------------------- happy paths


async def test_every_method_and_algorithm_logs_in(
    login: DidLogin, synthetic: SyntheticRegistry
) -> None:
    owner = Key.new()
    seed, key_did = ed_key()
    secp = PrivateKey()
    secp_did = did_key("secp256k1", secp.public_key.format(compressed=True))
    pkh = f"did:pkh:eip155:{CHAIN_ID}:{owner.address}"
    pub_did = f"did:ethr:0x7a69:{owner.public_compressed}"
    cases = [
        (owner.ethr, owner.private, "ES256K-R"),
        (owner.ethr, owner.private, "ES256K"),
        (pub_did, owner.private, "ES256K"),  # #controllerKey: a full public key
        (pub_did, owner.private, "ES256K-R"),
        (pkh, owner.private, "ES256K-R"),
        (pkh, owner.private, "ES256K"),
        (key_did, seed, "EdDSA"),
        (secp_did, secp.secret, "ES256K"),
        (secp_did, secp.secret, "ES256K-R"),
    ]
    for did, key, alg in cases:
        proof = await proof_for(login, did, key, alg)
        response, grant = await login.verify(DidRequest(client_id="dapp", proof=proof))
        claims = claims_of(response["access_token"])
        assert claims["sub"] == did == grant.sub, alg
        assert claims["amr"] == ["did"] and claims["aud"] == "trading-api"
        assert claims["scope"] == "account:read" and response["token_type"] == "Bearer"


async def test_sigauth_delegate_gets_delegate_scopes(
    login: DidLogin, synthetic: SyntheticRegistry
) -> None:
    owner, bot = Key.new(), Key.new()
    synthetic.add(owner.address, delegate("sigAuth", bot.address))
    proof = await proof_for(login, owner.ethr, bot.private)
    _, grant = await login.verify(DidRequest("dapp", proof, scope="account:read trade:write"))
    assert grant.sub == owner.ethr and grant.scopes == ("account:read", "trade:write")
    proof = await proof_for(login, owner.ethr, bot.private)
    await fails(login, proof, "invalid_scope", scope="wallet:withdraw", otp="123456")
    # The owner may ask for it (then step-up applies).
    proof = await proof_for(login, owner.ethr, owner.private)
    await fails(login, proof, "invalid_scope", scope="wallet:withdraw")


# --------------------------------------------------------------------------- attack suite


async def test_wrong_audience(login: DidLogin) -> None:
    k = Key.new()
    ch = await login.challenge("dapp", k.ethr)  # audience: trading-api
    body = {"iss": k.ethr, "nonce": ch["challenge"], "iat": NOW, "exp": NOW + 60}
    other = sign_proof({**body, "aud": "other-api"}, alg="ES256K-R", private_key=k.private)
    err = await fails(login, other, "invalid_grant")
    assert err.reason == "nonce_binding"  # issued for another audience, and left intact
    foreign = sign_proof({**body, "aud": "evil-api"}, alg="ES256K-R", private_key=k.private)
    await fails(login, foreign, "invalid_grant")
    good = sign_proof({**body, "aud": "trading-api"}, alg="ES256K-R", private_key=k.private)
    await fails(login, good, "invalid_grant", audience="other-api")
    await login.verify(DidRequest("dapp", good))  # the challenge was never burnt


async def test_missing_or_multiple_audience(login: DidLogin) -> None:
    k = Key.new()
    proof = await proof_for(login, k.ethr, k.private, aud=None)
    assert "aud" not in claims_of(proof)
    assert (await fails(login, proof, "invalid_grant")).reason == "aud_missing"
    proof = await proof_for(login, k.ethr, k.private, aud=["trading-api", "other-api"])
    await fails(login, proof, "invalid_grant")
    proof = await proof_for(login, k.ethr, k.private, aud=["trading-api"])
    await login.verify(DidRequest("dapp", proof))


async def test_reused_challenge(login: DidLogin) -> None:
    k = Key.new()
    proof = await proof_for(login, k.ethr, k.private)
    await login.verify(DidRequest("dapp", proof))
    assert (await fails(login, proof, "invalid_grant")).reason.startswith("nonce_")
    # A fresh signature over the same challenge is a replay too.
    again = sign_proof(claims_of(proof), alg="ES256K", private_key=k.private)
    await fails(login, again, "invalid_grant")


async def test_unknown_challenge(login: DidLogin) -> None:
    k = Key.new()
    proof = sign_proof(
        {"iss": k.ethr, "aud": "trading-api", "nonce": "A" * 22, "iat": NOW, "exp": NOW + 60},
        alg="ES256K-R",
        private_key=k.private,
    )
    await fails(login, proof, "invalid_grant")


async def test_challenge_bound_to_did_and_client(login: DidLogin) -> None:
    a, b = Key.new(), Key.new()
    ch = await login.challenge("dapp", a.ethr)
    body = {"aud": "trading-api", "nonce": ch["challenge"], "iat": NOW, "exp": NOW + 60}
    proof = sign_proof({**body, "iss": b.ethr}, alg="ES256K-R", private_key=b.private)
    assert (await fails(login, proof, "invalid_grant")).reason == "nonce_binding"
    proof = sign_proof({**body, "iss": a.ethr}, alg="ES256K-R", private_key=a.private)
    await fails(login, proof, "invalid_client", client_id="no-such-client")
    await login.verify(DidRequest("dapp", proof))


async def test_expired_and_future_proofs(login: DidLogin, clock: FixedClock) -> None:
    k = Key.new()
    proof = await proof_for(login, k.ethr, k.private, iat=NOW - 600, exp=NOW - 120)
    assert (await fails(login, proof, "invalid_grant")).reason == "proof_expired"
    proof = await proof_for(login, k.ethr, k.private, iat=NOW + 600, exp=NOW + 700)
    assert (await fails(login, proof, "invalid_grant")).reason == "proof_iat"
    proof = await proof_for(login, k.ethr, k.private, iat=NOW, exp=NOW + 7200)
    assert (await fails(login, proof, "invalid_grant")).reason == "proof_lifetime"
    proof = await proof_for(login, k.ethr, k.private, exp=None)
    assert (await fails(login, proof, "invalid_grant")).reason == "exp_missing"
    proof = await proof_for(login, k.ethr, k.private, iat=True)
    await fails(login, proof, "invalid_grant")
    # Within the skew (60 s) an expiry just passed is tolerated.
    proof = await proof_for(login, k.ethr, k.private, iat=NOW - 100, exp=NOW - 30)
    await login.verify(DidRequest("dapp", proof))


async def test_alg_none_and_hmac(login: DidLogin) -> None:
    k = Key.new()
    signed = await proof_for(login, k.ethr, k.private)
    _head, body, _ = signed.split(".")
    none = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{body}."
    assert (await fails(login, none, "invalid_grant")).reason == "proof_alg"
    import hmac

    hs_head = b64({"alg": "HS256", "typ": "JWT"})
    mac = hmac.new(b"secret", f"{hs_head}.{body}".encode(), "sha256").digest()
    await fails(login, f"{hs_head}.{body}.{b64(mac)}", "invalid_grant")
    for alg in ("ES256", "RS256", "Ed25519", "es256k", None):
        await fails(login, f"{b64({'alg': alg})}.{body}.{signed.split('.')[2]}", "invalid_grant")
    await login.verify(DidRequest("dapp", signed))  # none of the above burnt the challenge


async def test_verikey_delegate_cannot_log_in(
    login: DidLogin, synthetic: SyntheticRegistry
) -> None:
    owner, auditor = Key.new(), Key.new()
    synthetic.add(owner.address, delegate("veriKey", auditor.address))
    proof = await proof_for(login, owner.ethr, auditor.private)
    err = await fails(login, proof, "access_denied")
    assert err.reason == "not_authentication_key"


async def test_revoked_expired_and_former_keys_are_access_denied(
    login: DidLogin, synthetic: SyntheticRegistry
) -> None:
    owner, new_owner, expired, revoked = Key.new(), Key.new(), Key.new(), Key.new()
    synthetic.add(owner.address, delegate("sigAuth", expired.address, valid_to=NOW - 1))
    synthetic.add(owner.address, delegate("sigAuth", revoked.address))
    synthetic.add(owner.address, delegate("sigAuth", revoked.address, valid_to=NOW - 10))
    synthetic.add(
        owner.address, OwnerChanged(block=11, previous_change=10, owner=new_owner.address)
    )
    for key in (expired, revoked, owner):
        proof = await proof_for(login, owner.ethr, key.private)
        await fails(login, proof, "access_denied")
    proof = await proof_for(login, owner.ethr, new_owner.private)
    _, grant = await login.verify(DidRequest("dapp", proof))
    assert grant.sub == owner.ethr


async def test_delegate_valid_until_exactly_now_is_refused(
    login: DidLogin, synthetic: SyntheticRegistry
) -> None:
    """validTo == now: listed in the document (spec: `>=`), but not valid for login
    (registry `validDelegate`: `validity > block.timestamp`), like a revocation in this
    very block."""
    owner, bot = Key.new(), Key.new()
    synthetic.add(owner.address, delegate("sigAuth", bot.address, valid_to=NOW))
    doc = (await synthetic.resolve(owner.ethr, now=NOW)).document
    assert len(doc.authentication) == 2
    proof = await proof_for(login, owner.ethr, bot.private)
    await fails(login, proof, "access_denied")


async def test_deactivated_did(login: DidLogin, synthetic: SyntheticRegistry) -> None:
    owner = Key.new()
    synthetic.add(owner.address, OwnerChanged(block=11, previous_change=0, owner=ZERO))
    proof = await proof_for(login, owner.ethr, owner.private)
    assert (await fails(login, proof, "access_denied")).reason == "did_deactivated"


async def test_key_of_another_did(login: DidLogin) -> None:
    victim, attacker = Key.new(), Key.new()
    for did in (victim.ethr, f"did:pkh:eip155:{CHAIN_ID}:{victim.address}"):
        for alg in ("ES256K-R", "ES256K"):
            proof = await proof_for(login, did, attacker.private, alg)
            assert (await fails(login, proof, "invalid_grant")).reason == "signature"
    seed, key_did = ed_key()
    other_seed, _ = ed_key()
    proof = await proof_for(login, key_did, other_seed, "EdDSA")
    await fails(login, proof, "invalid_grant")
    # An Ed25519 proof for a secp256k1-only DID verifies with no key of it.
    proof = await proof_for(login, victim.ethr, seed, "EdDSA")
    await fails(login, proof, "invalid_grant")


async def test_tampered_payload(login: DidLogin) -> None:
    k = Key.new()
    seed, key_did = ed_key()
    for did, key, alg in ((k.ethr, k.private, "ES256K-R"), (key_did, seed, "EdDSA")):
        proof = await proof_for(login, did, key, alg)
        head, _body, sig = proof.split(".")
        claims = claims_of(proof)
        tampered = f"{head}.{b64({**claims, 'exp': claims['exp'] + 1})}.{sig}"
        await fails(login, tampered, "invalid_grant")
        await login.verify(DidRequest("dapp", proof))  # the untampered proof still works


async def test_signature_encodings(login: DidLogin) -> None:
    k = Key.new()
    proof = await proof_for(login, k.ethr, k.private, "ES256K")
    head, body, sig = proof.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    high = r.to_bytes(32, "big") + (SECP256K1_N - s).to_bytes(32, "big")
    assert (await fails(login, f"{head}.{body}.{b64(high)}", "invalid_grant")).reason == (
        "signature_shape"
    )
    rproof = sign_proof(claims_of(proof), alg="ES256K-R", private_key=k.private)
    rhead, rbody, rsig = rproof.split(".")
    rraw = base64.urlsafe_b64decode(rsig + "==")
    v27 = rraw[:64] + bytes([rraw[64] + 27])
    await fails(login, f"{rhead}.{rbody}.{b64(v27)}", "invalid_grant")
    await fails(login, f"{rhead}.{rbody}.{b64(rraw[:64])}", "invalid_grant")  # -R needs 65
    await fails(login, f"{head}.{body}.{sig}=", "invalid_request")  # padding
    await login.verify(DidRequest("dapp", proof))


@pytest.mark.parametrize(
    "proof",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.",
        f"{b64(b'not json')}.{b64({})}.",
        f"{b64(b'[1]')}.{b64({})}.",
        b64(b'{"alg":"ES256K","alg":"none"}') + "." + b64({}) + ".",
        "x" * 9000,
    ],
)
async def test_malformed_proofs_are_invalid_request(login: DidLogin, proof: str) -> None:
    await fails(login, proof, "invalid_request")


async def test_header_rules() -> None:
    k = Key.new()
    body = {"iss": k.ethr, "aud": "a", "nonce": "N" * 22, "iat": NOW, "exp": NOW + 1}
    good = sign_proof(body, alg="ES256K", private_key=k.private)
    sig = good.split(".")[2]
    for header in ({"alg": "ES256K", "crit": ["exp"]}, {"alg": "ES256K", "typ": "at+jwt"}):
        with pytest.raises(DidAuthError) as exc:
            parse_proof(f"{b64(header)}.{b64(body)}.{sig}")
        assert exc.value.code == "invalid_grant"
    assert parse_proof(good).issuer == k.ethr
    with pytest.raises(DidAuthError):
        parse_proof(
            sign_proof({**body, "sub": "did:example:other"}, alg="ES256K", private_key=k.private)
        )


async def test_iss_must_be_a_supported_did(login: DidLogin) -> None:
    k = Key.new()
    proof = sign_proof(
        {
            "iss": "did:web:example.com",
            "aud": "trading-api",
            "nonce": "N" * 22,
            "iat": NOW,
            "exp": NOW + 60,
        },
        alg="ES256K",
        private_key=k.private,
    )
    await fails(login, proof, "invalid_request")


async def test_challenge_input_checks(login: DidLogin) -> None:
    k = Key.new()
    ch = await login.challenge("dapp", k.ethr)
    assert ch["audience"] == "trading-api" and ch["expires_in"] == 300
    assert len(ch["challenge"]) >= 16
    assert (await login.challenge("dapp", k.ethr, "other-api"))["audience"] == "other-api"
    bad: list[tuple[Any, Any, Any, str]] = [
        ("dapp", "did:web:example.com", None, "invalid_request"),
        ("dapp", f"did:ethr:sepolia:{k.address}", None, "invalid_request"),  # no registry
        ("dapp", f"did:pkh:eip155:5:{k.address}", None, "invalid_request"),  # chain not allowed
        ("dapp", k.ethr + "#controller", None, "invalid_request"),
        ("dapp", None, None, "invalid_request"),
        ("dapp", k.ethr, "evil-api", "invalid_scope"),
        ("nobody", k.ethr, None, "invalid_client"),
        (None, k.ethr, None, "invalid_request"),
    ]
    for client_id, did, aud, code in bad:
        with pytest.raises(DidAuthError) as exc:
            await login.challenge(client_id, did, aud)
        assert exc.value.code == code, (did, exc.value.description)
