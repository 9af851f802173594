"""`did-auth serve` with a broken configuration or environment: one line on stderr, exit 1,
never a traceback, and no file (kek.bin, audit log) left behind by a start that refused."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.fixtures.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def serve(cfg: Path | None, *args: str, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "did_auth", "serve", *args]
    if cfg is not None:
        cmd += ["--config", str(cfg)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=full_env,
                          cwd=cwd or (cfg.parent if cfg else ROOT))


def assert_one_line(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("did-auth: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    before = set(tmp_path.iterdir())
    yield tmp_path
    # A start that refused created nothing next to its config (no kek.bin, no audit log).
    created = {p.name for p in set(tmp_path.iterdir()) - before} - {"did-auth.toml", "short.bin"}
    assert not created, created


def write(folder: Path, text: str) -> Path:
    cfg = folder / "did-auth.toml"
    cfg.write_text('issuer = "http://127.0.0.1:8000"\naudit_log = "audit.jsonl"\n' + text)
    return cfg


# Port 1 is privileged and unused: a connection is refused at once.
UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('redis_url = "http://127.0.0.1:6379"\n', ["redis_url: 'http://127.0.0.1:6379': scheme"]),
        (f'redis_url = "{UNREACHABLE}"\n',
         [f"cannot reach Redis at {UNREACHABLE} (Connection refused)"]),
        ('[[chains]]\nchain_id = 1\nrpc_url = "not a url"\n', ["chains.0.rpc_url:"]),
        ('[[chains]]\nchain_id = 1\n', ["chains.0.rpc_url: required"]),
        (f'redis_url = "{UNREACHABLE}"\nkey_encryption_key = '
         f'"{base64.b64encode(b"12345").decode()}"\n',
         ["key_encryption_key: decodes to 5 bytes"]),
        ("issuer = = \n", ["invalid TOML"]),
        ("acces_token_ttl = 60\n", ["did you mean 'access_token_ttl'?"]),
        ('audit_log = "missing-folder/audit.jsonl"\n', ["audit_log: folder", "does not exist"]),
        ('[[chains]]\nchain_id = 1\nrpc_url = "embedded"\n'
         'relayer_private_key_file = "relayer.key"\n',
         ["chains.0.relayer_private_key_file:", "relayer.key: cannot read"]),
        ('[rate_limits]\nverify_per_ip = "ten a minute"\n',
         ["rate_limits.verify_per_ip: use a count and a unit, e.g. 60/m"]),
    ],
)
def test_broken_config_one_line_exit_1(folder: Path, text: str, needles: list[str]) -> None:
    # The issuer/audit_log preamble is replaced where a case redefines a key.
    cfg = folder / "did-auth.toml"
    head = 'issuer = "http://127.0.0.1:8000"\n' if "issuer" not in text else ""
    cfg.write_text(head + text)
    assert_one_line(serve(cfg, "--port", str(free_port())), *needles)


def test_kek_file_of_the_wrong_length(folder: Path) -> None:
    kek = folder / "short.bin"
    kek.write_bytes(b"x" * 16)
    kek.chmod(0o600)
    cfg = write(folder, f'redis_url = "{UNREACHABLE}"\nkey_encryption_key_file = "short.bin"\n')
    assert_one_line(serve(cfg), f"{kek} holds 16 bytes")


def test_unreadable_config_file(folder: Path) -> None:
    assert_one_line(serve(folder / "missing.toml"), "missing.toml: cannot read")
    sub = folder / "a-folder.toml"
    sub.mkdir()
    try:
        assert_one_line(serve(sub), "a-folder.toml: cannot read")
    finally:
        sub.rmdir()


def test_port_in_use(folder: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line(serve(write(folder, ""), "--port", str(port)),
                        f"cannot listen on 127.0.0.1:{port}")
        # the embedded defaults too
        assert_one_line(serve(None, "--port", str(port), cwd=folder),
                        f"cannot listen on 127.0.0.1:{port}")
        # and the metrics listener
        cfg = write(folder, f'metrics_listen = "127.0.0.1:{port}"\n')
        assert_one_line(serve(cfg, "--port", str(free_port())),
                        f"metrics_listen: cannot listen on 127.0.0.1:{port}")


def test_issuer_required_off_loopback(folder: Path) -> None:
    cfg = folder / "did-auth.toml"
    cfg.write_text("access_token_ttl = 60\n")
    assert_one_line(serve(cfg, "--host", "0.0.0.0", "--port", str(free_port())),
                    "issuer: required in the config file")


def test_workers_need_a_shared_store(folder: Path) -> None:
    assert_one_line(serve(write(folder, ""), "--workers", "2"), "needs a shared store")


def test_workers_cannot_share_an_embedded_chain(folder: Path) -> None:
    """Each worker process would run an in-process chain of its own under the same chain
    id: a delegate added or a session revoked on one would not exist on the others."""
    cfg = write(folder, f'redis_url = "{UNREACHABLE}"\n'
                        '[[chains]]\nchain_id = 31337\nrpc_url = "embedded"\n')
    assert_one_line(serve(cfg, "--workers", "2"), "embedded", "--workers 1")


def test_kek_that_cannot_open_the_stored_keys(folder: Path, redis_server: RedisServer) -> None:
    url = redis_server.url[:-1] + "9"
    import redis

    redis.Redis.from_url(url).flushdb()
    first = base64.b64encode(os.urandom(32)).decode()
    other = base64.b64encode(os.urandom(32)).decode()
    port = free_port()
    # a first start with one KEK stores the signing keys sealed with it ...
    ok = subprocess.Popen(
        [sys.executable, "-m", "did_auth", "serve", "--port", str(port), "--config",
         str(write(folder, f'redis_url = "{url}"\n'))],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT),
             "DID_AUTH_KEY_ENCRYPTION_KEY": first},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder,
    )
    try:
        assert ok.stdout is not None
        assert "listening:" in "".join(ok.stdout.readline() for _ in range(2))
    finally:
        ok.terminate()
        ok.wait(10)
    (folder / "audit.jsonl").unlink(missing_ok=True)
    # ... a replica with another KEK refuses in one line
    r = serve(folder / "did-auth.toml", "--port", str(free_port()),
              env={"DID_AUTH_KEY_ENCRYPTION_KEY": other})
    assert_one_line(r, "key_encryption_key: cannot decrypt the stored signing keys")
    # ... and one whose KEK file is missing neither creates it nor starts
    r = serve(folder / "did-auth.toml", "--port", str(free_port()))
    assert_one_line(r, f"key_encryption_key_file: {folder / 'kek.bin'} does not exist, but "
                       "Redis already holds signing keys")
    redis.Redis.from_url(url).flushdb()


class _ChainIdHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x7a69"}).encode()  # 31337
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_rpc_url_of_another_chain(folder: Path) -> None:
    """chain 1 configured at a node that serves chain 31337: refused, not run as chain 1."""
    node = ThreadingHTTPServer(("127.0.0.1", 0), _ChainIdHandler)
    threading.Thread(target=node.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{node.server_address[1]}"
        cfg = write(folder, f'[[chains]]\nchain_id = 1\nrpc_url = "{url}"\n')
        assert_one_line(serve(cfg, "--port", str(free_port())),
                        f"chains.0.rpc_url: {url} serves chain id 31337, not 1")
    finally:
        node.shutdown()
        node.server_close()


def test_unreachable_chain_is_a_warning_not_a_refusal(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = write(tmp_path, f'[[chains]]\nchain_id = 1\nrpc_url = "{dead}"\nrpc_timeout = 1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "did_auth", "serve", "--config", str(cfg), "--port",
         str(free_port())],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("did-auth ")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "Traceback" not in err
    assert (f"did-auth: warning: chains.0: cannot reach chain 1 at {dead} (Connection refused); "
            "its logins answer 503 until it does") in err


def test_an_application_that_fails_to_start_says_why_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What uvicorn runs (StartupGuard around the app): an exception in the lifespan startup
    is one line, not Starlette's traceback handed to uvicorn's error log."""
    from contextlib import asynccontextmanager

    import uvicorn
    from fastapi import FastAPI

    from did_auth.core.errors import ConfigError
    from did_auth.edge.api.startup_guard import StartupGuard

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        raise ConfigError(["key_encryption_key: cannot decrypt the stored signing keys"])
        yield

    server = uvicorn.Server(uvicorn.Config(StartupGuard(FastAPI(lifespan=lifespan)),
                                           port=free_port(), lifespan="on", log_config=None))
    with pytest.raises(SystemExit) as exit_:
        server.run()
    assert exit_.value.code == 3 and not server.started  # `serve` turns it into exit 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[0] == (
        "did-auth: cannot start: invalid configuration: key_encryption_key: cannot decrypt "
        "the stored signing keys"
    )


def test_keys_command_never_creates_a_kek(folder: Path) -> None:
    cfg = write(folder, f'redis_url = "{UNREACHABLE}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    r = subprocess.run([sys.executable, "-m", "did_auth", "keys", "list", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, cwd=folder,
                       env={**env, "PYTHONPATH": str(ROOT)})
    assert_one_line(r, f"key_encryption_key_file: {folder / 'kek.bin'} does not exist")
