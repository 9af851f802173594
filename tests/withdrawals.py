"""A wallet user approving withdrawals over HTTP, written from the interface (not from
did-auth's code): a SIWE login for did-auth itself, a TOTP enrolment, the transaction
nonce, the EIP-712 typed data signed with eth-account, `POST /transactions/authorize`.

Works on any `httpx.AsyncClient` whose `base_url` is the issuer (in-process ASGI apps and
live servers alike); DPoP proofs name `base_url` + path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyotp
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from eth_account.messages import encode_typed_data

from did_auth.verifier import make_dpop_proof
from tests import siwe_text

CHAIN = 31337
DESTINATION = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def details(**over: str) -> dict[str, str]:
    d = {
        "type": "withdrawal",
        "audience": "trading-api",
        "asset": "USDC",
        "amount": "250.00",
        "destination": DESTINATION,
        "network": "ethereum",
    }
    return {**d, **over}


def typed_data(d: dict[str, str], nonce: str, expires_at: int, chain_id: int) -> dict[str, Any]:
    """The `eth_signTypedData_v4` payload, as the interface defines it."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "Withdrawal": [
                {"name": "audience", "type": "string"},
                {"name": "asset", "type": "string"},
                {"name": "amount", "type": "string"},
                {"name": "destination", "type": "string"},
                {"name": "network", "type": "string"},
                {"name": "nonce", "type": "string"},
                {"name": "expiresAt", "type": "uint256"},
            ],
        },
        "primaryType": "Withdrawal",
        "domain": {"name": "did-auth", "version": "1", "chainId": chain_id},
        "message": {
            **{k: v for k, v in d.items() if k != "type"},
            "nonce": nonce,
            "expiresAt": expires_at,
        },
    }


def typed_digest(d: dict[str, str], nonce: str, expires_at: int, chain_id: int) -> bytes:
    """The digest eth-account computes for the typed data (keccak256 of 0x19 0x01 ...)."""
    from eth_utils.crypto import keccak

    m = encode_typed_data(full_message=typed_data(d, nonce, expires_at, chain_id))
    return keccak(b"\x19" + m.version + m.header + m.body)


def eoa_typed_signer(key: bytes | str) -> Callable[[dict[str, Any]], str]:
    def sign(data: dict[str, Any]) -> str:
        signed = Account.sign_message(encode_typed_data(full_message=data), key)
        return "0x" + bytes(signed.signature).hex()

    return sign


@dataclass
class Session:
    """A logged-in wallet: its access token for did-auth (aud = the issuer)."""

    client: httpx.AsyncClient
    address: str
    key: bytes
    token: str
    chain_id: int = CHAIN
    dpop_key: ec.EllipticCurvePrivateKey | None = None
    otp_secret: str = ""
    sign: Callable[[dict[str, Any]], str] = field(default=lambda _: "")

    def headers(self, path: str, method: str = "POST") -> dict[str, str]:
        if self.dpop_key is None:
            return {"Authorization": f"Bearer {self.token}"}
        proof = make_dpop_proof(
            self.dpop_key, htm=method, htu=str(self.client.base_url).rstrip("/") + path,
            access_token=self.token,
        )
        return {"Authorization": f"DPoP {self.token}", "DPoP": proof}

    async def enrol_otp(self) -> None:
        r = await self.client.post("/otp/enroll", json={}, headers=self.headers("/otp/enroll"))
        assert r.status_code == 200, r.text
        secret = r.json()["secret"]
        code = pyotp.TOTP(secret).now()
        r = await self.client.post(
            "/otp/confirm", json={"otp": code}, headers=self.headers("/otp/confirm")
        )
        assert r.status_code == 200, r.text
        self.otp_secret = secret

    def next_code(self) -> str:
        """A code of the next time step: the current one went to the confirmation (RFC
        6238 §5.2: one step of drift is accepted, each step once)."""
        return pyotp.TOTP(self.otp_secret).at(time.time() + 30)

    async def nonce(self) -> str:
        r = await self.client.post(
            "/transactions/nonce", headers=self.headers("/transactions/nonce")
        )
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"nonce", "expires_in"}
        return str(r.json()["nonce"])

    async def approval_body(
        self,
        d: dict[str, str] | None = None,
        *,
        nonce: str | None = None,
        ttl: int = 120,
        chain_id: int | None = None,
        sign: Callable[[dict[str, Any]], str] | None = None,
        otp: str | None = None,
    ) -> dict[str, Any]:
        d = d or details()
        nonce = nonce or await self.nonce()
        expires_at = int(time.time()) + ttl
        data = typed_data(d, nonce, expires_at, self.chain_id if chain_id is None else chain_id)
        return {
            "authorization_details": [d],
            "nonce": nonce,
            "expires_at": expires_at,
            "signature": (sign or self.sign)(data),
            "otp": otp or self.next_code(),
        }

    async def authorize(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            "/transactions/authorize", json=body, headers=self.headers("/transactions/authorize")
        )


async def login(
    client: httpx.AsyncClient,
    *,
    key: bytes | None = None,
    address: str | None = None,
    sign_message: Callable[[str], str] | None = None,
    dpop: bool = False,
    client_id: str = "dapp",
    audience: str | None = None,
    chain_id: int = CHAIN,
    **extra: Any,
) -> Session:
    """A SIWE login whose access token is for did-auth itself (`audience` = the issuer,
    by default), optionally DPoP-bound."""
    if key is None:
        acct = Account.create()
        key = bytes(acct.key)
    address = address or Account.from_key(key).address
    base = str(client.base_url).rstrip("/")
    r = await client.post("/siwe/nonce", json={"client_id": client_id})
    assert r.status_code == 200, r.text
    text = siwe_text.message(address, r.json()["nonce"], chain_id=chain_id)
    signature = sign_message(text) if sign_message else siwe_text.sign(text, key)
    dpop_key = ec.generate_private_key(ec.SECP256R1()) if dpop else None
    headers = (
        {"DPoP": make_dpop_proof(dpop_key, htm="POST", htu=base + "/siwe/verify")}
        if dpop_key is not None else {}
    )
    r = await client.post(
        "/siwe/verify",
        json={"client_id": client_id, "message": text, "signature": signature,
              "audience": audience or base, **extra},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    return Session(
        client=client, address=address, key=key, token=r.json()["access_token"],
        chain_id=chain_id, dpop_key=dpop_key, sign=eoa_typed_signer(key),
    )
