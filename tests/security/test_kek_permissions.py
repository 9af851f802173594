"""A key-encryption key file that group or others can read (or write) is refused at start-up
with one line, the way ssh refuses a private key with "permissions 0644 are too open":
whoever reads the KEK can unseal every signing key in Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from did_auth.core.errors import ConfigError
from did_auth.core.tokens.kek import load_kek
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import config_dict


def _kek(path: Path, mode: int) -> Path:
    path.write_bytes(os.urandom(32))
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o700 | 0o004])
def test_loose_kek_file_refused(tmp_path: Path, mode: int) -> None:
    path = _kek(tmp_path / "kek.bin", mode)
    with pytest.raises(ConfigError) as err:
        load_kek(file=str(path), b64=None, create_default=None)
    (problem,) = err.value.problems
    assert problem == (
        f"key_encryption_key_file {path}: permissions {mode:04o} are too open "
        "(must be 0600 or stricter)"
    )


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_kek_file_accepted(tmp_path: Path, mode: int) -> None:
    path = _kek(tmp_path / "kek.bin", mode)
    assert load_kek(file=str(path), b64=None, create_default=None) == path.read_bytes()


def test_created_kek_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "kek.bin"
    load_kek(file=str(path), b64=None, create_default=None)
    assert path.stat().st_mode & 0o777 == 0o600


def _serve(workdir: Path, config: dict[str, object], workers: int) -> subprocess.CompletedProcess[str]:
    cfg = workdir / "did-auth.toml"
    cfg.write_text(tomli_w.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    cmd = [sys.executable, "-m", "did_auth", "serve", "--config", str(cfg)]
    cmd += ["--port", str(free_port()), "--workers", str(workers)]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_refuses_world_readable_kek(
    tmp_path: Path, redis_server: RedisServer, workers: int
) -> None:
    _kek(tmp_path / "kek.bin", 0o644)
    config = config_dict(redis_url=redis_server.url, key_encryption_key_file="kek.bin")
    done = _serve(tmp_path, config, workers)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    # the relative path is the config file's folder's (named absolute in the message)
    assert lines == [
        f"did-auth: invalid configuration: key_encryption_key_file: {tmp_path / 'kek.bin'}: "
        "permissions 0644 are too open (must be 0600 or stricter)"
    ], done.stderr


def test_serve_embedded_refuses_group_readable_kek(tmp_path: Path) -> None:
    _kek(tmp_path / "kek.bin", 0o640)
    done = _serve(tmp_path, config_dict(key_encryption_key_file="kek.bin"), 1)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"did-auth: invalid configuration: key_encryption_key_file: {tmp_path / 'kek.bin'}: "
        "permissions 0640 are too open (must be 0600 or stricter)"
    ], done.stderr
