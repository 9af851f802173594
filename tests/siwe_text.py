"""Independent EIP-4361 message text for tests (written by hand, not by our serializer)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{int((t % 1) * 1000):03d}Z"
    )


def message(
    address: str,
    nonce: str,
    *,
    domain: str = "localhost:3000",
    uri: str = "http://localhost:3000/login",
    chain_id: int = 31337,
    statement: str | None = "Sign in to the trading venue.",
    issued_at: float | None = None,
    expiration: float | None = None,
    not_before: float | None = None,
    resources: list[str] | None = None,
    request_id: str | None = None,
) -> str:
    lines = [f"{domain} wants you to sign in with your Ethereum account:", address, ""]
    # EIP-4361 ABNF: address LF LF [ statement LF ] LF "URI: " ... (no statement: 3 LFs)
    lines += [statement, ""] if statement is not None else [""]
    lines += [
        f"URI: {uri}",
        "Version: 1",
        f"Chain ID: {chain_id}",
        f"Nonce: {nonce}",
        f"Issued At: {iso(time.time() if issued_at is None else issued_at)}",
    ]
    if expiration is not None:
        lines.append(f"Expiration Time: {iso(expiration)}")
    if not_before is not None:
        lines.append(f"Not Before: {iso(not_before)}")
    if request_id is not None:
        lines.append(f"Request ID: {request_id}")
    if resources:
        lines.append("Resources:")
        lines += [f"- {r}" for r in resources]
    return "\n".join(lines)


def sign(text: str, key: bytes | str) -> str:
    signed = Account.sign_message(encode_defunct(text=text), key)
    return "0x" + bytes(signed.signature).hex()


def new_account() -> tuple[str, bytes]:
    acct = Account.create()
    return acct.address, bytes(acct.key)
