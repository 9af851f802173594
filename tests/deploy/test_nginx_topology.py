"""The reference deployment's nginx (deploy/nginx/did-auth.conf, rendered with test ports
and a `trustme` test CA) in front of two `did-auth serve` replicas sharing a Sentinel-managed
Redis: logins over HTTPS, HSTS on every answer, both replicas serve, and the client IP in the
audit log is the address nginx saw, not an X-Forwarded-For the client sent."""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests import siwe_text
from tests.fixtures.redis_sentinel import RedisSentinel
from tests.fixtures.redis_server import free_port
from tests.fixtures.servers import LiveServer, config_dict, start_server, stop_server

REPO = Path(__file__).resolve().parents[2]
CLIENT_ADDR = "127.0.0.2"  # the test client's source address (all of 127/8 is loopback)


def _render(conf: str, https: int, http: int, upstreams: list[int], cert: Path, key: Path) -> str:
    """The repository's file with only ports and certificate paths replaced."""
    out = conf.replace("/etc/ssl/did-auth/fullchain.pem", str(cert))
    out = out.replace("/etc/ssl/did-auth/privkey.pem", str(key))
    out = re.sub(r"listen (\[::\]:)?443 ", lambda m: f"listen {m.group(1) or ''}{https} ", out)
    out = re.sub(r"listen (\[::\]:)?80;", lambda m: f"listen {m.group(1) or ''}{http};", out)
    for default, port in zip((8001, 8002), upstreams, strict=True):
        assert f"127.0.0.1:{default}" in out
        out = out.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
    return out


@pytest.fixture
def topology() -> Iterator[tuple[str, ssl.SSLContext, list[LiveServer]]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    work = Path(tempfile.mkdtemp(prefix="did-auth-nginx-"))
    topo = RedisSentinel(work / "redis")
    servers: list[LiveServer] = []
    proc = None
    try:
        topo.start()
        kek = base64.b64encode(secrets.token_bytes(32)).decode()
        cfg = config_dict(redis_url=topo.url(), key_encryption_key=kek,
                          trusted_proxies=["127.0.0.1/32"])
        servers = [start_server(cfg), start_server(cfg)]
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        cert, key = work / "cert.pem", work / "key.pem"
        leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        https, http = free_port(), free_port()
        ports = [int(s.url.rsplit(":", 1)[1]) for s in servers]
        site = _render((REPO / "deploy/nginx/did-auth.conf").read_text(), https, http, ports,
                       cert, key)
        (work / "site.conf").write_text(site)
        tmp = work / "tmp"
        tmp.mkdir()
        (work / "nginx.conf").write_text(
            f"pid {work}/nginx.pid;\nerror_log {work}/error.log;\nevents {{}}\n"
            f"http {{\n access_log {work}/access.log;\n"
            + "".join(f" {d}_temp_path {tmp};\n"
                      for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            + f" include {work}/site.conf;\n}}\n"
        )
        proc = subprocess.Popen(
            [nginx, "-c", str(work / "nginx.conf"), "-p", str(work), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        url = f"https://localhost:{https}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(url + "/healthz", verify=ctx, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("nginx did not start:\n"
                                   + (work / "error.log").read_text(errors="replace"))
            time.sleep(0.1)
        yield url, ctx, servers
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        for s in servers:
            stop_server(s)
        topo.stop()
        shutil.rmtree(work, ignore_errors=True)


def _audit(server: LiveServer, event: str) -> list[dict[str, object]]:
    out = []
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            rec = json.loads(line)
            if rec.get("event") == event:
                out.append(rec)
    return out


def test_logins_over_https_through_nginx(
    topology: tuple[str, ssl.SSLContext, list[LiveServer]],
) -> None:
    url, ctx, servers = topology
    transport = httpx.HTTPTransport(verify=ctx, local_address=CLIENT_ADDR)
    with httpx.Client(transport=transport, timeout=15) as client:
        spoof = {"X-Forwarded-For": "203.0.113.9"}
        for _ in range(6):
            address, key = siwe_text.new_account()
            r = client.post(url + "/siwe/nonce", json={"client_id": "dapp"}, headers=spoof)
            assert r.status_code == 200, r.text
            assert r.headers["strict-transport-security"].startswith("max-age=63072000")
            text = siwe_text.message(address, r.json()["nonce"])
            body = {"client_id": "dapp", "message": text,
                    "signature": siwe_text.sign(text, key), "scope": "account:read"}
            r = client.post(url + "/siwe/verify", json=body, headers=spoof)
            assert r.status_code == 200, r.text
            assert r.headers["strict-transport-security"].startswith("max-age=63072000")
            # three requests a login: with round robin, the nonce is issued by one replica
            # and checked by the other, and the verifies alternate between the two
            assert client.get(url + "/healthz").status_code == 200
    deadline = time.monotonic() + 5
    while True:
        logins = [_audit(s, "login_success") for s in servers]
        if sum(map(len, logins)) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sum(map(len, logins)) == 6
    assert all(logins), "nginx did not spread the logins over both replicas"
    assert {rec["ip"] for per in logins for rec in per} == {CLIENT_ADDR}
