"""RFC 9449 at the authorization server without HTTP: the DPoP gate with the injected
clock (iat window, server nonces, jti memory) and the in-memory store."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from did_auth_verifier.dpop import jwk_thumbprint, make_dpop_proof
from did_auth_verifier.jose import public_jwk

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import InvalidDpopProof, InvalidToken, UseDpopNonce
from did_auth.core.flows.dpop_gate import DpopGate
from tests.core.flows.core import T0

TOKEN = "https://auth.example/token"
USERINFO = "https://auth.example/userinfo"


def _gate(*, require_nonce: bool = False, secret: bytes = b"s" * 32,
          clock: FixedClock | None = None) -> tuple[DpopGate, FixedClock]:
    clock = clock or FixedClock(T0)
    return DpopGate(MemoryStore(monotonic=clock.now), clock, secret=secret,
                    require_nonce=require_nonce), clock


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _jkt(key: Any) -> str:
    return jwk_thumbprint(public_jwk(key.public_key())[1])


def _proof(key: Any, clock: FixedClock, *, htm: str = "POST", htu: str = TOKEN,
           **kw: Any) -> str:
    return make_dpop_proof(key, htm=htm, htu=htu, clock=clock, **kw)


async def _refused(gate: DpopGate, proofs: list[str], **kw: Any) -> str | None:
    kw.setdefault("htm", "POST")
    kw.setdefault("htu", TOKEN)
    kw.setdefault("required", False)
    with pytest.raises(InvalidDpopProof) as err:
        await gate.check(proofs, **kw)
    return err.value.reason


async def test_a_valid_proof_gives_its_key_thumbprint() -> None:
    gate, clock = _gate()
    for key in (_key(), ed25519.Ed25519PrivateKey.generate()):
        got = await gate.check([_proof(key, clock)], htm="POST", htu=TOKEN, required=True)
        assert got == _jkt(key)
    assert set(gate.algs) >= {"ES256", "EdDSA"}


async def test_no_proof_is_none_unless_required_or_bound() -> None:
    gate, _ = _gate()
    assert await gate.check([], htm="POST", htu=TOKEN, required=False) is None
    assert await _refused(gate, [], required=True) == "dpop_missing"
    # RFC 9449 §5: a grant bound to a key needs a proof of that key
    assert await _refused(gate, [], bound_jkt=_jkt(_key())) == "dpop_missing"


async def test_more_than_one_dpop_header_is_refused() -> None:
    gate, clock = _gate()
    key = _key()
    # §4.3 ¶1: not more than one DPoP HTTP request header field
    assert await _refused(gate, [_proof(key, clock), _proof(key, clock)]) == "dpop_multiple"


async def test_a_proof_is_accepted_once() -> None:
    gate, clock = _gate()
    proof = _proof(_key(), clock)
    await gate.check([proof], htm="POST", htu=TOKEN, required=True)
    clock.advance(30)
    # §11.1: the server MUST NOT accept a proof whose jti it has seen within the window
    assert await _refused(gate, [proof]) == "dpop_replay"
    clock.advance(31)  # past the iat window: refused for its age, not only as a replay
    assert await _refused(gate, [proof]) == "dpop_iat"


async def test_a_jti_is_remembered_for_longer_than_any_proof_carrying_it_is_valid() -> None:
    gate, clock = _gate()
    key = _key()
    await gate.check([_proof(key, clock, jti="j1")], htm="POST", htu=TOKEN, required=True)
    # a fresh proof (new iat, new signature) reusing the jti inside the window: a replay
    clock.advance(2 * 60)
    assert await _refused(gate, [_proof(key, clock, jti="j1")]) == "dpop_replay"
    # the memory is bounded: 2 * iat_window + 5 s after, the jti is forgotten
    clock.advance(5)
    assert await gate.check([_proof(key, clock, jti="j1")], htm="POST", htu=TOKEN,
                            required=True) == _jkt(key)


@pytest.mark.parametrize(("offset", "ok"), [(-60, True), (60, True), (-61, False), (61, False)])
async def test_iat_window(offset: int, ok: bool) -> None:
    gate, clock = _gate()
    # §4.3 ¶11: the creation time of the JWT is within an acceptable window (60 s)
    proof = _proof(_key(), clock, iat=clock.now() + offset)
    if ok:
        assert await gate.check([proof], htm="POST", htu=TOKEN, required=True)
    else:
        assert await _refused(gate, [proof]) == "dpop_iat"


async def test_method_and_uri_must_match_the_request() -> None:
    gate, clock = _gate()
    key = _key()
    assert await _refused(gate, [_proof(key, clock, htm="GET")]) == "dpop_htm"
    assert await _refused(gate, [_proof(key, clock, htu=USERINFO)]) == "dpop_htu"
    # query and fragment are ignored (§4.3 ¶9)
    assert await gate.check([_proof(key, clock)], htm="POST", htu=TOKEN + "?x=1#f",
                            required=True)


async def test_the_bound_key_must_sign_the_proof() -> None:
    gate, clock = _gate()
    bound, other = _key(), _key()
    assert await gate.check([_proof(bound, clock)], htm="POST", htu=TOKEN, required=True,
                            bound_jkt=_jkt(bound)) == _jkt(bound)
    # §5: at the authorization server every DPoP failure is invalid_dpop_proof
    assert await _refused(gate, [_proof(other, clock)], bound_jkt=_jkt(bound)) == "dpop_binding"


async def test_server_nonces_rotate_with_the_clock() -> None:
    gate, clock = _gate(require_nonce=True)
    key = _key()
    with pytest.raises(UseDpopNonce) as err:
        await gate.check([_proof(key, clock)], htm="POST", htu=TOKEN, required=True)
    nonce = err.value.nonce
    assert nonce and err.value.reason == "dpop_nonce"
    assert await gate.check([_proof(key, clock, nonce=nonce)], htm="POST", htu=TOKEN,
                            required=True) == _jkt(key)
    # the nonce of the previous 300 s window is still good ...
    clock.advance(300)
    assert gate.new_nonce() != nonce
    assert await gate.check([_proof(key, clock, nonce=nonce)], htm="POST", htu=TOKEN,
                            required=True)
    # ... two windows on it is stale: the answer carries the current one
    clock.advance(300)
    with pytest.raises(UseDpopNonce) as err:
        await gate.check([_proof(key, clock, nonce=nonce)], htm="POST", htu=TOKEN,
                         required=True)
    assert err.value.nonce == gate.new_nonce() != nonce


async def test_replicas_share_nonces_only_with_the_same_secret() -> None:
    clock = FixedClock(T0)
    secret = secrets.token_bytes(32)
    one, _ = _gate(require_nonce=True, secret=secret, clock=clock)
    two, _ = _gate(require_nonce=True, secret=secret, clock=clock)
    stranger, _ = _gate(require_nonce=True, secret=secrets.token_bytes(32), clock=clock)
    key = _key()
    nonce = one.new_nonce()
    assert await two.check([_proof(key, clock, nonce=nonce)], htm="POST", htu=TOKEN,
                           required=True)
    with pytest.raises(UseDpopNonce):
        await stranger.check([_proof(key, clock, nonce=nonce)], htm="POST", htu=TOKEN,
                             required=True)


async def test_without_require_nonce_no_nonce_is_asked() -> None:
    gate, clock = _gate(require_nonce=False)
    assert await gate.check([_proof(_key(), clock)], htm="POST", htu=TOKEN, required=True)


async def test_resource_proofs_carry_the_access_token_hash() -> None:
    gate, clock = _gate()
    key = _key()
    jkt = _jkt(key)
    token = "at." + secrets.token_urlsafe(16)
    ok = _proof(key, clock, htm="GET", htu=USERINFO, access_token=token)
    await gate.check_resource([ok], htm="GET", htu=USERINFO, access_token=token, jkt=jkt)
    with pytest.raises(InvalidDpopProof) as err:
        await gate.check_resource([ok], htm="GET", htu=USERINFO, access_token=token, jkt=jkt)
    assert err.value.reason == "dpop_replay"
    # §4.3 ¶12: ath equals the hash of the access token presented
    for proof in (_proof(key, clock, htm="GET", htu=USERINFO),
                  _proof(key, clock, htm="GET", htu=USERINFO, access_token="another")):
        with pytest.raises(InvalidDpopProof) as err:
            await gate.check_resource([proof], htm="GET", htu=USERINFO, access_token=token,
                                      jkt=jkt)
        assert err.value.reason == "dpop_ath"
    # §7.1: a key other than the token's binding is invalid_token at a resource
    other = _key()
    with pytest.raises(InvalidToken) as bad:
        await gate.check_resource(
            [_proof(other, clock, htm="GET", htu=USERINFO, access_token=token)],
            htm="GET", htu=USERINFO, access_token=token, jkt=jkt)
    assert bad.value.reason == "dpop_binding"
    for proofs in ([], [ok, ok]):
        with pytest.raises(InvalidDpopProof) as err:
            await gate.check_resource(proofs, htm="GET", htu=USERINFO, access_token=token,
                                      jkt=jkt)
        assert err.value.reason == "dpop_missing"
