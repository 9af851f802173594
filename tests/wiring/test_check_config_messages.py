"""`check-config` / load_settings: every value validated, one human line per problem naming
the key (and the DID_AUTH_* variable for an environment override), never pydantic's
"Value error," prefix or a regular expression."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from did_auth.config.settings import load_settings
from did_auth.core.errors import ConfigError

CLIENT = """
[[clients]]
client_id = "app"
domains = ["app.example.com"]
uris = [{uri}]
chain_ids = [1]
audiences = ["api"]
scopes = ["read"]
"""
GOOD_HASH = "sha256:" + hashlib.sha256(b"s").hexdigest()


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ=env or {})
    for line in exc.value.problems:
        assert not line.startswith("Value error"), line
        assert "Value error," not in line and "should match pattern" not in line, line
        assert "\n" not in line, line
    return exc.value.problems


def one(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    found = problems(tmp_path, text, env)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[chains]]\nchain_id = 1\nrpc_url = "not a url"\n',
         "chains.0.rpc_url: 'not a url' is not an absolute URL: use http://, https://, ws://, "
         'wss:// (or "embedded" for an in-process development chain)'),
        ('[[chains]]\nchain_id = 1\nrpc_url = "ftp://node.example"\n',
         "chains.0.rpc_url: 'ftp://node.example': scheme ftp:// is not one of"),
        ('[[chains]]\nchain_id = 1\nrpc_url = "https://"\n',
         "chains.0.rpc_url: 'https://' has no host"),
        ('redis_url = "http://127.0.0.1:6379"\n',
         "redis_url: 'http://127.0.0.1:6379': scheme http:// is not one of redis://, rediss://, "
         "redis+cluster://"),
        ('redis_url = "localhost:6379"\n', "redis_url: 'localhost:6379' is not an absolute URL"),
        ('redis_url = "redis://127.0.0.1:6379/x"\n',
         "redis_url: 'redis://127.0.0.1:6379/x': the path must be a database number"),
        ('issuer = "auth.example.com"\n', "issuer: 'auth.example.com' is not an absolute URL"),
        ('issuer = "https://auth.example.com/"\n',
         "issuer: 'https://auth.example.com/' must not end with a slash"),
        ('issuer = "https://auth.example.com?x=1"\n',
         "issuer: 'https://auth.example.com?x=1' must not have a query or fragment"),
        (CLIENT.format(uri='"app.example.com"'),
         "clients.0.uris: 'app.example.com' is not an absolute URL: use https://, http://"),
        (CLIENT.format(uri='"https://app.example.com"') + 'redirect_uris = ["app.example.com/cb"]\n',
         "clients.0.redirect_uris: redirect_uri 'app.example.com/cb': must be an absolute http(s)"),
        (CLIENT.format(uri='"https://app.example.com"') + 'client_secret_hash = "..."\n',
         "clients.0.client_secret_hash: must be sha256:<64 lowercase hex digits>"),
        ('[[resource_servers]]\nname = "rs"\nsecret_hash = "sha256:ABCD"\n',
         "resource_servers.0.secret_hash: must be sha256:<64 lowercase hex digits>"),
        ('[rate_limits]\nnonce_per_ip = "60 per minute"\n',
         "rate_limits.nonce_per_ip: use a count and a unit, e.g. 60/m"),
        ('key_encryption_key = "AAAAAAA="\n',
         "key_encryption_key: decodes to 5 bytes; a key-encryption key is exactly 32 bytes"),
        ('key_encryption_key = "not base64!"\n', "key_encryption_key: not valid base64"),
        ('acces_token_ttl = 60\n', "acces_token_ttl: unknown key; did you mean 'access_token_ttl'?"),
        ('[rate_limits]\nnonce_per_iq = "1/s"\n',
         "rate_limits.nonce_per_iq: unknown key; did you mean 'nonce_per_ip'?"),
        ('[[chains]]\nchain_id = 1\nrpc_url = "embedded"\nconfirmation = 2\n',
         "chains.0.confirmation: unknown key; did you mean 'confirmations'?"),
        ('signing_alg = "RS256"\n', "signing_alg: must be 'ES256' or 'EdDSA'"),
        ('[[chains]]\nchain_id = 1\n',
         'chains.0.rpc_url: required: the chain\'s JSON-RPC URL (http(s):// or ws(s)://), or '
         '"embedded"'),
        ('metrics_listen = "9100"\n', "metrics_listen: '9100' is not host:port"),
    ],
)
def test_one_human_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    line = one(tmp_path, text)
    assert line.startswith(expected), line


def test_the_secret_values_are_never_echoed(tmp_path: Path) -> None:
    secret = "c2VjcmV0LWtleS1tYXRlcmlhbA=="  # base64 of 19 bytes
    line = one(tmp_path, f'key_encryption_key = "{secret}"\n')
    assert secret not in line and "19 bytes" in line
    line = one(tmp_path, '[[chains]]\nchain_id = 1\nrpc_url = "embedded"\n'
               'relayer_private_key = "0xdeadbeefcafe"\n')
    assert "deadbeef" not in line and line.startswith("chains.0.relayer_private_key: must be")


def test_valid_values_pass(tmp_path: Path) -> None:
    kek = base64.b64encode(os.urandom(32)).decode()
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text(
        'issuer = "https://auth.example.com"\n'
        'redis_url = "rediss://:pw@redis.internal:6380/2"\n'
        f'key_encryption_key = "{kek}"\n'
        '[rate_limits]\nnonce_per_ip = "5/s"\n'
        '[[chains]]\nchain_id = 1\nrpc_url = "wss://node.example/v3/key"\n'
        '[[chains]]\nchain_id = 31337\nrpc_url = "embedded"\nrevocation_registry_for = [1]\n'
        + CLIENT.format(uri='"https://app.example.com", "http://localhost:3000"')
        + f'client_secret_hash = "{GOOD_HASH}"\nredirect_uris = ["https://app.example.com/cb"]\n'
        f'[[resource_servers]]\nname = "rs"\nsecret_hash = "{GOOD_HASH}"\n'
    )
    s = load_settings(cfg, environ={})
    assert s.chain(1).rpc_url == "wss://node.example/v3/key"  # type: ignore[union-attr]
    cluster = tmp_path / "cluster.toml"
    cluster.write_text('redis_url = "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"\n'
                       f'key_encryption_key = "{kek}"\n')
    assert load_settings(cluster, environ={}).redis_url.startswith("redis+cluster://")  # type: ignore[union-attr]
    cluster.write_text(f'redis_url = "unix:///run/redis/redis.sock?db=2"\nkey_encryption_key = "{kek}"\n')
    assert load_settings(cluster, environ={}).redis_url == "unix:///run/redis/redis.sock?db=2"


def test_environment_overrides_name_the_variable(tmp_path: Path) -> None:
    found = problems(tmp_path, 'issuer = "https://auth.example.com"\n', {
        "DID_AUTH_REDIS_URL": "mysql://db",
        "DID_AUTH_RATE_LIMITS__VERIFY_PER_IP": "lots",
        "DID_AUTH_ACCESS_TOKEN_TTLL": "5",
    })
    text = "\n".join(found)
    assert "redis_url (from DID_AUTH_REDIS_URL): 'mysql://db': scheme mysql:// is not one of" in text
    assert ("rate_limits.verify_per_ip (from DID_AUTH_RATE_LIMITS__VERIFY_PER_IP): use a count "
            "and a unit, e.g. 60/m") in text
    assert ("access_token_ttll (from DID_AUTH_ACCESS_TOKEN_TTLL): unknown key; did you mean "
            "'access_token_ttl'?") in text


def test_environment_overrides_a_list_entry(tmp_path: Path) -> None:
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text('[[chains]]\nchain_id = 1\nrpc_url = "https://a.example"\n')
    key = "ab" * 32
    s = load_settings(cfg, environ={"DID_AUTH_CHAINS__0__RELAYER_PRIVATE_KEY": key,
                                    "DID_AUTH_CHAINS__0__RPC_URL": "https://b.example"})
    assert s.chains[0].relayer_private_key == key and s.chains[0].rpc_url == "https://b.example"
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={"DID_AUTH_CHAINS__3__RPC_URL": "https://b.example"})
    assert exc.value.problems == ["chains.3: there is no such entry to override (1 in chains)"]


def test_kek_file_length_checked_without_creating(tmp_path: Path) -> None:
    short = tmp_path / "short.bin"
    short.write_bytes(b"12345")
    short.chmod(0o600)
    line = one(tmp_path, 'redis_url = "redis://127.0.0.1:6379/0"\n'
               'key_encryption_key_file = "short.bin"\n')
    assert line == (f"key_encryption_key_file: {short} holds 5 bytes; a key-encryption key file "
                    "holds exactly 32")
    line = one(tmp_path, 'redis_url = "redis://127.0.0.1:6379/0"\n'
               'key_encryption_key_file = "no-such-folder/kek.bin"\n')
    assert line.startswith("key_encryption_key_file: ") and "does not exist" in line
    assert not (tmp_path / "no-such-folder").exists() and not (tmp_path / "kek.bin").exists()


def test_all_problems_at_once_through_the_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text(
        'issuer = "auth.example.com"\nredis_url = "http://x"\nkey_encryption_key = "AAAAAAA="\n'
        'mystery = 1\n[rate_limits]\nnonce_per_ip = "60 per minute"\n'
        '[[chains]]\nchain_id = 1\n[[chains]]\nchain_id = 2\nrpc_url = "not a url"\n'
        + CLIENT.format(uri='"app.example.com"') + 'client_secret_hash = "..."\n'
    )
    r = subprocess.run([sys.executable, "-m", "did_auth", "check-config", str(cfg)],
                       capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    keys = [ln.split(":", 1)[0] for ln in lines]
    assert keys == [
        "issuer", "redis_url", "key_encryption_key", "chains.0.rpc_url", "chains.1.rpc_url",
        "clients.0.uris", "clients.0.client_secret_hash", "rate_limits.nonce_per_ip", "mystery",
    ], lines
    assert not any(ln.startswith("Value error") for ln in lines)


def test_ok_notes_a_missing_issuer(tmp_path: Path) -> None:
    cfg = tmp_path / "did-auth.toml"
    cfg.write_text("access_token_ttl = 60\n")
    r = subprocess.run([sys.executable, "-m", "did_auth", "check-config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.splitlines() == [
        f"{cfg}: ok",
        "note: issuer is not set: serve uses http://HOST:PORT on a loopback --host and refuses "
        "any other (set issuer to the https:// URL clients use)",
    ]
