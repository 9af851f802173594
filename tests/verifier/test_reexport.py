"""`did_auth.verifier` (the name interface.md promises) is the `did-auth-verifier`
distribution under its old name: the same module objects, not copies."""

from __future__ import annotations

import importlib
import subprocess
import sys

import did_auth_verifier as new
import pytest

import did_auth.verifier as old

from .conftest import ROOT

SUBMODULES = ("dpop", "errors", "jwks", "revocations", "tokens", "redis_push", "fastapi", "_http")


def test_package_exports_the_same_objects():
    assert set(new.__all__) <= set(old.__all__)
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name
    assert old.DidAuthError is new.VerifierError


@pytest.mark.parametrize("name", SUBMODULES)
def test_submodules_are_the_same_module(name: str):
    assert importlib.import_module(f"did_auth.verifier.{name}") is importlib.import_module(
        f"did_auth_verifier.{name}"
    )


def test_old_private_jose_name_is_the_jose_module():
    from did_auth_verifier import jose

    from did_auth.verifier._jose import PRIVATE_JWK_MEMBERS, sign_jws

    assert importlib.import_module("did_auth.verifier._jose") is jose
    assert sign_jws is jose.sign_jws and PRIVATE_JWK_MEMBERS is jose.PRIVATE_JWK_MEMBERS


def test_server_code_imports_the_distribution_not_the_alias():
    """The server depends on `did_auth_verifier`; `did_auth.verifier` is only for users."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "did_auth").rglob("*.py")
        if "verifier" not in path.parts
        and ("from did_auth.verifier" in path.read_text() or "import did_auth.verifier" in path.read_text())
    ]
    assert offenders == []


def test_importing_the_alias_does_not_import_fastapi_or_redis():
    code = (
        "import sys, did_auth.verifier, did_auth.verifier.tokens, did_auth.verifier.dpop; "
        "assert not {'fastapi', 'starlette', 'redis'} & set(sys.modules), sorted(sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
