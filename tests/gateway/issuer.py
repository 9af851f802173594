"""A stand-in issuer for gate tests that need tokens no real did-auth would sign (a scope
without its second factor, odd claims) or a revocation feed that stops answering: the JWKS
and `GET /revocations` of one ES256 key, on a loopback port, in a thread."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from did_auth_verifier.jose import public_jwk, sign_jws


class StubIssuer:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        alg, jwk = public_jwk(self.key.public_key())
        self.jwks = {"keys": [dict(jwk, kid="k1", alg=alg, use="sig")]}
        self.feed_up = True
        self.revoked: list[dict[str, Any]] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/.well-known/jwks.json":
                    body: Any = issuer.jwks
                elif path == "/revocations" and issuer.feed_up:
                    body = {"revoked": issuer.revoked, "cursor": str(len(issuer.revoked)),
                            "more": False}
                else:  # no event stream here: a verifier polls
                    self.send_error(503 if path == "/revocations" else 404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def token(self, *, audience: str = "trading-api", scope: str = "account:read",
              amr: list[str] | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.url, "aud": audience, "sub": "did:pkh:eip155:1:0xabc",
            "client_id": "dapp", "jti": secrets.token_urlsafe(12), "iat": now,
            "exp": now + 300, "scope": scope, "sid": "s-" + secrets.token_hex(4),
            "auth_time": now, "amr": amr if amr is not None else ["siwe"],
        }
        payload.update(claims)
        return sign_jws(self.key, {"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, payload)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
