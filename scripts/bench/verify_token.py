"""Benchmark: did_auth_verifier.TokenVerifier.verify vs PyJWT jwt.decode + PyJWKClient.

Both verify the same pre-minted RFC 9068 access tokens against the same JWKS, served by a
tiny HTTP server on loopback (each side fetches it once, then works from its cache; the
script prints how many JWKS requests each made so you can see no per-call network I/O).

* cold: N distinct tokens, each verified once (a new token every time; our warm cache
  cannot help);
* warm: the same token verified M times.

Targets: cold ours/pyjwt <= 1.2; warm pyjwt/ours >= 10.

    .venv/bin/python scripts/bench/verify_token.py [--n 2000] [--warm 20000] [--rounds 5]
        [--alg ES256|EdDSA|both] [--check]

`--check` exits 1 when a target is missed (no timing assertions live in the test suite).
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from did_auth_verifier import JWKSCache, TokenVerifier  # noqa: E402
from did_auth_verifier.jose import public_jwk, sign_jws  # noqa: E402

AUDIENCE = "trading-api"
COLD_TARGET = 1.2  # ours / pyjwt must be <= this
WARM_TARGET = 10.0  # pyjwt / ours must be >= this


class JwksServer:
    """Serves {"keys": [...]} at /.well-known/jwks.json on 127.0.0.1 and counts requests."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        body = json.dumps(jwks).encode()
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if self.path != "/.well-known/jwks.json":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.jwks_url = self.issuer + "/.well-known/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def mint_tokens(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
    kid: str,
    alg: str,
    issuer: str,
    count: int,
) -> list[str]:
    now = int(time.time())
    header = {"alg": alg, "typ": "at+jwt", "kid": kid}
    return [
        sign_jws(
            key,
            header,
            {
                "iss": issuer,
                "sub": "did:pkh:eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                "aud": AUDIENCE,
                "exp": now + 3600,
                "iat": now,
                "jti": secrets.token_urlsafe(16),
                "client_id": "demo-dapp",
                "scope": "account:read trade:write",
                "sid": "0x" + secrets.token_hex(32),
                "auth_time": now,
                "amr": ["siwe"],
            },
        )
        for _ in range(count)
    ]


def time_per_op(fn: Callable[[str], object], tokens: list[str]) -> float:
    """Microseconds per call of fn over tokens."""
    gc.collect()
    start = time.perf_counter_ns()
    for token in tokens:
        fn(token)
    return (time.perf_counter_ns() - start) / len(tokens) / 1000


def bench(alg: str, n: int, warm_n: int, rounds: int) -> dict[str, float]:
    if alg == "ES256":
        key: Any = ec.generate_private_key(ec.SECP256R1())
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    kid = f"bench-{alg.lower()}"
    key_alg, jwk = public_jwk(key.public_key())
    assert key_alg == alg
    server = JwksServer({"keys": [{**jwk, "kid": kid, "alg": alg, "use": "sig"}]})
    try:
        issuer = server.issuer
        cold_tokens = mint_tokens(key, kid, alg, issuer, n)
        warm_token = mint_tokens(key, kid, alg, issuer, 1)[0]
        warmup = mint_tokens(key, kid, alg, issuer, 50)

        # -- ours ---------------------------------------------------------------------------
        jwks = JWKSCache(server.jwks_url, ttl=3600)

        def new_verifier() -> TokenVerifier:
            # Signature and claim checks only: no revocation feed in this benchmark.
            return TokenVerifier(
                issuer, AUDIENCE, jwks, verified_cache_size=n + 100, follow_revocations=False
            )

        def ours_with(verifier: TokenVerifier) -> Callable[[str], object]:
            def verify(token: str) -> object:
                return verifier.verify(token, required_scopes=("account:read",))

            return verify

        # -- PyJWT --------------------------------------------------------------------------
        client = jwt.PyJWKClient(server.jwks_url, cache_jwk_set=True, lifespan=3600)
        options: Any = {"require": ["exp", "iat", "iss", "aud", "sub", "jti"]}

        def pyjwt_verify(token: str) -> object:
            signing_key = client.get_signing_key_from_jwt(token)
            return jwt.decode(
                token,
                signing_key.key,
                algorithms=[alg],
                audience=AUDIENCE,
                issuer=issuer,
                leeway=30,
                options=options,
            )

        # Sanity: both accept the same token and agree on its claims.
        ours_sub = new_verifier().verify(warmup[0]).sub
        pyjwt_claims: Any = pyjwt_verify(warmup[0])
        assert ours_sub == pyjwt_claims["sub"]
        for token in warmup:  # warm up interpreter paths on both sides
            ours_with(new_verifier())(token)
            pyjwt_verify(token)
        requests_before = server.requests

        cold_ours, cold_pyjwt, warm_ours, warm_pyjwt = [], [], [], []
        for _ in range(rounds):
            cold_ours.append(time_per_op(ours_with(new_verifier()), cold_tokens))
            cold_pyjwt.append(time_per_op(pyjwt_verify, cold_tokens))
            repeated = [warm_token] * warm_n
            verifier = new_verifier()
            ours_with(verifier)(warm_token)  # first sight: fills the warm cache
            warm_ours.append(time_per_op(ours_with(verifier), repeated))
            warm_pyjwt.append(time_per_op(pyjwt_verify, repeated[: max(1, warm_n // 10)]))
        return {
            "cold_ours": min(cold_ours),
            "cold_pyjwt": min(cold_pyjwt),
            "warm_ours": min(warm_ours),
            "warm_pyjwt": min(warm_pyjwt),
            "jwks_requests_during_timing": server.requests - requests_before,
        }
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="distinct tokens for cold")
    parser.add_argument("--warm", type=int, default=20000, help="repetitions for warm")
    parser.add_argument("--rounds", type=int, default=5, help="best of this many rounds")
    parser.add_argument("--alg", choices=("ES256", "EdDSA", "both"), default="both")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    import cryptography

    print(
        f"python {sys.version.split()[0]}, PyJWT {jwt.__version__}, "
        f"cryptography {cryptography.__version__}; cold n={args.n}, warm n={args.warm}, "
        f"best of {args.rounds}"
    )
    header = (
        f"{'alg':<6} {'mode':<5} {'ours µs/op':>11} {'pyjwt µs/op':>12}  "
        f"{'ratio':<22} {'target':<10} result"
    )
    print(header)
    print("-" * len(header))
    missed = False
    for alg in ("ES256", "EdDSA") if args.alg == "both" else (args.alg,):
        r = bench(alg, args.n, args.warm, args.rounds)
        cold_ratio = r["cold_ours"] / r["cold_pyjwt"]
        warm_ratio = r["warm_pyjwt"] / r["warm_ours"]
        cold_ok = cold_ratio <= COLD_TARGET
        warm_ok = warm_ratio >= WARM_TARGET
        missed |= not (cold_ok and warm_ok)
        print(
            f"{alg:<6} {'cold':<5} {r['cold_ours']:>11.1f} {r['cold_pyjwt']:>12.1f}  "
            f"{'ours/pyjwt = ' + format(cold_ratio, '.2f'):<22} "
            f"{'<= ' + format(COLD_TARGET, '.2f'):<10} {'OK' if cold_ok else 'MISSED'}"
        )
        print(
            f"{alg:<6} {'warm':<5} {r['warm_ours']:>11.2f} {r['warm_pyjwt']:>12.1f}  "
            f"{'pyjwt/ours = ' + format(warm_ratio, '.1f') + 'x':<22} "
            f"{'>= ' + format(WARM_TARGET, '.0f') + 'x':<10} {'OK' if warm_ok else 'MISSED'}"
        )
        print(f"{alg:<6} JWKS requests while timing: {int(r['jwks_requests_during_timing'])}")
    return 1 if (missed and args.check) else 0


if __name__ == "__main__":
    raise SystemExit(main())
