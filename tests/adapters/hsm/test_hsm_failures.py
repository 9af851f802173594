"""Token failures with `[signing] backend = "pkcs11"`: at start-up one line and exit 1 (no
traceback); at run time 503 `temporarily_unavailable` (never a 500, never a token signed
by anything but the token's key) and /readyz not ready; recovery without a restart when
the token is back. "Unplugged" is simulated by renaming the SoftHSM2 token folder away
(SoftHSM then answers CKR_OBJECT_HANDLE_INVALID / CKR_GENERAL_ERROR, as for a removed
device) and back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import jwt
import tomli_w

from tests import siwe_text
from tests.adapters.hsm.conftest import MODULE, SoftHsm, hsm_config, init_token
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.servers import LiveServer, start_server, stop_server
from tests.waits import wait_until


def _serve_fails(config: dict[str, object], env: dict[str, str], tmp: Path) -> subprocess.Popen[str]:
    path = tmp / f"did-auth-{len(list(tmp.iterdir()))}.toml"
    path.write_text(tomli_w.dumps({**config, "issuer": "http://127.0.0.1:1"}))
    full = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "did_auth", "serve", "--port", "0", "--config", str(path)],
        env={**full, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp,
    )


def _one_line(proc: subprocess.Popen[str]) -> str:
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_start_up_failures_are_one_line(redis_server: RedisServer, tmp_path: Path) -> None:
    hsm = init_token("did-auth-startup")
    url = redis_server.own_db(10)
    cases = {
        "module missing": (hsm_config(url, hsm, signing=hsm.signing(
            module="/usr/lib/nowhere/libpkcs11.so")), hsm.env()),
        "not a PKCS#11 library": (hsm_config(url, hsm, signing=hsm.signing(
            module=_libc())), hsm.env()),
        "token missing": (hsm_config(url, hsm, signing=hsm.signing(token_label="absent")),
                          hsm.env()),
        "wrong PIN": (hsm_config(url, hsm), hsm.env(pin="999999")),
    }
    procs = {name: _serve_fails(cfg, env, tmp_path) for name, (cfg, env) in cases.items()}
    lines = {name: _one_line(proc) for name, proc in procs.items()}
    assert "signing.module" in lines["module missing"] and "does not exist" in lines["module missing"]
    assert "cannot load the PKCS#11 library" in lines["not a PKCS#11 library"]
    assert "no token labelled 'absent'" in lines["token missing"]
    assert "wrong PIN" in lines["wrong PIN"]
    assert "999999" not in "".join(lines.values())  # the PIN is never shown


def _libc() -> str:
    for candidate in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                      "/lib/aarch64-linux-gnu/libc.so.6"):
        if Path(candidate).exists():
            return candidate
    raise AssertionError("no libc.so.6 found to stand for a non-PKCS#11 library")


def _delete_objects(hsm: SoftHsm, label: str) -> None:
    """Delete every object labelled `label` from the token, from another process (this
    one's PKCS#11 library is initialised with the session's token)."""
    code = textwrap.dedent(f"""
        import pkcs11
        from pkcs11 import Attribute
        token = pkcs11.lib({MODULE!r}).get_token(token_label={hsm.label!r})
        with token.open(rw=True, user_pin={hsm.env()['HSM_PIN']!r}) as s:
            for obj in list(s.get_objects({{Attribute.LABEL: {label!r}}})):
                obj.destroy()
    """)
    env = {**os.environ, "SOFTHSM2_CONF": str(hsm.conf)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def _login(server: LiveServer) -> httpx.Response:
    address, key = siwe_text.new_account()
    n = httpx.post(server.url + "/siwe/nonce", json={"client_id": "dapp"}).json()["nonce"]
    text = siwe_text.message(address, n)
    return httpx.post(server.url + "/siwe/verify", json={
        "client_id": "dapp", "message": text, "signature": siwe_text.sign(text, key)}, timeout=10)


def _verifies(server: LiveServer, token: str) -> bool:
    key = jwt.PyJWKClient(server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    jwt.decode(token, key, algorithms=["ES256"], audience="trading-api", issuer=server.url)
    return True


def _keys_cli(server: LiveServer, hsm: SoftHsm, *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DID_AUTH_")}
    return subprocess.run(
        [sys.executable, "-m", "did_auth", "keys", *args,
         "--config", str(server.workdir / "did-auth.toml")],
        cwd=server.workdir, capture_output=True, text=True, timeout=120, env={**full, **hsm.env()},
    )


def test_unplugged_token_deleted_key_503_then_recovery(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    hsm = init_token("did-auth-unplug")
    server = start_server(hsm_config(redis_server.own_db(11), hsm), env=hsm.env(),
                          start_timeout=240)
    try:
        pid = server.proc.pid
        r = _login(server)
        assert r.status_code == 200 and _verifies(server, r.json()["access_token"])
        kid = jwt.get_unverified_header(r.json()["access_token"])["kid"]

        hsm.unplug()
        r = _login(server)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "temporarily_unavailable"
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503 and ready.json()["signing"] == "down"
        hsm.replug()
        wait_until(lambda: httpx.get(server.url + "/readyz").status_code == 200, 20,
                   what="/readyz after the token is back")
        r = _login(server)  # no restart: the worker re-opened its sessions
        assert r.status_code == 200 and server.proc.poll() is None and server.proc.pid == pid
        assert jwt.get_unverified_header(r.json()["access_token"])["kid"] == kid
        assert _verifies(server, r.json()["access_token"])
        assert "signing token unavailable" in server.output()  # the operator's line

        _delete_objects(hsm, kid)  # the signing key is deleted from the token
        r = _login(server)
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"
        assert httpx.get(server.url + "/readyz").json()["signing"] == "down"
        # The documented way out: withdraw the ring, a new key in the token signs now.
        out = _keys_cli(server, hsm, "rotate", "--compromised")
        assert out.returncode == 0, out.stderr
        new_kid = out.stdout.split("new key ")[1].split()[0]
        wait_until(lambda: _login(server).status_code == 200, 30, interval=1,
                   what="logins with the replacement key")
        token = _login(server).json()["access_token"]
        assert jwt.get_unverified_header(token)["kid"] == new_kid and _verifies(server, token)
    finally:
        stop_server(server)
    # Start-up with a key of the ring deleted from the token: one line, exit 1.
    _delete_objects(hsm, new_kid)
    proc = _serve_fails(hsm_config(redis_server.url[:-1] + "11", hsm), hsm.env(), tmp_path)
    line = _one_line(proc)
    assert new_kid in line and "keys rotate --compromised" in line
