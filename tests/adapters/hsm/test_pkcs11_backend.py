"""The PKCS#11 backend against a real SoftHSM2 token, in this process: key objects are
sensitive and never extractable, signatures are JWS signatures (low-s R || S, Ed25519),
the ring is shared through the store with the same rotation semantics as the sealed
backend, and the token's AES key seals TOTP seeds."""

from __future__ import annotations

from typing import Any

import jwt
import orjson
import pytest
from did_auth_verifier.jose import b64url_decode, jwk_thumbprint, public_key_from_jwk
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as px

from did_auth.adapters.hsm import Hsm, open_hsm
from did_auth.adapters.store.memory import MemoryStore
from did_auth.config.models import SigningConfig
from did_auth.core.clock import FixedClock
from did_auth.core.errors import ConfigError
from did_auth.core.tokens.issue import Grant, TokenIssuer, new_sid
from did_auth.core.tokens.keys import KeyRing
from tests.adapters.hsm.conftest import HSM_DB, MODULE, SoftHsm
from tests.fixtures.redis_server import RedisServer

N_P256 = int(
    "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16
)
GRANT = Grant(sub="did:pkh:eip155:1:0xabc", client_id="c", audience="trading-api",
              scopes=("account:read",), auth_time=1, amr=("siwe",), sid=new_sid())


@pytest.fixture(scope="module")
def hsm(softhsm: SoftHsm) -> Hsm:
    return open_hsm(SigningConfig(backend="pkcs11", module=MODULE, token_label=softhsm.label,
                                  pin_env="HSM_PIN"))


def _ring(hsm: Hsm, store: MemoryStore, clock: FixedClock, alg: str = "ES256") -> KeyRing:
    return KeyRing(store, hsm.backend, clock, alg=alg, max_token_ttl=300)  # type: ignore[arg-type]


def _objects(hsm: Hsm, kid: str) -> list[object]:
    return hsm.token.run(lambda ts: list(ts.session.get_objects({Attribute.LABEL: kid})))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_keys_are_generated_in_the_token_sensitive_and_not_extractable(
    hsm: Hsm, alg: str
) -> None:
    ring = _ring(hsm, MemoryStore(), FixedClock(1_700_000_000), alg)
    await ring.load()
    key = ring.signing_key()
    assert jwk_thumbprint(key.public) == key.kid  # CKA_LABEL / CKA_ID = the RFC 7638 kid

    def attributes(ts):  # type: ignore[no-untyped-def]
        private = ts.session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key.kid)
        values = {a: private[a] for a in (
            Attribute.TOKEN, Attribute.SENSITIVE, Attribute.EXTRACTABLE,
            Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE)}
        with pytest.raises(px.AttributeSensitive):
            private[Attribute.VALUE]  # the token refuses to show the private scalar
        return values, bytes(private[Attribute.ID])

    values, key_id = hsm.token.run(attributes)
    assert values == {Attribute.TOKEN: True, Attribute.SENSITIVE: True,
                      Attribute.EXTRACTABLE: False, Attribute.ALWAYS_SENSITIVE: True,
                      Attribute.NEVER_EXTRACTABLE: True}
    assert key_id == key.kid.encode()
    # Nothing of the private key in the ring record: kid, alg, times and the backend.
    (record,) = orjson.loads(await ring.store.get(ring.store_key) or b"[]")
    assert set(record) == {"kid", "alg", "created_at", "active_from", "retire_at", "backend"}


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_tokens_signed_in_the_token_verify_with_pyjwt_and_did_auth_verifier(
    hsm: Hsm, alg: str
) -> None:
    ring = _ring(hsm, MemoryStore(), FixedClock(1_700_000_000), alg)
    await ring.load()
    issuer = TokenIssuer(ring, FixedClock(1_700_000_000), issuer="http://issuer")
    (jwk,) = ring.jwks()["keys"]
    ours = public_key_from_jwk(jwk, alg=alg, allowed_algs=(alg,))
    for _ in range(40):  # ~half of raw ECDSA signatures have a high S: all must come out low
        token = issuer.issue(GRANT, 300).token
        head, body, sig = token.split(".")
        signature = b64url_decode(sig)
        assert len(signature) == 64  # RFC 7518 §3.4 R || S (not DER); Ed25519: 64 octets
        if alg == "ES256":
            assert int.from_bytes(signature[32:], "big") <= N_P256 // 2
        assert ours.verify(f"{head}.{body}".encode(), signature, canonical_only=True)
        claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[alg], audience="trading-api",
                            options={"verify_exp": False})
        assert claims["sub"] == GRANT.sub


async def test_replicas_agree_and_rotation_publishes_ahead_then_retire_destroys(hsm: Hsm) -> None:
    store, clock = MemoryStore(), FixedClock(1_700_000_000)
    a, b = _ring(hsm, store, clock), _ring(hsm, store, clock)
    await a.load()
    await b.load()
    old = a.signing_key()
    assert b.signing_key().kid == old.kid  # one key, generated once, found by both
    new = await a.rotate(publish_ahead=60)
    await b.refresh(max_age=0)
    assert {k["kid"] for k in b.jwks()["keys"]} == {old.kid, new.kid}
    assert b.signing_key().kid == old.kid  # published ahead: not signing yet
    clock.advance(61)
    assert b.signing_key().kid == new.kid
    assert await a.retire() == []  # the old key's tokens may still live
    clock.advance(300 + 60)
    gone = await a.retire()
    assert [k.kid for k in gone] == [old.kid]
    assert _objects(hsm, old.kid) == []  # destroyed in the token
    assert len(_objects(hsm, new.kid)) == 2  # its public and private objects
    with pytest.raises(ValueError, match="signs now"):
        await a.retire(new.kid)


async def test_compromised_rotation_destroys_every_old_key(hsm: Hsm) -> None:
    store, clock = MemoryStore(), FixedClock(1_700_000_000)
    ring = _ring(hsm, store, clock)
    await ring.load()
    leaked = ring.signing_key().kid
    pending = await ring.rotate(publish_ahead=60)
    fresh = await ring.replace_compromised()
    assert [k["kid"] for k in ring.jwks()["keys"]] == [fresh.kid]
    assert _objects(hsm, leaked) == [] and _objects(hsm, pending.kid) == []


def test_the_tokens_aes_key_seals_totp_seeds(hsm: Hsm) -> None:
    sealed = hsm.sealer.seal(b"JBSWY3DPEHPK3PXP", b"da:{otp:acct}:secret")
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert hsm.sealer.open(sealed, b"da:{otp:acct}:secret") == b"JBSWY3DPEHPK3PXP"
    with pytest.raises(ConfigError):
        hsm.sealer.open(sealed, b"da:{otp:other}:secret")  # bound to its record
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(ConfigError):
        hsm.sealer.open(tampered, b"da:{otp:acct}:secret")
    assert hsm.dpop_secret() == hsm.dpop_secret() and len(hsm.dpop_secret()) == 32

    def kek_attributes(ts):  # type: ignore[no-untyped-def]
        key = ts.session.get_key(object_class=ObjectClass.SECRET_KEY, label=hsm.sealer.label)
        return key[Attribute.SENSITIVE], key[Attribute.EXTRACTABLE]

    assert hsm.token.run(kek_attributes) == (True, False)


async def test_services_with_pkcs11_seal_totp_seeds_in_the_token(
    softhsm: SoftHsm, redis_server: RedisServer
) -> None:
    """build_services wires the token's AES key as the sealer of TOTP seeds (no KEK file):
    an enrolment confirms with a code of its seed, and the stored record opens with the
    token's key only."""
    import base64
    import tempfile
    from pathlib import Path

    import pyotp
    import tomli_w

    from did_auth.adapters.hsm.sealer import HsmSealer
    from did_auth.config.settings import load_settings
    from did_auth.services import build_services
    from tests.fixtures.servers import config_dict

    path = Path(tempfile.mkdtemp()) / "did-auth.toml"
    path.write_text(tomli_w.dumps(config_dict(redis_url=redis_server.own_db(HSM_DB + 1),
                                              signing=softhsm.signing())))
    settings = load_settings(path, environ={"HSM_PIN": softhsm.env()["HSM_PIN"]})
    assert settings.key_encryption_key_file is None
    svc = build_services(settings)
    try:
        await svc.start()
        assert isinstance(svc.otp._sealer, HsmSealer)
        assert svc.keys.signer.name == "pkcs11"
        sub = "did:pkh:eip155:1:0x52908400098527886E0F7030069857D2E4169EE7"
        enrolment = await svc.otp.enroll(sub)
        await svc.otp.confirm(sub, pyotp.TOTP(enrolment.secret).now())
        dump = b"".join(v or b"" for v in [await svc.store.get(k) for k in await _keys(svc)])
        assert enrolment.secret.encode() not in dump
        rec = orjson.loads(next(v for v in [await svc.store.get(k) for k in await _keys(svc)]
                                if v and b'"active"' in v))
        sealed = base64.b64decode(rec["sealed"])
        assert svc.otp._sealer.open(sealed, rec["aad"].encode()) == enrolment.secret.encode()
    finally:
        await svc.close()


async def _keys(svc: Any) -> list[str]:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(svc.settings.redis_url)
    try:
        return [k.decode() async for k in r.scan_iter(match="da:{otp*")]
    finally:
        await r.aclose()
