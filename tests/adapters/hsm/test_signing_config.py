"""`[signing]`: one human line per problem, the PIN never in the file, no KEK file with the
pkcs11 backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from did_auth.config.settings import load_settings
from did_auth.core.errors import ConfigError
from tests.adapters.hsm.conftest import MODULE


def _problems(tmp_path: Path, data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "did-auth.toml"
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ=env or {})
    return exc.value.problems


def test_every_problem_is_one_line_naming_its_key(tmp_path: Path) -> None:
    problems = _problems(tmp_path, {"signing": {"backend": "pkcs11", "pin": "1234",
                                                "module": "/nowhere/lib.so", "alg": "EdDSA"},
                                    "signing_alg": "ES256", "key_encryption_key_file": "k.bin"})
    assert any(p.startswith("signing.pin: the PIN is never written") for p in problems)
    assert "signing.module: /nowhere/lib.so does not exist (is the HSM client installed?)" in problems
    assert 'signing.token_label: required with backend = "pkcs11"' in problems
    assert any(p.startswith("signing: set exactly one of pin_file or pin_env") for p in problems)
    assert any(p.startswith("key_encryption_key_file: not used with signing.backend") for p in problems)
    assert any(p.startswith('signing.backend: "pkcs11" needs redis_url') for p in problems)
    assert "signing.alg: EdDSA differs from signing_alg = ES256: set one of them" in problems
    assert not any("unknown key" in p for p in problems)  # `pin` is named, not "unknown"
    assert all("1234" not in p and "\n" not in p for p in problems)


def test_pin_sources(tmp_path: Path) -> None:
    base = {"redis_url": "redis://127.0.0.1:6379/0",
            "signing": {"backend": "pkcs11", "module": MODULE, "token_label": "t"}}
    unset = {**base, "signing": {**base["signing"], "pin_env": "HSM_PIN_X"}}
    assert _problems(tmp_path, unset) == [
        "signing.pin_env: the environment variable HSM_PIN_X is not set"]
    pin = tmp_path / "pin"
    pin.write_text("246810\n")
    pin.chmod(0o644)
    loose = {**base, "signing": {**base["signing"], "pin_file": "pin"}}  # relative: config's folder
    assert _problems(tmp_path, loose) == [
        f"signing.pin_file: {pin}: permissions 0644 are too open (must be 0600 or stricter)"]
    pin.chmod(0o600)
    path = tmp_path / "did-auth.toml"
    path.write_text(tomli_w.dumps(loose))
    settings = load_settings(path, environ={})
    assert settings.signing.pin_file == str(pin) and settings.key_encryption_key_file is None
    assert settings.key_alg == "ES256" and settings.signing.backend == "pkcs11"


def test_sealed_backend_refuses_pkcs11_keys_and_check_config_prints_lines(tmp_path: Path) -> None:
    path = tmp_path / "did-auth.toml"
    path.write_text(tomli_w.dumps({"signing": {"module": MODULE, "pin_env": "X"}}))
    out = subprocess.run([sys.executable, "-m", "did_auth", "check-config", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == ['signing.module: only with backend = "pkcs11"',
                                       'signing.pin_env: only with backend = "pkcs11"']
