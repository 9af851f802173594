"""Run every benchmark in scripts/bench/ and write docs/benchmarks.md (called by run_all.sh).

Each benchmark runs as its own process with its usual defaults (its output is shown as it
runs); its ratios are read from that output (login_load.py: from its --json file) and put
in one markdown table with their targets, with the machine description (lscpu, nproc,
Python). Absolute times on shared machines drift; the ratios are measured in one run
against a named peer.

    .venv/bin/python scripts/bench/collect.py [--out docs/benchmarks.md] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def run(name: str, args: list[str]) -> tuple[str, float]:
    print(f"\n=== {name} {' '.join(args)}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / name), *args], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    proc.wait()
    if proc.returncode != 0:
        print(f"!!! {name} exited with {proc.returncode}", flush=True)
    return "".join(lines), time.monotonic() - start


Row = dict[str, Any]


def _row(bench: str, name: str, value: float, unit: str, target: str, ok: bool | None) -> Row:
    return {"bench": bench, "name": name, "value": value, "unit": unit, "target": target,
            "ok": ok}


def parse_siwe(out: str) -> list[Row]:
    rows = []
    m = re.search(r"signinwithethereum:\s+([\d.]+)x faster \(target >= ([\d.]+)x\)", out)
    if m:
        v, t = float(m[1]), float(m[2])
        rows.append(_row("siwe_verify", "SIWE parse + verify: signinwithethereum / did-auth",
                         v, "x", f">= {t:g}x", v >= t))
    m = re.search(r"raw floor:\s+([\d.]+)x slower \(target <= ([\d.]+)x\)", out)
    if m:
        v, t = float(m[1]), float(m[2])
        rows.append(_row("siwe_verify", "SIWE parse + verify: did-auth / raw coincurve floor",
                         v, "x", f"<= {t:g}x", v <= t))
    return rows


def parse_verify_token(out: str) -> list[Row]:
    rows = []
    pat = re.compile(r"^(ES256|EdDSA)\s+(cold|warm)\s+[\d.]+\s+[\d.]+\s+"
                     r"(ours/pyjwt|pyjwt/ours) = ([\d.]+)x?\s+(<=|>=) ([\d.]+)x?", re.M)
    for alg, mode, label, value, op, target in pat.findall(out):
        v, t = float(value), float(target)
        ours_first = label == "ours/pyjwt"
        rows.append(_row(
            "verify_token", f"token verification {alg} {mode}: "
            + ("did-auth / PyJWT+PyJWKClient" if ours_first else "PyJWT+PyJWKClient / did-auth"),
            v, "x", f"{op} {t:g}x", v <= t if op == "<=" else v >= t))
    return rows


def parse_contract_wallet(out: str) -> list[Row]:
    rows = []
    for label, value in re.findall(r"ratio signinwithethereum/ours\s+(.+?):\s+([\d.]+)x", out):
        rows.append(_row("contract_wallet_login",
                         f"contract-wallet verification {label.strip()}: signinwithethereum / "
                         "did-auth", float(value), "x", "> 1x (reported, no target)",
                         float(value) > 1))
    return rows


def parse_login_load(path: Path) -> tuple[list[Row], dict[str, Any] | None]:
    if not path.exists():
        return [], None
    data = json.loads(path.read_text())
    rows = [
        _row("login_load", r["name"], r["value"], "x", r["target"], r["ok"])
        for r in data["ratios"]
    ]
    return rows, data


def parse_gateway(path: Path) -> tuple[list[Row], list[str]]:
    """gateway.py's --json figures: two ratio rows and a section of their own."""
    if not path.exists():
        return [], []
    data = json.loads(path.read_text())
    lat, cpu, mem = data["latency"], data["cpu"], data["memory"]
    rows = [
        _row("gateway", "gate CPU per check: did-auth-gate / same server answering 200 "
             "without a check", cpu["ratio"], "x", "<= 1.3x", cpu["ratio"] <= 1.3),
        _row("gateway", f"gate RSS after {mem['checks']:,} checks over {data['tokens']:,} "
             "tokens / after warm-up", mem["ratio"], "x", "<= 1.2x", mem["ratio"] <= 1.2),
    ]
    section = [
        "",
        "## Gateway check (`gateway.py`)",
        "",
        f"nginx -> the Node trading API (`tests/gateway/trading_api.mjs`) on two ports of one "
        f"nginx, plain and with `auth_request` to `did-auth-gate`, {lat['rate']:g} requests/s "
        "(open loop, latency from each request's scheduled time), rounds alternating, bearer "
        "tokens from a stand-in ES256 issuer whose revocation feed the gate follows.",
        "",
        "| path | p50 ms | p99 ms |",
        "| --- | ---: | ---: |",
        f"| nginx -> API | {lat['plain_p50_ms']:.2f} | {lat['plain_p99_ms']:.2f} |",
        f"| nginx -> auth_request -> gate, then API | {lat['checked_p50_ms']:.2f} | "
        f"{lat['checked_p99_ms']:.2f} |",
        f"| added by the check | {lat['added_p50_ms']:+.2f} | {lat['added_p99_ms']:+.2f} |",
        "",
        f"CPU per request of the gate process (pipelined `GET /check`, warm bearer tokens): "
        f"{cpu['gate_us']:.1f} us, against {cpu['null_us']:.1f} us for the same HTTP server "
        f"(`did_auth_verifier.gate.server`) answering 200 without any check: "
        f"{cpu['ratio']:.2f}x. A repeated bearer token on the same route is answered from "
        "a remembered decision (until the token expires, the feed brings an entry or the JWKS "
        "changes); a DPoP request runs the whole verifier every time (proof signature, jti, "
        f"binding): {cpu.get('dpop_us', float('nan')):.1f} us. "
        f"RSS {mem['rss_warm'] / 2**20:.1f} MiB after a warm-up over "
        f"every token, {mem['rss_after'] / 2**20:.1f} MiB after {mem['checks']:,} more checks "
        f"({mem['ratio']:.2f}x).",
    ]
    return rows, section


def parse_withdrawal(path: Path) -> tuple[list[Row], list[str]]:
    """withdrawal.py's --json figures: one reported ratio and a short section."""
    if not path.exists():
        return [], []
    data = json.loads(path.read_text())
    rows = [_row("withdrawal", "server CPU per withdrawal approval / per login (same server)",
                 data["ratio"], "x", "reported, no target", None)]
    section = [
        "",
        "## Withdrawal approval (`withdrawal.py`)",
        "",
        f"One did-auth server (1 worker, Redis), {data['rounds']} interleaved rounds of "
        f"{data['per_round']} complete SIWE logins (`/siwe/nonce` + `/siwe/verify`) and "
        f"{data['per_round']} withdrawal approvals (`/transactions/nonce` + "
        "`/transactions/authorize`: session token check, EIP-712 signature, single-use "
        "nonce, TOTP code, 60 s token), each approval by a fresh enrolled wallet, "
        f"{data['concurrency']} requests in flight. Server CPU from /proc (medians):",
        "",
        "| operation | server CPU ms |",
        "| --- | ---: |",
        f"| login | {data['login_ms']:.3f} |",
        f"| withdrawal approval | {data['approval_ms']:.3f} |",
        "",
        f"Ratio approval / login: {data['ratio']:.2f}x (median of the per-round ratios; "
        f"reported, no target). Errors: {data['errors']}.",
    ]
    return rows, section


def parse_revocation_latency(path: Path) -> tuple[list[Row], list[str]]:
    """revocation_latency.py's --json figures: the two p99 targets and a section."""
    if not path.exists():
        return [], []
    data = json.loads(path.read_text())
    rows = [
        _row("revocation_latency", f"{r['way']} -> first rejection p99 at {r['observer']}",
             r["p99_ms"], " ms", f"<= {r['target_ms']:g} ms", r["ok"])
        for r in data["rows"] if r["target_ms"] is not None
    ]
    where = ("did-auth-gate behind nginx (deploy/nginx/gateway.conf)" if data["gateway"]
             else "the verifier (the gate or nginx was not available)")
    section = [
        "",
        "## Revocation latency (`revocation_latency.py`)",
        "",
        f"{data['n']} revocations each way, from just before `POST /revoke` (or before "
        "`revokeAll()` is sent to a Hardhat node that mines it at once) to the first refused "
        f"request at {where} and at an in-process verifier, both following "
        "`/revocations/stream`; beside them a verifier polling `GET /revocations` every "
        "second and, for `revokeAll()`, a did-auth whose watcher polls every second without "
        "a newHeads subscription (the previous defaults).",
        "",
        "| way | observer | p50 ms | p99 ms | max ms | timed out |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in data["rows"]:
        section.append(f"| {r['way']} | {r['observer']} | {r['p50_ms']:.1f} | "
                       f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['timeouts']} |")
    return rows, section


def machine() -> list[str]:
    lines = []
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        keep = ("Architecture", "CPU(s)", "Model name", "Thread(s) per core",
                "Core(s) per socket", "Socket(s)", "Hypervisor vendor", "L2 cache", "L3 cache")
        for line in out.splitlines():
            key = line.split(":", 1)[0].strip()
            if key in keep:
                lines.append(f"- {key}: {line.split(':', 1)[1].strip()}")
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    lines.append(f"- nproc: {nproc}")
    lines.append(f"- Python: {platform.python_version()} ({platform.python_implementation()})")
    lines.append(f"- Kernel: {platform.system()} {platform.release()}")
    return lines


def _fmt(v: float) -> str:
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def write(out: Path, rows: list[Row], load: dict[str, Any] | None, timings: dict[str, float],
          args: argparse.Namespace, sections: list[str] | None = None) -> None:
    md = [
        "# Benchmarks",
        "",
        f"Written by `scripts/bench/run_all.sh` on {datetime.now(UTC):%Y-%m-%d %H:%M UTC}"
        + (" (--quick: shortened runs)" if args.quick else "") + ". Each ratio is measured in "
        "one run against a named peer on the same machine; absolute times on shared machines "
        "drift, the ratios much less. No test asserts on time: these are the numbers.",
        "",
        "## Machine",
        "",
        *machine(),
        "",
        "## Ratios",
        "",
        "| benchmark | ratio | value | target | |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for r in rows:
        mark = "" if r["ok"] is None else ("OK" if r["ok"] else "**MISSED**")
        md.append(f"| {r['bench']} | {r['name']} | {_fmt(r['value'])}{r['unit']} | "
                  f"{r['target']} | {mark} |")
    md += [
        "",
        "signinwithethereum (siwe_verify, contract_wallet_login and the login_load baseline) "
        "pins web3 7 and eth-account 0.13 while did-auth runs on web3 8 and eth-account 0.14, "
        "so it runs in an environment of its own, `.venv-oracle` (tests/oracle, made by "
        "`scripts/bootstrap.sh --dev`); its rows are timed inside that process, so the pipe "
        "to it is never part of a figure.",
    ]
    if load is not None:
        servers = load["servers"]
        md += [
            "",
            "## Login load (`login_load.py`)",
            "",
            f"Complete SIWE logins (nonce + sign + verify), {load['connections']} keep-alive "
            f"connections, {load['wallets']:,} wallets each with its own client address, "
            f"{load['rounds']} interleaved rounds of {load['duration_s']:g} s per server "
            "(medians; each ratio is the median of the per-round ratios), "
            f"{load['workers']} uvicorn worker(s) per server, server and load generator "
            "pinned to separate cores, one real Redis. Server CPU is read from /proc for "
            "all the server's processes.",
            "",
            "| server | logins/s | p50 ms | p99 ms | errors | server CPU ms / login |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, r in servers.items():
            md.append(f"| {name} | {r['logins_per_s']:.0f} | {r['p50_ms']:.1f} | "
                      f"{r['p99_ms']:.1f} | {r['errors']} | {r['cpu_ms_per_login']:.3f} |")
        ours = servers.get("did-auth", {})
        if "rss_after_total" in ours:
            md += [
                "",
                f"did-auth RSS (all its processes): {ours['rss_after_warmup'] / 2**20:.1f} MiB "
                f"after {ours['warmup_logins']:,} logins, "
                f"{ours['rss_after_total'] / 2**20:.1f} MiB after {ours['total_logins']:,} "
                f"logins on the same server ({ours['total_seconds']:.0f} s).",
            ]
        md += [
            "",
            "- did-auth: all checks on and default rate limits (per IP, per subject, "
            "outstanding nonces), audit log, metrics; Redis single node.",
            "- baseline (`baseline_server.py`): FastAPI + `siwe` (`signinwithethereum`) "
            "`SiweMessage.from_message()` / `verify()` + PyJWT + redis-py nonce store; it runs "
            "on `.venv-oracle` (signinwithethereum pins web3 7 and eth-account 0.13; "
            "tests/oracle/requirements.txt), with the same FastAPI, uvicorn and redis-py "
            "ranges as did-auth.",
            "- ceiling (`ceiling_server.py`): the baseline's HTTP, Redis and JWT work (nonce "
            "SET, GETDEL, refresh record, ES256 token) with no SIWE parsing and no signature "
            "check.",
        ]
    md += sections or []
    md += ["", "## Run time", ""]
    md += [f"- {name}: {secs:.0f} s" for name, secs in timings.items()]
    md.append(f"- total: {sum(timings.values()):.0f} s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(md) + "\n")


def parse_hsm_login(out: str) -> tuple[list[Row], list[str]]:
    """hsm_login.py: server CPU per login with the pkcs11 backend (SoftHSM2) / sealed."""
    m = re.search(r"pkcs11 / sealed: ([\d.]+)x \(target <= ([\d.]+)x\)", out)
    if not m:
        return [], []
    v, t = float(m[1]), float(m[2])
    rows = [_row("hsm_login", "server CPU per login: [signing] pkcs11 (SoftHSM2) / sealed",
                 v, "x", f"<= {t:g}x", v <= t)]
    section = ["", "## HSM signing (`hsm_login.py`)", "",
               "Two did-auth servers differing only in `[signing]`, one Redis, complete SIWE "
               "logins from login_load.py's generator in interleaved rounds (medians):", "",
               "| backend | logins/s | p50 ms | p99 ms | errors | server CPU ms / login |",
               "| --- | ---: | ---: | ---: | ---: | ---: |"]
    pat = re.compile(r"^(sealed|pkcs11)\s+([\d.]+) logins/s\s+p50 ([\d.]+) ms\s+p99 ([\d.]+) ms"
                     r"\s+errors (\d+)\s+([\d.]+) ms server CPU per login", re.M)
    for name, rate, p50, p99, errors, cpu in pat.findall(out):
        section.append(f"| {name} | {float(rate):.0f} | {p50} | {p99} | {errors} | {cpu} |")
    section += ["", "pkcs11 signs each access token in the token (CKM_ECDSA through "
                "python-pkcs11); sealed signs in process. See docs/keys.md."]
    return rows, section


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    args = p.parse_args()
    quick = args.quick
    rows: list[Row] = []
    timings: dict[str, float] = {}

    out, t = run("siwe_verify.py", ["--repeats", "3", "--target-ms", "50"] if quick else [])
    rows += parse_siwe(out)
    timings["siwe_verify.py"] = t
    out, t = run("verify_token.py", ["--n", "300", "--warm", "3000", "--rounds", "2"]
                 if quick else [])
    rows += parse_verify_token(out)
    timings["verify_token.py"] = t
    out, t = run("contract_wallet_login.py", ["--ops", "30", "--repeats", "2"] if quick else [])
    rows += parse_contract_wallet(out)
    timings["contract_wallet_login.py"] = t
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "login_load.json"
        load_args = ["--json", str(result)]
        if quick:
            load_args += ["--rounds", "2", "--duration", "3", "--warmup", "300",
                          "--memory-logins", "5000"]
        out, t = run("login_load.py", load_args)
        load_rows, load = parse_login_load(result)
    rows += load_rows
    timings["login_load.py"] = t
    sections: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "gateway.json"
        out, t = run("gateway.py", ["--json", str(result)] + (["--quick"] if quick else []))
        gate_rows, gate_section = parse_gateway(result)
    rows += gate_rows
    sections += gate_section
    timings["gateway.py"] = t
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "withdrawal.json"
        wd_args = ["--json", str(result)]
        if quick:
            wd_args += ["--rounds", "2", "--per-round", "40", "--warmup", "10"]
        out, t = run("withdrawal.py", wd_args)
        wd_rows, wd_section = parse_withdrawal(result)
    rows += wd_rows
    sections += wd_section
    timings["withdrawal.py"] = t
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "revocation_latency.json"
        out, t = run("revocation_latency.py",
                     ["--json", str(result)] + (["--n", "30"] if quick else []))
        rl_rows, rl_section = parse_revocation_latency(result)
    rows += rl_rows
    sections += rl_section
    timings["revocation_latency.py"] = t
    out, t = run("hsm_login.py", ["--rounds", "2", "--duration", "3", "--warmup", "200"]
                 if quick else [])
    hsm_rows, hsm_section = parse_hsm_login(out)
    rows += hsm_rows
    sections += hsm_section
    timings["hsm_login.py"] = t
    write(args.out, rows, load, timings, args, sections)
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
          f" ({len(rows)} ratios, {sum(timings.values()):.0f} s)")
    missed = [r for r in rows if r["ok"] is False]
    for r in missed:
        print(f"MISSED: {r['name']}: {_fmt(r['value'])}x, target {r['target']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
