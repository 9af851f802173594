"""Config loading (TOML < env) and the CLI's exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from did_auth.cli import main
from did_auth.config.settings import load_settings
from did_auth.core.errors import ConfigError


def test_embedded_defaults() -> None:
    s = load_settings(environ={})
    assert s.embedded and s.client("demo") is not None
    assert s.scope_config("wallet:withdraw").step_up


def test_env_overrides_nested(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('issuer = "https://auth.example"\n[rate_limits]\nnonce_per_ip = "5/m"\n')
    s = load_settings(f, environ={
        "DID_AUTH_ACCESS_TOKEN_TTL": "120",
        "DID_AUTH_RATE_LIMITS__NONCE_PER_IP": "7/s",
        "DID_AUTH_REDIS_URL": "redis://127.0.0.1:1/0",
    })
    assert s.access_token_ttl == 120 and s.rate_limits.nonce_per_ip == "7/s"
    assert s.redis_url == "redis://127.0.0.1:1/0" and s.issuer == "https://auth.example"


def test_every_problem_listed_with_key_path(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(
        'issuer = "ftp://x"\naccess_token_ttl = 99999\nmystery = 1\n'
        '[[clients]]\nclient_id = "a"\ndomains = []\n'
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(f, environ={})
    text = "\n".join(exc.value.problems)
    for path in ("issuer", "access_token_ttl", "mystery: unknown key", "clients.0.domains",
                 "clients.0.uris"):
        assert path in text, text


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('issuer = "http://127.0.0.1:8000"\n')
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("signing_alg = 'RS256'\n")
    assert main(["check-config", str(bad)]) == 1
    assert "signing_alg" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 1
    broken = tmp_path / "broken.toml"
    broken.write_text("= = =")
    assert main(["check-config", str(broken)]) == 1


def test_cli_usage_error_exit_2_and_user_error_no_traceback(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "did_auth", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([sys.executable, "-m", "did_auth", "serve", "--config", str(tmp_path / "nope.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "cannot read" in r.stderr
    r = subprocess.run([sys.executable, "-m", "did_auth", "keys", "list"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 1 and "Traceback" not in r.stderr
