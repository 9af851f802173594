"""Development (no config) and production (a config file) are distinct: the embedded chain
only where written, /metrics not open on the main listener, the issuer required off
loopback and followed on it, relative paths next to the config file, secrets from files or
the environment, and a CLI that states its version and defaults."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import tomli_w

from did_auth.cli import _parser
from did_auth.config.settings import load_settings
from did_auth.core.errors import ConfigError
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import config_dict, running_app, settings_for, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-token-0123456789abcdef"


def test_no_config_is_the_development_profile() -> None:
    s = load_settings(None, environ={})
    assert s.embedded and [(c.chain_id, c.rpc_url) for c in s.chains] == [(31337, "embedded")]
    assert s.demo_client is not None and s.metrics_public


def test_a_config_file_is_the_production_profile(tmp_path: Path) -> None:
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text('[[chains]]\nchain_id = 31337\nrpc_url = "embedded"\n')
    s = load_settings(cfg, environ={})
    assert not s.metrics_public and s.demo_client is None and s.metrics_listen is None
    cfg.write_text("[[chains]]\nchain_id = 1\n")  # chain 1 never silently becomes a test chain
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert exc.value.problems[0].startswith("chains.0.rpc_url: required")


async def test_metrics_not_on_the_main_listener_of_a_config() -> None:
    async with running_app(settings_for()) as (c, _):
        r = await c.get("/metrics")
        assert r.status_code == 404
        assert "didauth_" not in r.text


async def test_metrics_behind_a_bearer_token(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text(TOKEN + "\n")
    for settings in (settings_for(metrics_token=TOKEN),
                     settings_for(metrics_token_file=str(token_file))):
        assert settings.metrics_token == TOKEN
        async with running_app(settings) as (c, _):
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                            {"Authorization": f"Basic {TOKEN}"}):
                r = await c.get("/metrics", headers=headers)
                assert r.status_code == 401, r.text
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert "didauth_" not in r.text
            r = await c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200 and "# TYPE didauth_http_requests_total" in r.text


def test_metrics_token_problems(tmp_path: Path) -> None:
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text('metrics_token = "short"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert exc.value.problems == ["metrics_token: must have at least 16 characters"]
    cfg.write_text(f'metrics_token = "{TOKEN}"\nmetrics_token_file = "t"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert exc.value.problems == ["metrics_token: set metrics_token or metrics_token_file, not both"]


def test_metrics_on_their_own_listener() -> None:
    metrics_port = free_port()
    server = start_server(config_dict(metrics_listen=f"127.0.0.1:{metrics_port}"))
    try:
        assert httpx.get(server.url + "/metrics").status_code == 404
        r = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert "# TYPE didauth_http_requests_total counter" in r.text
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/token").status_code == 404
        assert f"metrics:   http://127.0.0.1:{metrics_port}/metrics" in server.output()
    finally:
        stop_server(server)


def test_metrics_listener_per_worker(redis_server: RedisServer, tmp_path: Path) -> None:
    """--workers 2: each worker process exposes its own registry, on port and port+1."""
    metrics_port = free_port()
    server = start_server(
        config_dict(redis_url=redis_server.own_db(12),
                    key_encryption_key_file=str(tmp_path / "kek.bin"),
                    metrics_listen=f"127.0.0.1:{metrics_port}"),
        workers=2,
    )
    try:
        deadline = time.monotonic() + 30
        ports = (metrics_port, metrics_port + 1)
        answered: set[int] = set()
        while answered != set(ports) and time.monotonic() < deadline:
            for port in ports:
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                    if r.status_code == 200 and "didauth_" in r.text:
                        answered.add(port)
                except httpx.HTTPError:
                    time.sleep(0.2)
        assert answered == set(ports), server.output()
    finally:
        stop_server(server)


class Started:
    def __init__(self, proc: subprocess.Popen[str], banner: list[str]) -> None:
        self.proc = proc
        self.banner = banner

    def stop(self) -> str:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, err = self.proc.communicate()
        return err


def start(args: list[str], cwd: Path) -> Started:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "did_auth", "serve", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    banner: list[str] = []
    while not any(line.startswith("  discovery:") for line in banner):
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"exited: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}")
        banner.append(line.rstrip("\n"))
    return Started(proc, banner)


def discovery_issuer(port: int) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration")
            return str(r.json()["issuer"])
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_issuer_follows_the_port_without_an_issuer_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text(tomli_w.dumps({k: v for k, v in config_dict().items() if k != "issuer"}))
    s = start(["--config", str(cfg), "--port", str(port)], tmp_path)
    try:
        assert f"  listening: http://127.0.0.1:{port}" in s.banner
        assert f"  issuer:    http://127.0.0.1:{port}" in s.banner
        assert discovery_issuer(port) == f"http://127.0.0.1:{port}"
    finally:
        err = s.stop()
    assert "warning" not in err


def test_embedded_defaults_follow_the_port(tmp_path: Path) -> None:
    port = free_port()
    s = start(["--port", str(port)], tmp_path)
    try:
        assert s.proc.stdout is not None
        s.banner.append(s.proc.stdout.readline().rstrip("\n"))
        assert f"  issuer:    http://127.0.0.1:{port}" in s.banner
        assert f"  demo page: http://127.0.0.1:{port}/demo/" in s.banner
        assert discovery_issuer(port) == f"http://127.0.0.1:{port}"
    finally:
        s.stop()
    assert not list(tmp_path.iterdir())  # no kek.bin: the embedded KEK is ephemeral


def test_a_configured_issuer_that_is_not_the_listen_address_is_warned_about(
    tmp_path: Path,
) -> None:
    port = free_port()
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text(tomli_w.dumps(config_dict(issuer="http://127.0.0.1:8000")))
    s = start(["--config", str(cfg), "--port", str(port)], tmp_path)
    try:
        assert f"  listening: http://127.0.0.1:{port}" in s.banner
        assert "  issuer:    http://127.0.0.1:8000" in s.banner
        assert discovery_issuer(port) == "http://127.0.0.1:8000"  # configured: kept
    finally:
        err = s.stop()
    assert (f"did-auth: warning: the issuer http://127.0.0.1:8000 is not the address this "
            f"server listens on (http://127.0.0.1:{port})") in err


def test_relative_paths_are_next_to_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "relayer.key").write_text("0x" + "ab" * 32 + "\n")
    (conf / "metrics.token").write_text(TOKEN)
    cfg = conf / "did-auth.toml"
    cfg.write_text(
        'redis_url = "redis://127.0.0.1:6379/0"\naudit_log = "log/audit.jsonl"\n'
        'metrics_token_file = "metrics.token"\n'
        '[[chains]]\nchain_id = 31337\nrpc_url = "embedded"\n'
        'relayer_private_key_file = "relayer.key"\n'
    )
    (conf / "log").mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    old = Path.cwd()
    os.chdir(elsewhere)
    try:
        s = load_settings(Path("..") / "etc" / "did-auth.toml", environ={})
    finally:
        os.chdir(old)
    assert Path(s.audit_log) == (conf / "log" / "audit.jsonl").absolute()
    # the default KEK of a shared store lives next to the config, not in the working folder
    assert Path(s.key_encryption_key_file or "") == (conf / "kek.bin").absolute()
    assert s.chains[0].relayer_private_key == "0x" + "ab" * 32
    assert s.metrics_token == TOKEN
    assert not (conf / "kek.bin").exists()  # loading never creates it
    assert "ab" * 32 not in repr(s)


def test_relayer_key_file_and_key_are_exclusive(tmp_path: Path) -> None:
    (tmp_path / "relayer.key").write_text("ab" * 32)
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text('[[chains]]\nchain_id = 31337\nrpc_url = "embedded"\n'
                   f'relayer_private_key = "{"cd" * 32}"\nrelayer_private_key_file = "relayer.key"\n')
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert exc.value.problems == [
        "chains.0.relayer_private_key: set relayer_private_key or relayer_private_key_file, "
        "not both"
    ]


def test_version() -> None:
    r = subprocess.run([sys.executable, "-m", "did_auth", "--version"], capture_output=True,
                       text=True, timeout=60)
    from did_auth import __version__

    assert r.returncode == 0 and r.stdout.strip() == f"did-auth {__version__}"


def test_every_option_states_its_default() -> None:
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    seen = 0
    for name, sub in subparsers.choices.items():
        help_text = " ".join(sub.format_help().split())
        for action in sub._actions:
            hidden = action.help == argparse.SUPPRESS  # --private-key: refused, not offered
            if not action.option_strings or hidden or isinstance(action, argparse._HelpAction):
                continue
            seen += 1
            assert action.help is not None, (name, action.dest)
            expanded = " ".join((action.help % {"default": action.default}).split())
            assert "(default:" in expanded or "(required)" in expanded, (name, action.dest)
            assert expanded in help_text, (name, expanded)
    assert seen >= 7
