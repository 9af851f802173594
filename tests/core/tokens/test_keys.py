"""Signing keys: sealed at rest, shared through the store, rotation publishes ahead."""

from __future__ import annotations

import base64

import jwt
import orjson
import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import ConfigError
from did_auth.core.tokens.issue import Grant, TokenIssuer, new_sid
from did_auth.core.tokens.kek import Sealer, load_kek
from did_auth.core.tokens.keys import KEYS_KEY, KeyRing, jwk_thumbprint


def test_rfc7638_thumbprint_vector() -> None:
    # RFC 7638 §3.1 uses an RSA key; our kid covers EC/OKP, checked against RFC 8037 §A.3.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_keys_sealed_and_shared(alg: str) -> None:
    store = MemoryStore()
    kek = load_kek(file=None, b64=None, create_default=None)
    clock = FixedClock(1_700_000_000)
    a = KeyRing(store, Sealer(kek), clock, alg=alg, max_token_ttl=300)  # type: ignore[arg-type]
    b = KeyRing(store, Sealer(kek), clock, alg=alg, max_token_ttl=300)  # type: ignore[arg-type]
    await a.load()
    await b.load()
    assert a.signing_key().kid == b.signing_key().kid
    raw = await store.get(KEYS_KEY)
    assert raw is not None
    from cryptography.hazmat.primitives import serialization

    der = a.signer.private_key(a.signing_key().kid).private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der not in raw and base64.urlsafe_b64encode(der).rstrip(b"=") not in raw
    wrong = KeyRing(store, Sealer(b"\x00" * 32), clock, alg=alg, max_token_ttl=300)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        await wrong.load()


async def test_rotation_publishes_before_signing_and_keeps_old() -> None:
    store = MemoryStore()
    clock = FixedClock(1_700_000_000)
    ring = KeyRing(store, Sealer(b"k" * 32), clock, alg="ES256", max_token_ttl=300)
    await ring.load()
    issuer = TokenIssuer(ring, clock, issuer="http://x")
    old = ring.signing_key()
    grant = Grant(sub="s", client_id="c", audience="a", scopes=("account:read",), auth_time=1,
                  amr=("siwe",), sid=new_sid())
    old_token = issuer.issue(grant, 300).token
    new = await ring.rotate(publish_ahead=60)
    kids = {k["kid"] for k in ring.jwks()["keys"]}
    assert kids == {old.kid, new.kid}
    assert ring.signing_key().kid == old.kid  # not yet: only published
    clock.advance(61)
    assert ring.signing_key().kid == new.kid
    assert jwt.get_unverified_header(issuer.issue(grant, 300).token)["kid"] == new.kid
    clock.advance(300)  # old tokens still verifiable while they may live
    assert old.kid in {k["kid"] for k in ring.jwks()["keys"]}
    assert jwt.get_unverified_header(old_token)["kid"] == old.kid
    clock.advance(61)
    assert {k["kid"] for k in ring.jwks()["keys"]} == {new.kid}


def test_kek_file_created_mode_600(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "kek.bin"
    k1 = load_kek(file=str(path), b64=None, create_default=None)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_kek(file=str(path), b64=None, create_default=None) == k1
    (tmp_path / "short.bin").write_bytes(b"x" * 5)
    with pytest.raises(ConfigError):
        load_kek(file=str(tmp_path / "short.bin"), b64=None, create_default=None)
    with pytest.raises(ConfigError):
        load_kek(file=None, b64="not base64!!", create_default=None)
    assert load_kek(file=None, b64=base64.b64encode(b"z" * 32).decode(), create_default=None) == b"z" * 32


def test_jwks_entries_have_kid_alg_use() -> None:
    import asyncio

    ring = KeyRing(MemoryStore(), Sealer(b"k" * 32), FixedClock(1), alg="EdDSA", max_token_ttl=60)
    asyncio.run(ring.load())
    (k,) = ring.jwks()["keys"]
    assert k["use"] == "sig" and k["alg"] == "EdDSA" and k["kid"] and "d" not in k
    assert orjson.loads(orjson.dumps(k)) == k
