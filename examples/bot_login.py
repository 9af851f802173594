"""A trading bot logs in to did-auth with a did:ethr delegate key and calls the trading API.

The account owner authorises the bot's key once, on chain: it becomes a `sigAuth` delegate
of the owner's did:ethr in the ERC-1056 EthereumDIDRegistry, for a validity period, and the
owner can revoke it at any time (`revokeDelegate`); the bot's next login then fails with
`access_denied`. The bot never holds the owner's key.

    registry.addDelegate(ownerAddress, "sigAuth" (bytes32), botAddress, validitySeconds)

The bot then (docs/interface.md, "The DID proof"):

1. `POST /did/challenge {"client_id", "did"}` -> `{"challenge", "audience", "expires_in"}`
2. signs a did-jwt style proof: header `{"alg": "ES256K-R", "typ": "JWT"}`, claims
   `{"iss": DID, "aud": audience, "nonce": challenge, "iat", "exp"}`, signature
   `r || s || recovery id` (65 bytes) over SHA-256 of `base64url(header).base64url(claims)`;
3. `POST /did/verify {"client_id", "proof", "scope"}` -> an access token whose `sub` is the
   owner's DID and whose scopes are within the client's `delegate_scopes`;
4. `GET /account` on the trading API with `Authorization: Bearer <access_token>`.

Usage (keys are read from a file or the environment, never from the command line):

    BOT_PRIVATE_KEY=0x... .venv/bin/python examples/bot_login.py --issuer http://127.0.0.1:8000 \
        --client-id demo --did did:ethr:0x7a69:0xOwnerAddress --api http://127.0.0.1:9000

    # a development chain: first let the owner authorise the bot key (needs web3). On
    # did-auth's embedded defaults the chain is http://127.0.0.1:8000/dev/rpc and the
    # registry is found there (GET /dev/rpc); on Hardhat pass --registry.
    OWNER_PRIVATE_KEY=0x... BOT_PRIVATE_KEY=0x... .venv/bin/python examples/bot_login.py ... \
        --authorize --rpc-url http://127.0.0.1:8000/dev/rpc [--registry 0x...] [--validity 86400]

Prints the trading API's `/account` answer as JSON; exit code 1 with the server's error on
stderr when any step fails.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from coincurve import PrivateKey
from eth_account import Account


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def es256k_r_proof(private_key: bytes, claims: dict[str, Any]) -> str:
    """A compact JWT signed ES256K-R the way did-jwt's `ES256KSigner(key, true)` does."""
    header = {"alg": "ES256K-R", "typ": "JWT"}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    digest = hashlib.sha256(signing_input.encode("ascii")).digest()
    # libsecp256k1: RFC 6979 nonce, low-s; 65 bytes r || s || recovery id (0 or 1).
    signature = PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return f"{signing_input}.{b64url(signature)}"


def read_key(env: str, file: str | None) -> bytes:
    text = Path(file).read_text().strip() if file else os.environ.get(env, "")
    if not text:
        raise SystemExit(f"error: no key: set {env} or pass a key file")
    key = bytes.fromhex(text.removeprefix("0x"))
    if len(key) != 32:
        raise SystemExit("error: a private key is 32 bytes of hex")
    return key


def fail(step: str, response: httpx.Response) -> None:
    try:
        body = response.json()
        detail = f"{body.get('error')}: {body.get('error_description')}"
    except ValueError:
        detail = response.text[:200]
    print(f"error: {step} failed ({response.status_code}) {detail}", file=sys.stderr)
    raise SystemExit(1)


def authorize(args: argparse.Namespace, bot_address: str) -> None:
    """Demo only: the owner adds the bot key as a sigAuth delegate (one transaction)."""
    from web3 import Web3

    try:
        from did_auth.adapters.chain.contracts import load_artifact
    except ImportError:  # running from a checkout without `pip install -e .`
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from did_auth.adapters.chain.contracts import load_artifact

    owner = Account.from_key(read_key("OWNER_PRIVATE_KEY", args.owner_key_file))
    if not args.registry:  # did-auth's development chain says where its registry is
        r = httpx.get(args.rpc_url, timeout=15)
        if r.status_code != 200:
            fail(f"GET {args.rpc_url} (no --registry given)", r)
        args.registry = r.json()["did_registry"]
    w3 = Web3(Web3.HTTPProvider(args.rpc_url))
    registry = w3.eth.contract(
        address=Web3.to_checksum_address(args.registry),
        abi=load_artifact("EthereumDIDRegistry").abi,
    )
    identity = args.did.rsplit(":", 1)[1]
    fn = registry.functions.addDelegate(
        Web3.to_checksum_address(identity),
        b"sigAuth".ljust(32, b"\0"),
        bot_address,
        args.validity,
    )
    tx = fn.build_transaction(
        {"from": owner.address, "nonce": w3.eth.get_transaction_count(owner.address)}
    )
    signed = owner.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    if receipt["status"] != 1:
        raise SystemExit("error: addDelegate reverted (is the key the identity's owner?)")
    print(
        f"authorised {bot_address} as sigAuth delegate of {args.did} for {args.validity} s",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--issuer", required=True, help="did-auth base URL")
    p.add_argument("--client-id", required=True)
    p.add_argument("--did", required=True, help="the owner's did:ethr the bot acts for")
    p.add_argument("--api", required=True, help="trading API base URL")
    p.add_argument("--scope", help='e.g. "account:read trade:write" (default: client default)')
    p.add_argument("--bot-key-file", help="file with the bot's hex key (else $BOT_PRIVATE_KEY)")
    p.add_argument("--authorize", action="store_true", help="demo: add the delegate first")
    p.add_argument("--owner-key-file", help="owner key file (else $OWNER_PRIVATE_KEY)")
    p.add_argument("--rpc-url")
    p.add_argument("--registry", help="ERC-1056 registry address")
    p.add_argument("--validity", type=int, default=86400, help="delegate validity, seconds")
    args = p.parse_args(argv)

    bot_key = read_key("BOT_PRIVATE_KEY", args.bot_key_file)
    bot_address = Account.from_key(bot_key).address
    if args.authorize:
        if not args.rpc_url:
            p.error("--authorize needs --rpc-url (and --registry, except on /dev/rpc)")
        try:
            authorize(args, bot_address)
        except SystemExit:
            raise
        except Exception as exc:
            # web3's RPC and revert errors (Web3RPCError, ContractLogicError), the node's
            # connection errors, a bad --registry: one line, not a traceback.
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"error: --authorize via {args.rpc_url}: {detail[:300]}", file=sys.stderr)
            return 1
    try:
        return login(args, bot_key, bot_address)
    except httpx.HTTPError as exc:
        print(f"error: {exc.request.url}: {exc}", file=sys.stderr)
        return 1


def login(args: argparse.Namespace, bot_key: bytes, bot_address: str) -> int:
    with httpx.Client(timeout=15) as http:
        r = http.post(
            f"{args.issuer}/did/challenge", json={"client_id": args.client_id, "did": args.did}
        )
        if r.status_code != 200:
            fail("/did/challenge", r)
        challenge = r.json()

        now = int(time.time())
        proof = es256k_r_proof(
            bot_key,
            {
                "iss": args.did,
                "aud": challenge["audience"],
                "nonce": challenge["challenge"],
                "iat": now,
                "exp": now + 60,
            },
        )
        body: dict[str, Any] = {"client_id": args.client_id, "proof": proof}
        if args.scope:
            body["scope"] = args.scope
        r = http.post(f"{args.issuer}/did/verify", json=body)
        if r.status_code != 200:
            fail("/did/verify", r)
        tokens = r.json()
        print(
            f"logged in as {args.did} with {bot_address}: scope {tokens['scope']!r}",
            file=sys.stderr,
        )

        r = http.get(
            f"{args.api}/account",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        if r.status_code != 200:
            fail("GET /account", r)
        print(json.dumps(r.json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
