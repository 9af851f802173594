"""No private key material in Redis, in files the server writes, or in its logs."""

from __future__ import annotations

import base64
import os

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from did_auth.core.tokens.kek import Sealer
from did_auth.core.tokens.keys import KEYS_KEY
from did_auth.core.tokens.signing import unseal_private_key
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LiveServer
from tests.integration.test_live_server import _login_body


def _redis_dump(server: RedisServer) -> bytes:
    """Every key and value in Redis, over a raw connection (strings, sets, lists, hashes)."""
    import redis

    out = bytearray()
    for db in range(16):
        out += _dump_db(redis.Redis.from_url(server.url[:-1] + str(db)))
    return bytes(out)


def _dump_db(r: redis.Redis) -> bytes:  # type: ignore[name-defined]  # noqa: F821
    out = bytearray()
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        out += key + b"\n"
        if kind == b"string":
            out += r.get(key) or b""
        elif kind == b"hash":
            for k, v in r.hgetall(key).items():
                out += k + v
        elif kind == b"set":
            out += b"".join(r.smembers(key))
        elif kind == b"zset":
            out += b"".join(m for m, _ in r.zrange(key, 0, -1, withscores=True))
        elif kind == b"list":
            out += b"".join(r.lrange(key, 0, -1))
        elif kind == b"stream":
            for _, fields in r.xrange(key):
                for k, v in fields.items():
                    out += k + v
        out += b"\n"
    return bytes(out)


def _needles(private: object) -> list[bytes]:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        raw = private.private_numbers().private_value.to_bytes(32, "big")
    else:
        raw = private.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    der = private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    b64u = base64.urlsafe_b64encode(raw).rstrip(b"=")
    return [raw, raw.hex().encode(), b64u, base64.b64encode(raw), der, base64.b64encode(der)]


def test_no_private_key_bytes_at_rest_or_in_logs(live_server: LiveServer, redis_server: RedisServer) -> None:
    for _ in range(3):
        body, _ = _login_body(live_server)
        assert httpx.post(live_server.url + "/siwe/verify", json=body).status_code == 200
    kek = (live_server.workdir / "kek.bin").read_bytes()
    ring = orjson.loads(_redis_dump_value(redis_server, KEYS_KEY))
    keys = [unseal_private_key(Sealer(kek), rec) for rec in ring]
    assert keys
    haystacks = {"redis": _redis_dump(redis_server), "log": live_server.log.read_bytes()}
    for root, _, files in os.walk(live_server.workdir):
        for name in files:
            if name != "kek.bin":
                path = os.path.join(root, name)
                haystacks[path] = open(path, "rb").read()
    for key in keys:
        for needle in _needles(key):
            for where, hay in haystacks.items():
                assert needle not in hay, f"private key material found in {where}"


def _redis_dump_value(server: RedisServer, key: str) -> bytes:
    import redis

    value = redis.Redis.from_url(server.url[:-1] + "1").get(key)  # the live server's db
    assert value is not None
    return bytes(value)
