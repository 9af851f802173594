"""Server CPU per withdrawal approval next to a login's, on one did-auth server, in one run
(reported, no target).

    .venv/bin/python scripts/bench/withdrawal.py [--rounds 5] [--per-round 150]
        [--concurrency 8] [--json FILE]

One `did-auth serve` (one uvicorn worker, default rate limits raised out of the way, audit
log and metrics on) on a real Redis, pinned to its own cores; the client (this process)
and Redis on the others. Set-up, not measured: wallets log in for did-auth itself and enrol
a TOTP factor. Then, in interleaved rounds:

* login: a complete SIWE login (POST /siwe/nonce + POST /siwe/verify, EIP-191 signature);
* withdrawal approval: POST /transactions/nonce + POST /transactions/authorize (the
  session's token checked, EIP-712 signature recovered, single-use nonce consumed, TOTP
  code checked and its time step compare-and-set, a 60 s token signed and audited).

Each wallet approves once (a TOTP code is accepted once per time step), so every approval
is by a fresh enrolled wallet. Server CPU is read from /proc for all the server's
processes around each phase, divided by the operations done; the figures are medians over
the rounds and the ratio the median of the per-round ratios. Client work (signing) is not
in the server's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import login_load as ll  # noqa: E402

DESTINATION = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def config(workdir: Path, port: int, redis_url: str) -> Path:
    cfg = ll.did_auth_config(workdir, port, redis_url)
    text = cfg.read_text().replace(
        'scopes = ["account:read", "trade:write"]',
        'scopes = ["account:read", "trade:write", "wallet:withdraw"]',
    )
    cfg.write_text(
        text
        + '\n[scopes."wallet:withdraw"]\nstep_up = true\nmax_ttl = 60\n'
        + "\n[rate_limits]\n"
        + "".join(f'{k} = "100000/s"\n' for k in (
            "nonce_per_ip", "verify_per_ip", "verify_per_subject", "token_per_client"))
        + "outstanding_nonces_per_ip = 100000\n"
    )
    return cfg


def siwe_text(address: str, nonce: str) -> str:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return (
        "localhost:3000 wants you to sign in with your Ethereum account:\n"
        f"{address}\n\nSign in.\n\nURI: http://localhost:3000/\nVersion: 1\nChain ID: 1\n"
        f"Nonce: {nonce}\nIssued At: {now}"
    )


class Wallet:
    def __init__(self) -> None:
        self.acct = Account.create()
        self.token = ""
        self.secret = ""


async def login(client: httpx.AsyncClient, w: Wallet, audience: str | None) -> bool:
    r = await client.post("/siwe/nonce", json={"client_id": "bench"})
    if r.status_code != 200:
        return False
    text = siwe_text(w.acct.address, r.json()["nonce"])
    sig = "0x" + bytes(w.acct.sign_message(encode_defunct(text=text)).signature).hex()
    body: dict[str, Any] = {"client_id": "bench", "message": text, "signature": sig}
    if audience:
        body["audience"] = audience
    r = await client.post("/siwe/verify", json=body)
    if r.status_code != 200:
        return False
    if audience:
        w.token = r.json()["access_token"]
    return True


async def enrol(client: httpx.AsyncClient, w: Wallet, issuer: str) -> None:
    assert await login(client, w, issuer)
    auth = {"Authorization": f"Bearer {w.token}"}
    r = await client.post("/otp/enroll", json={}, headers=auth)
    r.raise_for_status()
    w.secret = r.json()["secret"]
    r = await client.post("/otp/confirm", json={"otp": pyotp.TOTP(w.secret).now()}, headers=auth)
    r.raise_for_status()


def typed(nonce: str, expires_at: int) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}],
            "Withdrawal": [{"name": n, "type": "string"} for n in (
                "audience", "asset", "amount", "destination", "network", "nonce")]
            + [{"name": "expiresAt", "type": "uint256"}],
        },
        "primaryType": "Withdrawal",
        "domain": {"name": "did-auth", "version": "1", "chainId": 1},
        "message": {"audience": "trading-api", "asset": "USDC", "amount": "250.00",
                    "destination": DESTINATION, "network": "ethereum", "nonce": nonce,
                    "expiresAt": expires_at},
    }


async def approve(client: httpx.AsyncClient, w: Wallet) -> bool:
    auth = {"Authorization": f"Bearer {w.token}"}
    r = await client.post("/transactions/nonce", headers=auth)
    if r.status_code != 200:
        return False
    nonce = r.json()["nonce"]
    expires_at = int(time.time()) + 120
    signable = encode_typed_data(full_message=typed(nonce, expires_at))
    sig = "0x" + bytes(w.acct.sign_message(signable).signature).hex()
    detail = {"type": "withdrawal", **{k: v for k, v in typed(nonce, 0)["message"].items()
                                       if k not in ("nonce", "expiresAt")}}
    r = await client.post("/transactions/authorize", headers=auth, json={
        "authorization_details": [detail], "nonce": nonce, "expires_at": expires_at,
        "signature": sig, "otp": pyotp.TOTP(w.secret).at(time.time() + 30),
    })
    return r.status_code == 200


async def run_all(jobs: list[Any], concurrency: int) -> int:
    """Run the coroutine factories `concurrency` at a time; the number that failed."""
    queue = list(jobs)
    failed = 0

    async def worker() -> None:
        nonlocal failed
        while queue:
            job = queue.pop()
            try:
                ok = await job()
            except httpx.TransportError:
                ok = False
            if not ok:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


async def measure(args: argparse.Namespace, base: str, pids: list[int]) -> list[dict[str, Any]]:
    rounds = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        print(f"set-up: {args.rounds * args.per_round + args.warmup} wallets log in and "
              "enrol a TOTP factor", flush=True)
        wallets = [Wallet() for _ in range(args.rounds * args.per_round + args.warmup)]
        async def enrolled(w: Wallet) -> bool:
            for _ in range(3):  # set-up only: a keep-alive connection closed under load
                try:
                    await enrol(client, w, base)
                    return True
                except httpx.TransportError:
                    continue
            return False

        failed = await run_all([lambda w=w: enrolled(w) for w in wallets], args.concurrency)
        if failed:
            raise SystemExit(f"set-up: {failed} wallets could not enrol")
        # Warm-up: both paths once per wallet of the warm-up set.
        warm = wallets[: args.warmup]
        await run_all([lambda w=w: approve(client, w) for w in warm], args.concurrency)
        await run_all([lambda w=w: login(client, w, None) for w in warm], args.concurrency)
        for rnd in range(args.rounds):
            batch = wallets[args.warmup + rnd * args.per_round:][: args.per_round]
            cpu0 = ll.cpu_seconds(pids)
            login_errors = await run_all(
                [lambda w=w: login(client, w, None) for w in batch], args.concurrency)
            cpu1 = ll.cpu_seconds(pids)
            approve_errors = await run_all(
                [lambda w=w: approve(client, w) for w in batch], args.concurrency)
            cpu2 = ll.cpu_seconds(pids)
            n = len(batch)
            r = {"login_ms": 1000 * (cpu1 - cpu0) / n, "approval_ms": 1000 * (cpu2 - cpu1) / n,
                 "login_errors": login_errors, "approval_errors": approve_errors, "n": n}
            r["ratio"] = r["approval_ms"] / r["login_ms"] if r["login_ms"] else float("nan")
            rounds.append(r)
            print(f"  round {rnd + 1}: login {r['login_ms']:.3f} ms, withdrawal approval "
                  f"{r['approval_ms']:.3f} ms server CPU ({n} each; errors "
                  f"{login_errors}/{approve_errors})", flush=True)
    return rounds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--per-round", type=int, default=150, help="logins and approvals per round")
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args()
    server_cpus, client_cpus = ll.cpu_split()
    print(f"withdrawal: {ll.machine()}; {args.rounds} rounds of {args.per_round} logins and "
          f"{args.per_round} withdrawal approvals, concurrency {args.concurrency}", flush=True)
    if client_cpus is not None:
        import os

        os.sched_setaffinity(0, client_cpus)
    workdir = Path(tempfile.mkdtemp(prefix="did-auth-wd-bench-"))
    redis = ll.Redis(workdir, client_cpus)
    server = None
    try:
        port = ll.free_port()
        cfg = config(workdir, port, redis.url(1))
        log = workdir / "server.log"
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen(
            [ll.PY, "-m", "did_auth", "serve", "--config", str(cfg), "--port", str(port),
             "--workers", "1"],
            cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=ll._pinned(server_cpus),
        )
        server = ll.Server("did-auth", port, proc, log)
        ll.wait_http(port, proc, log, timeout=180)
        pids = ll.process_tree(proc.pid)
        rounds = asyncio.run(measure(args, f"http://127.0.0.1:{port}", pids))
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rounds) for k in ("login_ms", "approval_ms",
                                                               "ratio")}
    errors = sum(r["login_errors"] + r["approval_errors"] for r in rounds)
    print(f"server CPU per login {med['login_ms']:.3f} ms, per withdrawal approval "
          f"{med['approval_ms']:.3f} ms: approval / login = {med['ratio']:.2f}x "
          f"(reported, no target); errors {errors}")
    if args.json:
        args.json.write_text(json.dumps({
            "login_ms": med["login_ms"], "approval_ms": med["approval_ms"],
            "ratio": med["ratio"], "errors": errors, "rounds": len(rounds),
            "per_round": args.per_round, "concurrency": args.concurrency,
        }))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
