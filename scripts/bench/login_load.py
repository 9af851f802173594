"""Load test: complete SIWE logins (nonce + sign + verify) against did-auth, the baseline a
team would typically write (`baseline_server.py`) and the no-checks ceiling
(`ceiling_server.py`), with the same load generator, in one run.

    .venv/bin/python scripts/bench/login_load.py [--workers 1] [--rounds 5] [--duration 5]
        [--connections 16] [--wallets 5000] [--memory-logins 100000] [--json FILE]

Set-up: one real `redis-server` started here (a database per server); each server with N
uvicorn workers, started the way `did-auth serve` starts uvicorn; the load generator is
another process. With two or more cores the server is pinned to one
set of cores and the generator and Redis to the others (`os.sched_setaffinity`), so that
they do not steal each other's CPU. The generator is cheap: precomputed keys and message
templates per wallet, coincurve signing (EIP-191 over keccak-256), raw keep-alive HTTP/1.1
on a fixed set of connections (no client objects per request), uvloop when installed.
Every login comes from its wallet's own client address (X-Forwarded-For from a trusted
proxy), so did-auth runs with its default rate limits and every check on.

All three servers run at once (idle ones cost nothing) and are measured in interleaved
rounds, each server for `--duration` seconds per round, so that load from other processes
on a shared machine hits all of them alike; medians over the rounds are printed, and each
ratio is the median of the per-round ratios. Per window: logins/s, p50/p99 latency of a
whole login (both requests), errors, and the server's own CPU time per login, read from
/proc/<pid>/stat of all its processes (the uvicorn supervisor and every worker), which does
not depend on how fast the generator is. For did-auth, the RSS of its processes after the
1,000-login warm-up and after `--memory-logins` logins in total (same server, counted over
its whole life; bounded by `--memory-budget` seconds, and said so when cut short).

Targets: server CPU per login >= 8x lower than the baseline's and within 1.3x of
the ceiling's; logins/s >= 5x the baseline's; RSS after 100,000 logins <= 1.5x RSS after
1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY = sys.executable
# signinwithethereum pins web3 < 8, so the baseline runs on the oracle environment's
# interpreter (tests/oracle: `.venv-oracle`, made by scripts/bootstrap.sh --dev).
ORACLE_PY = Path(os.environ.get("SIWE_ORACLE_PYTHON") or ROOT / ".venv-oracle" / "bin" / "python")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

TARGET_CPU_VS_BASELINE = 8.0
TARGET_CPU_VS_CEILING = 1.3
TARGET_RATE_VS_BASELINE = 5.0
TARGET_RSS_GROWTH = 1.5


# ---------------------------------------------------------------------------- /proc


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, utime + stime in ticks, rss in pages) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21])


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents[int(entry)] = st[0]
    tree, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier and p not in tree]
        tree += frontier
    return tree


def cpu_seconds(pids: list[int]) -> float:
    return sum(st[1] for p in pids if (st := _stat(p)) is not None) / CLK_TCK


def rss_bytes(pids: list[int]) -> int:
    return sum(st[2] for p in pids if (st := _stat(p)) is not None) * PAGE


# ------------------------------------------------------------------------- generator


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Wallet:
    key: Any  # coincurve.PrivateKey
    prefix: str  # the message up to "Nonce: "
    ip: bytes


def make_wallets(n: int) -> list[Wallet]:
    from coincurve import PrivateKey

    from did_auth.core.signatures import keccak256, to_checksum_address

    wallets = []
    for i in range(n):
        key = PrivateKey(secrets.token_bytes(32))
        address = to_checksum_address(keccak256(key.public_key.format(compressed=False)[1:])[12:])
        prefix = (
            "localhost:3000 wants you to sign in with your Ethereum account:\n"
            f"{address}\n\nSign in to the bench venue.\n\n"
            "URI: http://localhost:3000/login\nVersion: 1\nChain ID: 1\nNonce: "
        )
        ip = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}".encode()
        wallets.append(Wallet(key, prefix, ip))
    return wallets


class Conn:
    """One keep-alive HTTP/1.1 connection; requests are pre-framed bytes."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        lower = raw.lower()
        i = lower.find(b"\r\ncontent-length:")
        if i < 0:
            raise ConnectionError("response without content-length")
        length = int(lower[i + 17 : lower.index(b"\r\n", i + 2)])
        payload = await self.reader.readexactly(length)
        if b"connection: close" in lower:
            self.close()
        return status, payload


@dataclass
class Counters:
    logins: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    latencies: list[float] | None = None


async def generate(args: argparse.Namespace) -> dict[str, Any]:
    import orjson
    from coincurve import PrivateKey

    from did_auth.core.signatures import keccak256

    wallets = make_wallets(args.wallets)
    host, port = "127.0.0.1", args.port
    base_head = (
        f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Connection: keep-alive\r\n"
    ).encode()
    nonce_body = orjson.dumps({"client_id": args.client_id})
    c = Counters()
    stop = asyncio.Event()
    issued: list[Any] = [0, ""]  # second, its "Issued At" text (one strftime per second)

    def issued_at() -> str:
        now = int(time.time())
        if now != issued[0]:
            issued[0], issued[1] = now, _iso(now - 1)
        return str(issued[1])

    def sign(key: PrivateKey, text: str) -> str:
        data = text.encode()
        digest = keccak256(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
        sig = key.sign_recoverable(digest, hasher=None)
        return "0x" + sig[:64].hex() + ("1b" if sig[64] == 0 else "1c")

    counter = iter(range(1 << 62))

    def fail(kind: str) -> None:
        c.errors += 1
        c.error_kinds[kind] = c.error_kinds.get(kind, 0) + 1

    async def worker() -> None:
        conn = Conn(host, port)
        while not stop.is_set():
            w = wallets[next(counter) % len(wallets)]
            xff = b"X-Forwarded-For: " + w.ip + b"\r\nContent-Length: "
            t0 = time.perf_counter()
            try:
                status, body = await conn.post(
                    b"POST /siwe/nonce HTTP/1.1\r\n" + base_head + xff, nonce_body
                )
                if status != 200:
                    fail(f"nonce {status}")
                    continue
                nonce = orjson.loads(body)["nonce"]
                text = w.prefix + nonce + "\nIssued At: " + issued_at()
                verify_body = orjson.dumps({
                    "client_id": args.client_id, "message": text, "signature": sign(w.key, text),
                })
                status, body = await conn.post(
                    b"POST /siwe/verify HTTP/1.1\r\n" + base_head + xff, verify_body
                )
            except (OSError, asyncio.IncompleteReadError, ValueError, ConnectionError) as exc:
                fail(type(exc).__name__)
                conn.close()
                await asyncio.sleep(0.01)
                continue
            if status != 200 or b'"access_token"' not in body:
                fail(f"verify {status}")
                continue
            c.logins += 1
            if c.latencies is not None:
                c.latencies.append(time.perf_counter() - t0)
        conn.close()

    async def until(n: int, deadline: float = float("inf")) -> None:
        while c.logins < n and not stop.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    pids = process_tree(args.server_pid)
    tasks = [asyncio.create_task(worker()) for _ in range(args.connections)]
    result: dict[str, Any] = {}
    try:
        await until(args.warmup)
        result["rss_after_warmup"] = rss_bytes(pids)
        result["warmup_logins"] = c.logins
        pids = process_tree(args.server_pid)  # workers are all up now
        c.latencies = []
        start_logins, start_errors = c.logins, c.errors
        cpu0, t0 = cpu_seconds(pids), time.perf_counter()
        await asyncio.sleep(args.duration)
        cpu1, t1 = cpu_seconds(pids), time.perf_counter()
        window = c.logins - start_logins
        lat = sorted(c.latencies)
        c.latencies = None
        result.update(
            processes=len(pids),
            logins=window,
            seconds=t1 - t0,
            logins_per_s=window / (t1 - t0),
            errors=c.errors - start_errors,
            cpu_s=cpu1 - cpu0,
            cpu_ms_per_login=1000 * (cpu1 - cpu0) / window if window else float("nan"),
            p50_ms=1000 * lat[len(lat) // 2] if lat else float("nan"),
            p99_ms=1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        )
        if args.total_logins:
            mark = time.perf_counter()
            await until(args.total_logins, time.monotonic() + args.memory_budget)
            result["total_logins"] = c.logins
            result["total_seconds"] = time.perf_counter() - mark
            result["rss_after_total"] = rss_bytes(process_tree(args.server_pid))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    result["all_logins"] = c.logins
    result["all_errors"] = c.errors
    result["error_kinds"] = c.error_kinds
    return result


def generator_main(args: argparse.Namespace) -> int:
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        result = runner.run(generate(args))
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------- orchestration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_split() -> tuple[set[int] | None, set[int] | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    half = max(1, len(cpus) // 2)
    return set(cpus[:half]), set(cpus[half:])


def _pinned(cpus: set[int] | None) -> Any:
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def wait_http(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1"):
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not start:\n{log.read_text(errors='replace')[-3000:]}")


class Redis:
    def __init__(self, workdir: Path, cpus: set[int] | None) -> None:
        self.port = free_port()
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server not found (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_pinned(cpus),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def cpu(self) -> float:
        return cpu_seconds([self.proc.pid])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def did_auth_config(workdir: Path, port: int, redis_url: str) -> Path:
    kek = workdir / "kek.bin"
    kek.write_bytes(secrets.token_bytes(32))
    kek.chmod(0o600)  # did-auth refuses a KEK file group or others can read
    cfg = workdir / "did-auth.toml"
    cfg.write_text(
        f'issuer = "http://127.0.0.1:{port}"\n'
        f'redis_url = "{redis_url}"\n'
        f'key_encryption_key_file = "{kek}"\n'
        'trusted_proxies = ["127.0.0.1/32"]\n'
        f'audit_log = "{workdir / "audit.jsonl"}"\n'
        "\n[[clients]]\n"
        'client_id = "bench"\n'
        'domains = ["localhost:3000"]\n'
        'uris = ["http://localhost:3000"]\n'
        "chain_ids = [1]\n"
        'audiences = ["trading-api"]\n'
        'scopes = ["account:read", "trade:write"]\n'
        'default_scopes = ["account:read"]\n'
    )
    return cfg


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def start(name: str, workdir: Path, redis_url: str, workers: int, cpus: set[int] | None) -> Server:
    port = free_port()
    if name == "did-auth":
        cfg = did_auth_config(workdir, port, redis_url)
        cmd = [PY, "-m", "did_auth", "serve", "--config", str(cfg), "--port", str(port),
               "--workers", str(workers)]
    else:
        script = HERE / f"{name}_server.py"
        python = str(ORACLE_PY) if name == "baseline" else PY
        if not Path(python).exists():
            raise SystemExit(f"{python} is missing: run scripts/bootstrap.sh --dev")
        cmd = [python, str(script), "--port", str(port), "--redis-url", redis_url,
               "--workers", str(workers)]
    log = workdir / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        cmd, cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
        start_new_session=True, preexec_fn=_pinned(cpus),
    )
    try:
        wait_http(port, proc, log)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return Server(name, port, proc, log)


def drive(server: Server, args: argparse.Namespace, *, warmup: int, duration: float,
          total: int, cpus: set[int] | None, redis: Redis) -> dict[str, Any]:
    cmd = [PY, str(Path(__file__).resolve()), "_generate", "--port", str(server.port),
           "--server-pid", str(server.proc.pid), "--warmup", str(warmup),
           "--duration", str(duration), "--total-logins", str(total),
           "--connections", str(args.connections), "--wallets", str(args.wallets),
           "--client-id", "bench", "--memory-budget", str(args.memory_budget)]
    redis_cpu0 = redis.cpu()
    out = subprocess.run(
        cmd, capture_output=True, text=True, preexec_fn=_pinned(cpus),
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=args.timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"generator failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["redis_cpu_s_whole_run"] = redis.cpu() - redis_cpu0
    return result


def machine() -> dict[str, str]:
    import platform

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "nproc": str(os.cpu_count()),
        "affinity": str(len(os.sched_getaffinity(0))),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _paired(results: dict[str, dict[str, Any]], a: str, b: str, key: str) -> float:
    """Median over rounds of a's `key` / b's `key` (each round measures both servers
    back to back, so slow drifts of the machine cancel out)."""
    pairs = zip(results[a]["windows"], results[b]["windows"], strict=True)
    return statistics.median(_ratio(x[key], y[key]) for x, y in pairs)


def summarize(windows: list[dict[str, Any]]) -> dict[str, Any]:
    med = statistics.median
    return {
        "windows": windows,
        "rounds": len(windows),
        "processes": windows[0]["processes"],
        "logins": sum(w["logins"] for w in windows),
        "errors": sum(w["errors"] for w in windows),
        "logins_per_s": med(w["logins_per_s"] for w in windows),
        "cpu_ms_per_login": med(w["cpu_ms_per_login"] for w in windows),
        "p50_ms": med(w["p50_ms"] for w in windows),
        "p99_ms": med(w["p99_ms"] for w in windows),
    }


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    ours = results["did-auth"]
    print(f"\nmedians of {ours['rounds']} rounds of {args.duration:g} s per server "
          "(ratios: median of the per-round ratios)")
    print(f"{'server':10} {'logins/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7} "
          f"{'CPU ms/login':>13} {'logins':>8}")
    for name, r in results.items():
        print(f"{name:10} {r['logins_per_s']:10.1f} {r['p50_ms']:9.2f} {r['p99_ms']:9.2f} "
              f"{r['errors']:7d} {r['cpu_ms_per_login']:13.3f} {r['logins']:8d}")
    cpu_vs_base = _paired(results, "baseline", "did-auth", "cpu_ms_per_login")
    cpu_vs_ceil = _paired(results, "did-auth", "ceiling", "cpu_ms_per_login")
    rate_vs_base = _paired(results, "did-auth", "baseline", "logins_per_s")
    ratios: list[dict[str, Any]] = [
        {"name": "server CPU per login: baseline / did-auth", "value": cpu_vs_base,
         "target": f">= {TARGET_CPU_VS_BASELINE:g}x", "ok": cpu_vs_base >= TARGET_CPU_VS_BASELINE},
        {"name": "server CPU per login: did-auth / ceiling", "value": cpu_vs_ceil,
         "target": f"<= {TARGET_CPU_VS_CEILING:g}x", "ok": cpu_vs_ceil <= TARGET_CPU_VS_CEILING},
        {"name": "logins/s: did-auth / baseline", "value": rate_vs_base,
         "target": f">= {TARGET_RATE_VS_BASELINE:g}x",
         "ok": rate_vs_base >= TARGET_RATE_VS_BASELINE},
    ]
    if "rss_after_total" in ours:
        growth = _ratio(ours["rss_after_total"], ours["rss_after_warmup"])
        # (logins counted over the server's whole life: warm-up, rounds, then this phase)
        ratios.append({
            "name": f"did-auth RSS after {ours['total_logins']:,} logins / after "
                    f"{ours['warmup_logins']:,}",
            "value": growth, "target": f"<= {TARGET_RSS_GROWTH:g}x",
            "ok": growth <= TARGET_RSS_GROWTH,
        })
        print(f"\ndid-auth RSS (all processes): {ours['rss_after_warmup'] / 2**20:.1f} MiB after "
              f"{ours['warmup_logins']:,} logins, {ours['rss_after_total'] / 2**20:.1f} MiB after "
              f"{ours['total_logins']:,} ({ours['total_seconds']:.0f} s)")
        if ours["total_logins"] < args.memory_logins:
            print(f"  (only {ours['total_logins']:,} of {args.memory_logins:,} logins within "
                  f"--memory-budget {args.memory_budget:g} s on this machine: the growth is "
                  "reported for what was measured)")
    print()
    for r in ratios:
        print(f"{r['name']:52} {r['value']:8.2f}x  target {r['target']:8} "
              f"{'OK' if r['ok'] else 'MISSED'}")
    return {"machine": machine(), "workers": args.workers, "duration_s": args.duration,
            "rounds": args.rounds, "connections": args.connections, "wallets": args.wallets,
            "servers": results, "ratios": ratios}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode")
    g = sub.add_parser("_generate", help=argparse.SUPPRESS)
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--server-pid", type=int, required=True)
    g.add_argument("--warmup", type=int, default=1000)
    g.add_argument("--duration", type=float, default=10.0)
    g.add_argument("--total-logins", type=int, default=0)
    g.add_argument("--connections", type=int, default=16)
    g.add_argument("--wallets", type=int, default=5000)
    g.add_argument("--client-id", default="bench")
    g.add_argument("--memory-budget", type=float, default=420.0)
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    p.add_argument("--duration", type=float, default=5.0,
                   help="measured seconds per server and round")
    p.add_argument("--rounds", type=int, default=5,
                   help="rounds; each measures every server once, back to back")
    p.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    p.add_argument("--wallets", type=int, default=5000, help="distinct wallets (and client IPs)")
    p.add_argument("--warmup", type=int, default=1000, help="logins before measuring")
    p.add_argument("--memory-logins", type=int, default=100_000,
                   help="did-auth: total logins before the second RSS reading (0: skip)")
    p.add_argument("--memory-budget", type=float, default=420.0,
                   help="seconds allowed for reaching --memory-logins; fewer are reported")
    p.add_argument("--only", choices=["did-auth", "baseline", "ceiling"], action="append")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    if args.mode == "_generate":
        return generator_main(args)

    server_cpus, client_cpus = cpu_split()
    print(f"login_load: {machine()}; workers={args.workers}, connections={args.connections}, "
          f"wallets={args.wallets}, {args.rounds} rounds of {args.duration:g} s per server")
    print(f"  server cores {sorted(server_cpus) if server_cpus else 'shared'}, "
          f"generator + Redis cores {sorted(client_cpus) if client_cpus else 'shared'}")
    workdir = Path(tempfile.mkdtemp(prefix="did-auth-bench-"))
    redis = Redis(workdir, client_cpus)
    results: dict[str, dict[str, Any]] = {}
    servers: dict[str, Server] = {}
    names = [n for n in ("did-auth", "ceiling", "baseline") if not args.only or n in args.only]
    try:
        # All servers up at once on the server cores (an idle one costs nothing), so that the
        # rounds can interleave them.
        for db, name in enumerate(names, start=1):
            wd = workdir / name
            wd.mkdir()
            servers[name] = start(name, wd, redis.url(db), args.workers, server_cpus)
        done = dict.fromkeys(names, 0)
        warm: dict[str, dict[str, Any]] = {}
        for name in names:
            count = args.warmup if name != "baseline" else max(10, args.warmup // 50)
            warm[name] = drive(servers[name], args, warmup=count, duration=0, total=0,
                               cpus=client_cpus, redis=redis)
            done[name] += warm[name]["all_logins"]
        windows: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for rnd in range(1, args.rounds + 1):
            for name in names:
                r = drive(servers[name], args, warmup=args.connections, duration=args.duration,
                          total=0, cpus=client_cpus, redis=redis)
                done[name] += r["all_logins"]
                windows[name].append(r)
                print(f"  round {rnd} {name:9} {r['logins_per_s']:8.1f} logins/s, "
                      f"{r['cpu_ms_per_login']:.3f} ms server CPU per login, "
                      f"{r['errors']} errors ({r['processes']} server processes)", flush=True)
        for name in names:
            results[name] = summarize(windows[name])
        if "did-auth" in names:
            ours = results["did-auth"]
            ours["warmup_logins"] = warm["did-auth"]["warmup_logins"]
            ours["rss_after_warmup"] = warm["did-auth"]["rss_after_warmup"]
            if args.memory_logins > done["did-auth"]:
                r = drive(servers["did-auth"], args, warmup=0, duration=0,
                          total=args.memory_logins - done["did-auth"], cpus=client_cpus,
                          redis=redis)
                done["did-auth"] += r["all_logins"]
                ours["rss_after_total"] = r["rss_after_total"]
                ours["total_seconds"] = r["total_seconds"]
                ours["total_logins"] = done["did-auth"]
                ours["memory_errors"] = r["all_errors"]
    finally:
        for server in servers.values():
            server.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if len(results) < 3:
        return 0
    summary = report(results, args)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
