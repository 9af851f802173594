"""Processes of the gateway tests: did-auth-gate, the Node trading API and nginx running
deploy/nginx/gateway.conf as committed (only ports and certificate paths replaced)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import tomli_w

from tests.fixtures.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
GATE = str(Path(sys.executable).with_name("did-auth-gate"))
ROUTES: list[dict[str, Any]] = [
    {"method": "GET", "path": "/account", "scopes": ["account:read"]},
    {"method": "GET", "path": "/orders/*", "scopes": ["account:read"]},
    {"method": "POST", "path": "/orders", "scopes": ["trade:write"]},
    {"method": "POST", "path": "/withdrawals", "scopes": ["wallet:withdraw"], "step_up": True,
     "withdrawal": True},
]


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, what: str,
               **kw: Any) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1, **kw)
            return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            text = log.read_text(errors="replace") if log.exists() else "(no log)"
            raise RuntimeError(f"{what} did not start:\n{text}")
        time.sleep(0.05)


class Proc:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, url: str) -> None:
        self.proc, self.log, self.url = proc, log, url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def gate_config(issuer: str, public_url: str, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "issuer": issuer, "audience": "trading-api", "listen": f"127.0.0.1:{free_port()}",
        "public_url": public_url, "trusted_proxies": ["127.0.0.1/32"], "routes": ROUTES,
    }
    cfg.update(over)
    return cfg


def start_gate(work: Path, cfg: dict[str, Any], name: str = "gate") -> Proc:
    path = work / f"{name}.toml"
    path.write_text(tomli_w.dumps(cfg))
    log = work / f"{name}.log"
    proc = subprocess.Popen([GATE, "--config", str(path)], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    url = "http://" + cfg["listen"]
    _wait_http(url + "/healthz", proc, log, "did-auth-gate")
    return Proc(proc, log, url)


def start_trading_api(work: Path) -> Proc:
    port = free_port()
    log = work / "trading_api.log"
    node = shutil.which("node") or "node"
    proc = subprocess.Popen([node, str(Path(__file__).with_name("trading_api.mjs")), str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/", proc, log, "the trading API")
    return Proc(proc, log, url)


def render_gateway(gates: list[str], api: str, https: int, http: int, cert: Path,
                   key: Path) -> str:
    """deploy/nginx/gateway.conf with only ports and certificate paths replaced."""
    out = (REPO / "deploy/nginx/gateway.conf").read_text()
    out = out.replace("/etc/ssl/trading-api/fullchain.pem", str(cert))
    out = out.replace("/etc/ssl/trading-api/privkey.pem", str(key))
    out = re.sub(r"listen (\[::\]:)?443 ", lambda m: f"listen {m.group(1) or ''}{https} ", out)
    out = re.sub(r"listen (\[::\]:)?80;", lambda m: f"listen {m.group(1) or ''}{http};", out)
    assert out.count("server 127.0.0.1:9180;") == 1 and "127.0.0.1:9000;" in out
    servers = "\n    ".join(f"server {g.removeprefix('http://')};" for g in gates)
    out = out.replace("server 127.0.0.1:9180;", servers)
    return out.replace("127.0.0.1:9000;", api.removeprefix("http://") + ";")


def start_nginx(work: Path, site: str, health_url: str, **client_kw: Any) -> Proc:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    work.mkdir(parents=True, exist_ok=True)
    (work / "site.conf").write_text(site)
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
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
    _wait_http(health_url, proc, work / "error.log", "nginx", **client_kw)
    return Proc(proc, work / "error.log", health_url)
