"""Server CPU per login: `[signing] backend = "pkcs11"` (SoftHSM2) against the sealed
backend, in one run.

Two did-auth servers, identical but for `[signing]`, on one Redis (a database each): the
sealed backend signs in process; the pkcs11 backend signs every access token in a SoftHSM2
token (CKM_ECDSA, a PKCS#11 call per token) initialised in a temporary folder. Complete
SIWE logins are driven by login_load.py's generator (keep-alive connections, many wallets);
server CPU (every server process, from /proc) per login is measured in interleaved rounds,
and the ratio is the median of the per-round ratios. Target: pkcs11 / sealed <= 1.5x.

    .venv/bin/python scripts/bench/hsm_login.py [--rounds 5] [--duration 5] [--workers 1]

Needs softhsm2 (Debian package; scripts/test.sh installs it) and redis-server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import login_load as ll  # noqa: E402

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "246810"
TARGET = 1.5


def softhsm(workdir: Path) -> dict[str, str]:
    """A token labelled did-auth-bench in `workdir`; the environment that reaches it."""
    tokens = workdir / "tokens"
    tokens.mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf), "BENCH_HSM_PIN": PIN}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "did-auth-bench",
                    "--pin", PIN, "--so-pin", "13579111"], env={**os.environ, **env},
                   check=True, capture_output=True)
    return env


def start(name: str, workdir: Path, redis_url: str, workers: int, cpus: set[int] | None,
          hsm_env: dict[str, str] | None) -> ll.Server:
    port = ll.free_port()
    cfg = ll.did_auth_config(workdir, port, redis_url)
    if hsm_env is not None:  # no key-encryption key file: the token holds the keys
        lines = [x for x in cfg.read_text().splitlines() if not x.startswith("key_encryption")]
        head = lines[: lines.index("[[clients]]")]
        tail = lines[lines.index("[[clients]]"):]
        cfg.write_text("\n".join([
            *head, "[signing]", 'backend = "pkcs11"', f'module = "{MODULE}"',
            'token_label = "did-auth-bench"', 'pin_env = "BENCH_HSM_PIN"', "", *tail]) + "\n")
        (workdir / "kek.bin").unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    env.update({"PYTHONPATH": str(ROOT), **(hsm_env or {})})
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(
        [ll.PY, "-m", "did_auth", "serve", "--config", str(cfg), "--port", str(port),
         "--workers", str(workers)],
        cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
        start_new_session=True, preexec_fn=ll._pinned(cpus),
    )
    server = ll.Server(name, port, proc, log)
    try:
        ll.wait_http(port, proc, log, timeout=180)
    except BaseException:
        server.stop()
        raise
    return server


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--wallets", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--memory-budget", type=float, default=420.0, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args()
    if shutil.which("softhsm2-util") is None or not Path(MODULE).exists():
        raise SystemExit("softhsm2 not found (apt-get install softhsm2)")
    server_cpus, client_cpus = ll.cpu_split()
    print(f"hsm_login: {ll.machine()}; workers={args.workers}, connections="
          f"{args.connections}, {args.rounds} rounds of {args.duration:g} s per server")
    workdir = Path(tempfile.mkdtemp(prefix="did-auth-hsm-bench-"))
    redis = ll.Redis(workdir, client_cpus)
    servers: dict[str, ll.Server] = {}
    windows: dict[str, list[dict[str, Any]]] = {"sealed": [], "pkcs11": []}
    try:
        for db, name in enumerate(windows, start=1):
            wd = workdir / name
            wd.mkdir()
            hsm_env = softhsm(wd) if name == "pkcs11" else None
            servers[name] = start(name, wd, redis.url(db), args.workers, server_cpus, hsm_env)
        for server in servers.values():
            ll.drive(server, args, warmup=args.warmup, duration=0, total=0, cpus=client_cpus,
                     redis=redis)
        for rnd in range(1, args.rounds + 1):
            for name, server in servers.items():
                r = ll.drive(server, args, warmup=args.connections, duration=args.duration,
                             total=0, cpus=client_cpus, redis=redis)
                windows[name].append(r)
                print(f"  round {rnd} {name:7} {r['logins_per_s']:8.1f} logins/s, "
                      f"{r['cpu_ms_per_login']:.3f} ms server CPU per login, "
                      f"{r['errors']} errors", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results = {name: ll.summarize(w) for name, w in windows.items()}
    for name, r in results.items():
        print(f"{name:7} {r['logins_per_s']:8.1f} logins/s  p50 {r['p50_ms']:.2f} ms  "
              f"p99 {r['p99_ms']:.2f} ms  errors {r['errors']}  "
              f"{r['cpu_ms_per_login']:.3f} ms server CPU per login")
    ratio = ll._paired(results, "pkcs11", "sealed", "cpu_ms_per_login")
    ok = ratio <= TARGET
    print(f"server CPU per login pkcs11 / sealed: {ratio:.2f}x (target <= {TARGET:g}x) "
          f"{'OK' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
