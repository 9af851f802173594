"""`did_auth.verifier` must import and work without the server's dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .conftest import ROOT

BLOCKED = (
    "web3",
    "redis",
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "eth_account",
    "coincurve",
    "httpx",
    "pyotp",
)

SCRIPT = textwrap.dedent(
    """
    import sys

    BLOCKED = {blocked!r}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked import of {{name}}")
            return None

    sys.meta_path.insert(0, Blocker())

    import did_auth.verifier as verifier
    from cryptography.hazmat.primitives.asymmetric import ec
    from did_auth.core.clock import FixedClock
    from did_auth.verifier._jose import public_jwk, sign_jws

    assert set(verifier.__all__) >= {{"TokenVerifier", "VerifiedToken", "JWKSCache",
                                      "DPoPVerifier", "InvalidToken"}}
    key = ec.generate_private_key(ec.SECP256R1())
    alg, jwk = public_jwk(key.public_key())
    clock = FixedClock(1_700_000_000)
    jwks = verifier.JWKSCache(
        "https://as.example/.well-known/jwks.json",
        fetch=lambda url: {{"keys": [dict(jwk, kid="k", alg=alg)]}},
        clock=clock,
    )
    v = verifier.TokenVerifier(
        "https://as.example", "api", jwks, clock=clock, revocations=verifier.RevocationSet()
    )
    claims = {{"iss": "https://as.example", "aud": "api", "sub": "s", "client_id": "c",
               "jti": "j", "iat": 1_700_000_000, "exp": 1_700_000_300, "scope": "a"}}
    token = sign_jws(key, {{"alg": alg, "typ": "at+jwt", "kid": "k"}}, claims)
    assert v.verify(token, required_scopes=("a",)).sub == "s"

    try:
        import did_auth.verifier.fastapi  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("the blocker did not block fastapi")
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    print("ok")
    """
)


def test_verifier_imports_without_server_dependencies():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=BLOCKED)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
