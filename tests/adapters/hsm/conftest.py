"""SoftHSM2 tokens for the PKCS#11 backend: initialised in temporary folders (never the
machine's /var/lib/softhsm), one shared by the session, others per test when a test
unplugs or damages its token."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "246810"
SO_PIN = "13579111"
# The Redis database of the pkcs11 servers (their ring is da:{keys}:hsm-ring).
HSM_DB = 9


@dataclass
class SoftHsm:
    root: Path
    label: str

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    def env(self, pin: str = PIN) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf), "HSM_PIN": pin}

    def signing(self, **over: Any) -> dict[str, Any]:
        return {"backend": "pkcs11", "module": MODULE, "token_label": self.label,
                "pin_env": "HSM_PIN", **over}

    def unplug(self) -> None:
        """The token disappears (as a USB HSM pulled out): its folder is renamed away."""
        self.tokens.rename(self.root / "tokens.away")

    def replug(self) -> None:
        (self.root / "tokens.away").rename(self.tokens)


def init_token(label: str) -> SoftHsm:
    """`softhsm2-util --init-token --free` in a fresh folder with its own SOFTHSM2_CONF."""
    if shutil.which("softhsm2-util") is None or not Path(MODULE).exists():
        raise RuntimeError("softhsm2 is not installed: run the README's test command")
    hsm = SoftHsm(Path(tempfile.mkdtemp(prefix="did-auth-hsm-")), label)
    hsm.tokens.mkdir()
    hsm.conf.write_text(
        f"directories.tokendir = {hsm.tokens}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
         "--so-pin", SO_PIN],
        env={**os.environ, "SOFTHSM2_CONF": str(hsm.conf)}, check=True, capture_output=True,
    )
    return hsm


@pytest.fixture(scope="session")
def softhsm() -> Iterator[SoftHsm]:
    """The session's token; this test process uses it too (SOFTHSM2_CONF is read when the
    PKCS#11 library is initialised, once per process)."""
    hsm = init_token("did-auth-test")
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    os.environ["HSM_PIN"] = PIN
    yield hsm
    shutil.rmtree(hsm.root, ignore_errors=True)


def hsm_config(redis_url: str, hsm: SoftHsm, **over: Any) -> dict[str, Any]:
    return config_dict(**{"redis_url": redis_url, "signing": hsm.signing(),
                          "refresh_grace": 1, **over})


@pytest.fixture(scope="session")
def hsm_replicas(redis_server: RedisServer, softhsm: SoftHsm) -> Iterator[list[LiveServer]]:
    """Two replicas (separate `did-auth serve` processes; the first with two workers, each
    worker its own pool of sessions) sharing one SoftHSM2 token and one Redis database."""
    url = redis_server.own_db(HSM_DB)
    first = start_server(hsm_config(url, softhsm), workers=2, env=softhsm.env(),
                         start_timeout=240)
    try:
        # One issuer for both (as behind a load balancer): tokens of either verify alike.
        second = start_server(hsm_config(url, softhsm), workers=1, start_timeout=240,
                              env={**softhsm.env(), "DID_AUTH_ISSUER": first.url})
    except Exception:
        stop_server(first)
        raise
    yield [first, second]
    stop_server(first)
    stop_server(second)
