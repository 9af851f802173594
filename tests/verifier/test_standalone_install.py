"""`did-auth-verifier` is its own distribution: `pip install ./verifier` in a fresh venv,
without the server's dependencies, verifies tokens of a live did-auth.

A trading API installs only the verifier (cryptography and the standard library). The venv
made here gets `./verifier` and nothing else; a subprocess of that venv (cwd outside the
checkout, no PYTHONPATH) then checks that the server's dependencies are absent and
verifies an access token issued by a real `did-auth serve` process: accepted as issued,
refused when tampered with (claims, signature's high-s twin, audience), and refused once
revoked at the issuer (the verifier follows the revocation feed by default).
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.fixtures.servers import LiveServer
from tests.live_login import access_token

from .conftest import ROOT

VERIFIER = ROOT / "verifier"
PACKAGE = VERIFIER / "did_auth_verifier"
INSTALL_BUDGET = 60.0  # seconds for venv + pip install ./verifier
# Server dependencies that must not come with the verifier.
SERVER_ONLY = ("did_auth", "fastapi", "starlette", "web3", "redis", "eth_account", "coincurve",
               "jwt", "orjson", "pydantic", "uvicorn", "pyotp", "httpx")
# What `pip install ./verifier` may bring: the package, cryptography and its own dependencies.
ALLOWED_DISTRIBUTIONS = {"did-auth-verifier", "cryptography", "cffi", "pycparser", "pip",
                         "setuptools", "typing-extensions"}

SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys, time, urllib.parse, urllib.request
    from importlib import metadata

    url, token, revoke = sys.argv[1], sys.argv[2], sys.argv[3] == "revoke"
    out = {"absent": [m for m in %(server_only)r if importlib.util.find_spec(m) is None],
           "distributions": sorted(d.metadata["Name"].lower() for d in metadata.distributions())}

    import did_auth_verifier
    from did_auth_verifier import InvalidToken, JWKSCache, TokenVerifier
    from did_auth_verifier.jose import b64url_decode, b64url_encode
    import did_auth_verifier.redis_push  # optional extra: imports without redis
    try:
        import did_auth_verifier.fastapi  # noqa: F401
    except ImportError:
        out["fastapi_extra"] = "absent"
    out["module"] = did_auth_verifier.__file__

    verifier = TokenVerifier(url, "trading-api", JWKSCache.for_issuer(url))
    t = verifier.verify(token, required_scopes=("account:read",))
    out["sub"], out["scopes"] = t.sub, sorted(t.scopes)

    def refused(candidate, audience="trading-api"):
        v = verifier if audience == "trading-api" else TokenVerifier(
            url, audience, JWKSCache.for_issuer(url), follow_revocations=False)
        try:
            v.verify(candidate)
        except InvalidToken as exc:
            return exc.reason
        return None

    head, body, sig = token.split(".")
    claims = json.loads(b64url_decode(body))
    claims["scope"] = claims["scope"] + " wallet:withdraw"
    forged = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    raw = b64url_decode(sig)
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    twin = raw[:32] + (n - int.from_bytes(raw[32:], "big")).to_bytes(32, "big")
    out["tampered_claims"] = refused(f"{head}.{forged}.{sig}")
    out["high_s_twin"] = refused(f"{head}.{body}.{b64url_encode(twin)}")
    out["truncated_signature"] = refused(f"{head}.{body}.{sig[:-4]}")
    out["other_audience"] = refused(token, audience="other-api")

    if revoke:
        data = urllib.parse.urlencode({"token": token, "client_id": "dapp"}).encode()
        with urllib.request.urlopen(url + "/revoke", data=data, timeout=10) as r:
            assert r.status == 200, r.status
        deadline = time.monotonic() + 10
        while (reason := refused(token)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        out["revoked"] = reason
    verifier.close()
    print(json.dumps(out))
    """
)




@pytest.fixture(scope="module")
def verifier_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install ./verifier` (a regular, non-editable install)."""
    base = tmp_path_factory.mktemp("verifier-venv")
    venv = base / "venv"
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = base / "src"
    shutil.copytree(VERIFIER, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=300, cwd=venv,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    took = time.monotonic() - started
    print(f"fresh venv + pip install ./verifier: {took:.1f} s")
    assert took < INSTALL_BUDGET, f"installing the verifier took {took:.0f} s"
    return python


def _run(python: Path, server: LiveServer, token: str, *, revoke: bool) -> dict[str, object]:
    script = SCRIPT % {"server_only": SERVER_ONLY}
    result = subprocess.run(
        [str(python), "-c", script, server.url, token, "revoke" if revoke else "keep"],
        capture_output=True, text=True, timeout=120,
        cwd=python.parent,  # not the checkout: `did_auth` must not be importable from cwd
        env={"PATH": "/usr/bin:/bin", "HOME": str(python.parent)},
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_installed_alone_verifies_live_tokens_and_refuses_tampering(
    verifier_venv: Path, live_server: LiveServer
) -> None:
    token = access_token(live_server.url)
    out = _run(verifier_venv, live_server, token, revoke=True)
    assert out["absent"] == list(SERVER_ONLY), "server dependencies leaked into the venv"
    extra = set(out["distributions"]) - ALLOWED_DISTRIBUTIONS  # type: ignore[arg-type]
    assert not extra, f"pip install ./verifier brought {sorted(extra)}"
    assert "did-auth-verifier" in out["distributions"]  # type: ignore[operator]
    # The installed copy (site-packages of the venv), not the checkout.
    assert str(out["module"]).startswith(str(verifier_venv.parent.parent) + "/lib/")
    assert out["fastapi_extra"] == "absent"
    assert str(out["sub"]).startswith("did:pkh:eip155:")
    assert "account:read" in out["scopes"]  # type: ignore[operator]
    assert out["tampered_claims"] == "signature"
    assert out["high_s_twin"] == "signature"
    assert out["truncated_signature"] is not None
    assert out["other_audience"] is not None
    assert out["revoked"] == "revoked"


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at_top_level) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = set(map(id, tree.body))
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, id(node) in top))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append(("did_auth_verifier", id(node) in top))
    return found


def test_verifier_package_imports_nothing_from_the_server() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 8
    offenders = [
        f"{f.relative_to(ROOT)}: {mod}"
        for f in files
        for mod, _ in _imports(f)
        if mod == "did_auth" or mod.startswith("did_auth.")
    ]
    assert offenders == []


def test_verifier_dependencies_are_cryptography_and_lazy_extras() -> None:
    """Module-level imports: the standard library, cryptography and the package itself;
    the FastAPI extra only in `fastapi.py`, Redis only inside functions."""
    extras = {"fastapi.py": {"fastapi", "starlette"}}
    for f in sorted(PACKAGE.rglob("*.py")):
        allowed = {"cryptography", "did_auth_verifier"} | extras.get(f.name, set())
        for mod, top_level in _imports(f):
            root = mod.split(".")[0]
            if root in sys.stdlib_module_names or root == "__future__":
                continue
            if top_level:
                assert root in allowed, f"{f.name} imports {mod} at module level"
            else:
                assert root in allowed | {"redis"}, f"{f.name} imports {mod}"
    pyproject = (VERIFIER / "pyproject.toml").read_text()
    import tomllib

    project = tomllib.loads(pyproject)["project"]
    assert project["name"] == "did-auth-verifier"
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["cryptography"]
    assert set(project["optional-dependencies"]) == {"fastapi", "redis"}
