"""One SIWE login against a live server over HTTP, shared by the tests that need a token."""

from __future__ import annotations

from typing import Any

import httpx

from tests import siwe_text


def siwe_login(base_url: str, client_id: str = "dapp", **extra: Any) -> dict[str, Any]:
    """Log a fresh account in (nonce, EIP-4361 message, EIP-191 signature); the token response."""
    address, key = siwe_text.new_account()
    nonce = httpx.post(base_url + "/siwe/nonce", json={"client_id": client_id}).json()["nonce"]
    text = siwe_text.message(address, nonce)
    body = {"client_id": client_id, "message": text, "signature": siwe_text.sign(text, key)}
    r = httpx.post(base_url + "/siwe/verify", json={**body, **extra})
    assert r.status_code == 200, r.text
    tokens: dict[str, Any] = r.json()
    return tokens


def access_token(base_url: str, client_id: str = "dapp") -> str:
    return str(siwe_login(base_url, client_id)["access_token"])
