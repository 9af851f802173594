"""The audit trail: JSON lines of a fixed shape, never a secret, appended safely."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from did_auth.adapters.monitoring.audit import AuditEvent, AuditLog, FileSink, Outcome, redact

T0 = 1_790_000_000.25  # 2026-09-21T...Z
HEX = "0123456789abcdef"
JWT = (
    "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsxIn0"
    ".eyJzdWIiOiJkaWQ6cGtoOmVpcDE1NToxOjB4YWJjIiwic2NvcGUiOiJ0cmFkZTp3cml0ZSJ9"
    ".MEUCIQDx3kq8mF0a9e1oZrJ7qVwPqYf3cU2Tn1c0L7y0pD1s4gIgV9a"
)
REFRESH = "rt_" + "Q2hhbmdlZCBvbmNlIGNoYW5nZWQgdHdpY2UgYW5kIHRocmljZQ" * 2
SIGNATURE = "0x" + (HEX * 9)[:130]
LONG_SIG = "0x" + HEX * 40  # an EIP-1271 / EIP-6492 signature
PRIVATE_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
OTP = "492039"
SIWE = "localhost wants you to sign in with your Ethereum account:\n0xabc\n\nNonce: abcdefgh12"
SID = "0x" + "ab" * 32
ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"
SECRETS = (JWT, REFRESH, SIGNATURE, LONG_SIG, PRIVATE_KEY[2:], OTP, "Nonce: abcdefgh12")


def test_line_shape_and_order() -> None:
    audit = AuditLog.memory(clock=lambda: T0)
    rec = audit.emit(
        AuditEvent.LOGIN_SUCCESS,
        Outcome.SUCCESS,
        request_id="req-1",
        client_id="demo",
        subject=f"did:pkh:eip155:1:{ADDRESS}",
        ip="203.0.113.7",
        method="siwe",
        sid=SID,
    )
    lines = audit.sink.lines  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].endswith("\n") and lines[0].count("\n") == 1
    parsed = json.loads(lines[0])
    assert parsed == rec
    assert list(parsed) == [
        "ts", "event", "outcome", "reason", "request_id", "client_id", "subject", "ip",
        "method", "sid",
    ]
    assert parsed["ts"] == "2026-09-21T14:13:20.250Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", parsed["ts"])
    assert parsed["event"] == "login_success" and parsed["outcome"] == "success"
    assert parsed["reason"] is None
    assert parsed["sid"] == SID  # a session id is a public identifier, kept
    assert "redacted" not in parsed
    audit.emit("rate_limited", "denied", reason="verify_per_ip", ip="203.0.113.7")
    assert [r["event"] for r in audit.records] == ["login_success", "rate_limited"]


def test_events_are_enumerated() -> None:
    assert {e.value for e in AuditEvent} >= {
        "login_success", "login_failure", "token_issued", "token_refreshed", "token_revoked",
        "revocation_applied", "rate_limited", "replay_detected", "key_rotated",
        "refresh_reuse", "signature_failure_burst",
    }
    audit = AuditLog.memory()
    with pytest.raises(ValueError):
        audit.emit("login_sucess", "success")
    with pytest.raises(ValueError):
        audit.emit("login_success", "success", ts="forged")


def test_secrets_never_reach_the_output() -> None:
    audit = AuditLog.memory()
    audit.emit(
        AuditEvent.LOGIN_FAILURE,
        Outcome.FAILURE,
        reason="signature_invalid",
        client_id="demo",
        subject=ADDRESS,
        ip="203.0.113.7",
        # secret by name
        signature=SIGNATURE,
        token=JWT,
        access_token=JWT,
        refresh_token=REFRESH,
        otp=OTP,
        message=SIWE,
        proof=JWT,
        private_key=PRIVATE_KEY,
        client_secret="s3cr3t-value",
        # secret by value, under innocent names
        note=JWT,
        detail=f"presented {REFRESH} twice",
        raw=LONG_SIG,
        key_material=PRIVATE_KEY[2:],
        nested={"headers": {"Authorization": f"Bearer {JWT}", "x": JWT, "ok": "fine"}},
        many=[SIGNATURE, "kept", {"password": "hunter2"}],
        tx_hash=SID,
    )
    line = audit.sink.lines[0]  # type: ignore[attr-defined]
    for secret in (*SECRETS, "s3cr3t-value", "hunter2", "Bearer"):
        assert secret not in line, secret
    rec = json.loads(line)
    assert set(rec["redacted"]) >= {
        "signature", "token", "access_token", "refresh_token", "otp", "message", "proof",
        "private_key", "client_secret", "note", "detail", "raw", "key_material",
        "nested.headers.Authorization", "nested.headers.x", "many[0]", "many[2].password",
    }
    assert rec["nested"] == {"headers": {"ok": "fine"}}
    assert rec["many"] == ["kept", {}]
    assert rec["subject"] == ADDRESS and rec["tx_hash"] == SID
    assert rec["reason"] == "signature_invalid"


def test_core_fields_are_redacted_but_kept_present() -> None:
    audit = AuditLog.memory()
    rec = audit.emit("login_failure", "failure", reason=f"bad {JWT}", subject=REFRESH)
    assert rec["reason"] is None and rec["subject"] is None
    assert rec["redacted"] == ["reason", "subject"]
    assert JWT not in audit.sink.lines[0]  # type: ignore[attr-defined]


def test_harmless_values_are_not_mistaken_for_secrets() -> None:
    rec = redact(
        {
            "subject": "did:ethr:0x02" + "ab" * 32,  # compressed public key (66 hex)
            "domain": "app.example.com",
            "version": "1.2.3",
            "address": ADDRESS,
            "sid": SID,
            "token_type": "DPoP",
            "jti": "Xy3_kq8mF0a9e1oZrJ7qVw",
        }
    )
    assert "redacted" not in rec


def test_long_values_are_truncated() -> None:
    rec = AuditLog.memory().emit("login_failure", "failure", user_agent="A" * 5000)
    assert len(rec["user_agent"]) < 1100 and rec["user_agent"].endswith("[truncated]")


def test_file_sink_appends_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text('{"event":"earlier"}\n')
    audit = AuditLog.from_setting(str(path))
    audit.emit("token_issued", "success", client_id="demo", grant="siwe")
    audit.emit("token_refreshed", "success", client_id="demo")
    audit.close()
    again = AuditLog.from_setting(str(path))
    again.emit("token_revoked", "success", client_id="demo")
    again.close()
    lines = path.read_text().splitlines()
    assert [json.loads(x)["event"] for x in lines] == [
        "earlier", "token_issued", "token_refreshed", "token_revoked",
    ]
    fresh = tmp_path / "new.jsonl"
    FileSink(fresh).close()
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o600


def test_file_sink_is_safe_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    code = (
        "import sys\n"
        "from did_auth.adapters.monitoring.audit import AuditLog\n"
        "a = AuditLog.from_setting(sys.argv[1])\n"
        "for i in range(300):\n"
        "    a.emit('rate_limited', 'denied', reason='verify_per_ip', worker=sys.argv[2],"
        " i=i, pad='x' * 200)\n"
        "a.close()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path), str(w)], cwd=os.getcwd())
        for w in range(4)
    ]
    assert all(p.wait(60) == 0 for p in procs)
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(records) == 1200
    for w in range(4):
        assert sorted(r["i"] for r in records if r["worker"] == str(w)) == list(range(300))


def test_stdout_sink(capsys: pytest.CaptureFixture[str]) -> None:
    audit = AuditLog.from_setting("stdout")
    audit.emit("key_rotated", "success", kid="k2", signature=SIGNATURE)
    out = capsys.readouterr().out
    rec = json.loads(out)
    assert rec["event"] == "key_rotated" and rec["kid"] == "k2"
    assert SIGNATURE not in out


def test_a_failing_sink_does_not_fail_the_request(tmp_path: Path) -> None:
    audit = AuditLog.from_setting(str(tmp_path / "a.jsonl"))
    audit.close()
    rec = audit.emit("login_success", "success")
    assert rec["event"] == "login_success" and audit.write_errors == 1
