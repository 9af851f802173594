"""did-auth-gate at an nginx gateway: added latency, CPU per check, memory over many checks.

1. Latency: nginx -> the Node trading API (tests/gateway/trading_api.mjs), on two ports of
   one nginx, in one run: plain `proxy_pass`, and the same location with `auth_request` to the
   gate (the lines of deploy/nginx/gateway.conf). A fixed request rate (open loop: latency
   is measured from each request's scheduled time) alternates between the two in rounds;
   the added p50 / p99 is checked minus plain.
2. CPU per check: the gate process's CPU time (/proc) over N pipelined `GET /check` requests
   (bearer tokens, warm), against the same HTTP server (did_auth_verifier.gate.server) with a
   handler answering 200 without any check, fed the very same requests. Target <= 1.3x.
3. Memory: the gate's RSS after `--checks` checks (default 1,000,000) cycling over
   `--tokens` (10,000) distinct tokens, against its RSS after a warm-up that used each token
   once. Target <= 1.2x.

Tokens come from a stand-in issuer (tests/gateway/issuer.py: an ES256 JWKS and a revocation
feed on loopback, followed by the gate as a real issuer's would be): minting 10,000 tokens
through real SIWE logins would measure the issuer. Load generators are this script's own
(asyncio, raw HTTP/1.1 over keep-alive connections), pinned to another core than the gate.

    .venv/bin/python scripts/bench/gateway.py [--checks 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from did_auth_verifier import jwk_thumbprint, make_dpop_proof  # noqa: E402
from did_auth_verifier.jose import public_jwk  # noqa: E402

from tests.gateway.issuer import StubIssuer  # noqa: E402

GATE = str(Path(sys.executable).with_name("did-auth-gate"))
CPU_TARGET = 1.3
RSS_TARGET = 1.2


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pin(pid: int, core: int) -> None:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {core % (os.cpu_count() or 1)})


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


# -- the null server: the gate's HTTP stack answering 200 without any check -----------------


def serve_null(port: int) -> None:
    from did_auth_verifier.gate.server import HttpServer, Request, encode_response

    answer = encode_response(200, [])  # encoded once, as the gate's remembered answers are

    def handler(request: Request) -> bytes:
        return answer

    async def run() -> None:
        server = HttpServer(handler)
        await server.start("127.0.0.1", port)
        await asyncio.Event().wait()

    asyncio.run(run())


# -- load generators ---------------------------------------------------------------------------


def request_bytes(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: bench"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def pipelined(port: int, requests: list[bytes], total: int, connections: int,
                    depth: int) -> dict[str, int]:
    """Send `total` requests (cycling over `requests`) as fast as the server answers, `depth`
    pipelined per connection; counts answers by status."""
    counts: dict[str, int] = {}
    per_conn = total // connections

    async def one(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        i = offset
        pending = b""
        while sent < per_conn:
            n = min(depth, per_conn - sent)
            batch = []
            for _ in range(n):
                batch.append(requests[i % len(requests)])
                i += connections
            writer.write(b"".join(batch))
            got = 0
            while got < n:
                data = await reader.read(1 << 16)
                if not data:
                    raise RuntimeError("connection closed by the server")
                pending += data
                while True:
                    end = pending.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = pending[:end]
                    length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
                    if len(pending) < end + 4 + length:
                        break
                    status = head[9:12].decode()
                    counts[status] = counts.get(status, 0) + 1
                    pending = pending[end + 4 + length:]
                    got += 1
            sent += n
        writer.close()

    await asyncio.gather(*(one(c) for c in range(connections)))
    return counts


async def fixed_rate(port: int, requests: list[bytes], rate: float, duration: float,
                     connections: int) -> tuple[list[float], int]:
    """Open loop: request k is due at start + k / rate, sent on connection k % connections;
    its latency counts from when it was due. Returns latencies (s) and non-200 answers."""
    total = int(rate * duration)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.05

    async def one(c: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for k in range(c, total, connections):
            due = start + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(requests[k % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - due)
            if head[9:12] != b"200":
                errors += 1
        writer.close()

    await asyncio.gather(*(one(c) for c in range(connections)))
    return latencies, errors


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- nginx ---------------------------------------------------------------------------------------


def nginx_conf(work: Path, plain: int, checked: int, gate: int, api: int) -> Path:
    """Two server blocks in front of the same API; the checked one has gateway.conf's
    auth_request lines (plain HTTP here: TLS costs the same on both and is not the gate's)."""
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
    conf = f"""
pid {work}/nginx.pid;
error_log {work}/error.log;
worker_processes 1;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  {''.join(f'{d}_temp_path {tmp}; ' for d in ('client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'))}
  upstream did_auth_gate {{ server 127.0.0.1:{gate}; keepalive 32; }}
  upstream trading_api {{ server 127.0.0.1:{api}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{plain};
    location / {{
      proxy_pass http://trading_api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  server {{
    listen 127.0.0.1:{checked};
    location / {{
      auth_request /_did_auth_check;
      auth_request_set $did_auth_subject $upstream_http_x_auth_subject;
      auth_request_set $did_auth_scope $upstream_http_x_auth_scope;
      auth_request_set $did_auth_client_id $upstream_http_x_auth_client_id;
      auth_request_set $did_auth_session $upstream_http_x_auth_session;
      proxy_pass http://trading_api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Auth-Subject $did_auth_subject;
      proxy_set_header X-Auth-Scope $did_auth_scope;
      proxy_set_header X-Auth-Client-Id $did_auth_client_id;
      proxy_set_header X-Auth-Session $did_auth_session;
      proxy_set_header Authorization "";
    }}
    location = /_did_auth_check {{
      internal;
      proxy_pass http://did_auth_gate/check;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
    }}
  }}
}}
"""
    path = work / "nginx.conf"
    path.write_text(conf)
    return path


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=500.0, help="requests/s in the latency runs")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per latency round")
    p.add_argument("--rounds", type=int, default=3, help="latency rounds per path")
    p.add_argument("--cpu-requests", type=int, default=100_000, help="requests per CPU run")
    p.add_argument("--cpu-rounds", type=int, default=3)
    p.add_argument("--checks", type=int, default=1_000_000, help="checks for the RSS figure")
    p.add_argument("--tokens", type=int, default=10_000, help="distinct tokens")
    p.add_argument("--dpop-requests", type=int, default=5_000, help="DPoP proofs checked")
    p.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args()
    if args.quick:
        args.rate, args.duration, args.rounds = 200.0, 1.5, 1
        args.cpu_requests, args.cpu_rounds, args.checks, args.tokens = 10_000, 1, 40_000, 2_000
        args.dpop_requests = 500
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    node = shutil.which("node") or "node"
    work = Path(tempfile.mkdtemp(prefix="did-auth-gate-bench-"))
    issuer = StubIssuer()
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"tokens": args.tokens}
    try:
        print(f"minting {args.tokens:,} tokens ...", flush=True)
        # valid for two hours: a slow machine must not see them expire during the run
        exp = int(time.time()) + 7200
        tokens = [issuer.token(scope="account:read trade:write", exp=exp)
                  for _ in range(args.tokens)]
        gate_port, null_port, api_port = free_port(), free_port(), free_port()
        plain_port, checked_port = free_port(), free_port()
        cfg = work / "gate.toml"
        cfg.write_text(
            f'issuer = "{issuer.url}"\naudience = "trading-api"\n'
            f'listen = "127.0.0.1:{gate_port}"\npublic_url = "https://api.example.com"\n'
            'trusted_proxies = ["127.0.0.1/32"]\n'
            '[[routes]]\nmethod = "GET"\npath = "/account"\nscopes = ["account:read"]\n'
        )
        log = (work / "gate.log").open("wb")
        gate = subprocess.Popen([GATE, "--config", str(cfg)], stdout=log, stderr=log)
        procs.append(gate)
        null = subprocess.Popen([sys.executable, __file__, "--serve-null", str(null_port)])
        procs.append(null)
        api = subprocess.Popen([node, str(ROOT / "tests/gateway/trading_api.mjs"),
                                str(api_port)], stdout=subprocess.DEVNULL)
        procs.append(api)
        for port, proc, what in ((gate_port, gate, "did-auth-gate"), (null_port, null, "null"),
                                 (api_port, api, "trading API")):
            wait_port(port, proc, what)
        conf = nginx_conf(work, plain_port, checked_port, gate_port, api_port)
        ngx = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ngx)
        wait_port(checked_port, ngx, "nginx")
        # the gate and the null server on core 0, everything else on core 1
        pin(gate.pid, 0)
        pin(null.pid, 0)
        pin(os.getpid(), 1)
        check_requests = [request_bytes("/check", {
            "X-Original-Method": "GET", "X-Original-URI": "/account",
            "Authorization": f"Bearer {t}"}) for t in tokens]
        api_requests = [request_bytes("/account", {"Authorization": f"Bearer {t}"})
                        for t in tokens]

        # warm-up: every token once through the gate (cold path, JWKS, feed)
        t0 = time.perf_counter()
        counts = asyncio.run(pipelined(gate_port, check_requests, len(check_requests), 4, 16))
        assert counts == {"200": len(check_requests)}, counts
        rss_warm = rss_bytes(gate.pid)
        print(f"warm-up: {len(tokens):,} tokens checked in {time.perf_counter() - t0:.1f} s, "
              f"gate RSS {rss_warm / 2**20:.1f} MiB", flush=True)

        # 1. latency at a fixed rate, rounds alternating plain / checked
        lat: dict[str, list[float]] = {"plain": [], "checked": []}
        errors = {"plain": 0, "checked": 0}
        for _ in range(args.rounds):
            for name, port in (("plain", plain_port), ("checked", checked_port)):
                values, errs = asyncio.run(fixed_rate(port, api_requests, args.rate,
                                                      args.duration, 8))
                lat[name] += values
                errors[name] += errs
        figures = {name: (pct(v, 0.5) * 1000, pct(v, 0.99) * 1000) for name, v in lat.items()}
        added50 = figures["checked"][0] - figures["plain"][0]
        added99 = figures["checked"][1] - figures["plain"][1]
        print(f"\nlatency at {args.rate:g} req/s, {args.rounds} x {args.duration:g} s per path, "
              "nginx -> trading API:")
        for name in ("plain", "checked"):
            print(f"  {name:8s} p50 {figures[name][0]:.2f} ms  p99 {figures[name][1]:.2f} ms  "
                  f"({len(lat[name])} requests, {errors[name]} not 200)")
        print(f"  added by auth_request + gate: p50 {added50:+.2f} ms, p99 {added99:+.2f} ms")
        result["latency"] = {"rate": args.rate, "plain_p50_ms": figures["plain"][0],
                             "plain_p99_ms": figures["plain"][1],
                             "checked_p50_ms": figures["checked"][0],
                             "checked_p99_ms": figures["checked"][1],
                             "added_p50_ms": added50, "added_p99_ms": added99,
                             "errors": errors}

        # 2. CPU per request: gate vs the same server stack without any check
        per: dict[str, list[float]] = {"gate": [], "null": []}
        for _ in range(args.cpu_rounds):
            for name, proc, port in (("gate", gate, gate_port), ("null", null, null_port)):
                before = cpu_seconds(proc.pid)
                counts = asyncio.run(pipelined(port, check_requests, args.cpu_requests, 4, 16))
                assert counts == {"200": args.cpu_requests}, (name, counts)
                per[name].append((cpu_seconds(proc.pid) - before) / args.cpu_requests)
        gate_us = statistics.median(per["gate"]) * 1e6
        null_us = statistics.median(per["null"]) * 1e6
        ratio = gate_us / null_us
        print(f"\nCPU per request ({args.cpu_requests:,} pipelined requests x {args.cpu_rounds}):"
              f"\n  gate (bearer check) {gate_us:.1f} us, same server answering 200 without "
              f"a check {null_us:.1f} us")
        print(f"  ratio gate/no-check: {ratio:.2f}x (target <= {CPU_TARGET}x)")
        result["cpu"] = {"gate_us": gate_us, "null_us": null_us, "ratio": ratio}

        # the full verifier path every time: DPoP-bound tokens, a fresh proof per request
        # (RFC 9449: single use, never remembered); reported, no target
        dpop_key = ec.generate_private_key(ec.SECP256R1())
        jkt = jwk_thumbprint(public_jwk(dpop_key.public_key())[1])
        bound = [issuer.token(scope="account:read", cnf={"jkt": jkt}, exp=exp) for _ in range(50)]
        htu = "https://api.example.com/account"
        dpop_requests = [request_bytes("/check", {
            "X-Original-Method": "GET", "X-Original-URI": "/account",
            "Authorization": f"DPoP {t}",
            "DPoP": make_dpop_proof(dpop_key, htm="GET", htu=htu, access_token=t)})
            for t in (bound[i % len(bound)] for i in range(args.dpop_requests))]
        before = cpu_seconds(gate.pid)
        counts = asyncio.run(pipelined(gate_port, dpop_requests, len(dpop_requests), 4, 16))
        assert counts == {"200": len(dpop_requests)}, counts
        dpop_us = (cpu_seconds(gate.pid) - before) / len(dpop_requests) * 1e6
        print(f"  DPoP check (full verifier path: proof signature, jti, binding): "
              f"{dpop_us:.1f} us per request ({len(dpop_requests):,} proofs; reported)")
        result["cpu"]["dpop_us"] = dpop_us

        # 3. memory after many checks over the distinct tokens
        t0 = time.perf_counter()
        done = 0
        chunk = 200_000
        while done < args.checks:
            n = min(chunk, args.checks - done)
            counts = asyncio.run(pipelined(gate_port, check_requests, n, 4, 32))
            assert counts == {"200": n}, counts
            done += n
        rss_after = rss_bytes(gate.pid)
        rss_ratio = rss_after / rss_warm
        took = time.perf_counter() - t0
        print(f"\nmemory: gate RSS {rss_warm / 2**20:.1f} MiB after the warm-up, "
              f"{rss_after / 2**20:.1f} MiB after {done:,} more checks over {len(tokens):,} "
              f"tokens ({took:.0f} s, {done / took:.0f} checks/s)")
        print(f"  ratio RSS after/warm: {rss_ratio:.2f}x (target <= {RSS_TARGET}x)")
        result["memory"] = {"rss_warm": rss_warm, "rss_after": rss_after, "checks": done,
                            "ratio": rss_ratio}
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        issuer.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-null":
        serve_null(int(sys.argv[2]))
    else:
        raise SystemExit(main())
