"""A leaked signing key is withdrawn at once: `did-auth keys rotate --compromised` replaces
the ring by a new key that signs immediately, and the leaked key leaves the JWKS (a normal
rotation keeps publishing it until its last token expires, so tokens the attacker mints with
it would keep verifying for up to access_token_ttl + publish_ahead)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.tokens.kek import Sealer
from did_auth.core.tokens.keys import KeyRing
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import config_dict, start_server, stop_server


async def test_a_compromised_key_leaves_the_jwks_and_stops_signing_at_once() -> None:
    store = MemoryStore()
    clock = FixedClock(1_700_000_000)
    ring = KeyRing(store, Sealer(b"k" * 32), clock, alg="ES256", max_token_ttl=300)
    other_replica = KeyRing(store, Sealer(b"k" * 32), clock, alg="ES256", max_token_ttl=300)
    await ring.load()
    await other_replica.load()
    leaked = ring.signing_key().kid
    # A planned rotation first: its pending key is withdrawn too (it was sealed alongside).
    await ring.rotate(publish_ahead=60)

    new = await ring.replace_compromised()

    assert ring.signing_key().kid == new.kid != leaked
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid]
    # Every replica sees it at its next refresh (REFRESH_INTERVAL).
    clock.advance(6)
    await other_replica.refresh()
    assert [k["kid"] for k in other_replica.jwks()["keys"]] == [new.kid]
    assert other_replica.signing_key().kid == new.kid


def test_keys_rotate_compromised_on_a_live_server(redis_server: RedisServer) -> None:
    """The command line on a running two-worker server: the JWKS it serves loses the leaked
    key within the replicas' refresh interval, and new tokens carry the new kid."""
    server = start_server(
        config_dict(redis_url=redis_server.own_db(15), key_encryption_key_file="kek.bin"),
        workers=2,
    )
    try:
        jwks_url = server.url + "/.well-known/jwks.json"
        leaked = {k["kid"] for k in httpx.get(jwks_url).json()["keys"]}
        out = subprocess.run(
            [sys.executable, "-m", "did_auth", "keys", "rotate", "--compromised",
             "--config", str(server.workdir / "did-auth.toml")],
            cwd=server.workdir, capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        new_kid = out.stdout.split("new key ")[1].split()[0]
        deadline = time.monotonic() + 15
        kids: set[str] = set()
        while time.monotonic() < deadline:
            # Both workers answer (several requests spread over the processes).
            kids = {k["kid"] for _ in range(6) for k in httpx.get(jwks_url).json()["keys"]}
            if kids == {new_kid}:
                break
            time.sleep(0.5)
        assert kids == {new_kid} and not (leaked & kids)
    finally:
        stop_server(server)
