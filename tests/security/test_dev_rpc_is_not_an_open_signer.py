"""`/dev/rpc` on embedded defaults signs nothing for its caller and is not reachable
cross-site.

The attacks (a did-auth on embedded defaults, `did-auth serve` on a developer's machine):

* any web page the developer opens POSTs a JSON-RPC body as `text/plain` (a CORS "simple
  request": no preflight; the page needs no answer to act) and sends an
  `eth_sendTransaction` from one of the chain's unlocked accounts, e.g. the operator of
  the RevocationRegistry suspending an account;
* anyone who can reach the endpoint has eth-tester's unlocked accounts sign for him
  (`eth_sendTransaction`, `eth_sign`, `personal_sign`, `eth_signTransaction`,
  `eth_signTypedData*`).

Refused: only `Content-Type: application/json` (else 415, and the chain is not touched;
browsers preflight it cross-site), no CORS preflight answered and a foreign `Origin`
refused (403), and no method that signs with the chain's accounts: every write is an
`eth_sendRawTransaction` signed by a key the caller holds, which still works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from eth_account import Account

from tests.fixtures.servers import LiveServer, start_server, stop_server

# eth-tester's funded accounts have the private keys 1, 2, ...: a developer signs with them.
FUNDED = Account.from_key((3).to_bytes(32, "big"))


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    srv = start_server({})  # no config: the embedded defaults
    yield srv
    stop_server(srv)


def _call(url: str, method: str, params: list[Any], **kw: Any) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    if kw.pop("content", False):  # the body as given, with the caller's headers only
        return httpx.post(url, content=json.dumps(body), **kw)
    return httpx.post(url, json=body, **kw)


def _result(url: str, method: str, params: list[Any]) -> Any:
    reply = _call(url, method, params).json()
    assert "error" not in reply, reply
    return reply["result"]


def _nonce(url: str, address: str) -> str:
    return str(_result(url, "eth_getTransactionCount", [address, "latest"]))


def _json_error(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "error_description"}, body
    assert "access-control-allow-origin" not in r.headers


def test_a_cross_site_simple_post_never_reaches_the_chain(server: LiveServer) -> None:
    url = server.url + "/dev/rpc"
    unlocked = _result(url, "eth_accounts", [])[0]
    before = _nonce(url, unlocked)
    send = [{"from": unlocked, "to": FUNDED.address, "value": "0x1"}]
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/jsonx", None):
        headers = {"Origin": "https://evil.example"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        r = _call(url, "eth_sendTransaction", send, content=True, headers=headers)
        _json_error(r, 415)
    # Without an Origin (a script) the content type is required just the same.
    _json_error(_call(url, "eth_accounts", [], content=True,
                      headers={"Content-Type": "text/plain"}), 415)
    assert _nonce(url, unlocked) == before


def test_no_preflight_and_no_foreign_origin(server: LiveServer) -> None:
    url = server.url + "/dev/rpc"
    for origin in ("https://evil.example", "http://localhost:5173", "http://127.0.0.1:1"):
        r = httpx.options(url, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert r.status_code >= 400, r.text
        assert "access-control-allow-origin" not in r.headers
        _json_error(_call(url, "eth_chainId", [], headers={"Origin": origin}), 403)
    # The server's own origin (a page it serves) may use it.
    reply = _call(url, "eth_chainId", [], headers={"Origin": server.url}).json()
    assert reply["result"] == "0x7a69", reply


def test_the_chains_unlocked_accounts_sign_nothing(server: LiveServer) -> None:
    url = server.url + "/dev/rpc"
    unlocked = _result(url, "eth_accounts", [])[0]
    before = _nonce(url, unlocked)
    tx = {"from": unlocked, "to": FUNDED.address, "value": "0x1", "gas": "0x5208"}
    typed = {"types": {"EIP712Domain": []}, "primaryType": "EIP712Domain", "domain": {},
             "message": {}}
    for method, params in (
        ("eth_sendTransaction", [tx]),
        ("eth_signTransaction", [tx]),
        ("eth_sign", [unlocked, "0x00"]),
        ("personal_sign", ["0x00", unlocked]),
        ("eth_signTypedData", [unlocked, typed]),
        ("eth_signTypedData_v3", [unlocked, typed]),
        ("eth_signTypedData_v4", [unlocked, typed]),
    ):
        reply = _call(url, method, params).json()
        assert "result" not in reply and reply["error"]["code"] == -32601, (method, reply)
    assert _nonce(url, unlocked) == before


def test_a_transaction_signed_by_the_caller_is_sent(server: LiveServer) -> None:
    url = server.url + "/dev/rpc"
    to = Account.create().address
    signed = FUNDED.sign_transaction({
        "to": to, "value": 10**15, "gas": 21000, "gasPrice": 10**10, "chainId": 31337,
        "nonce": int(_nonce(url, FUNDED.address), 16)})
    tx = _result(url, "eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
    assert _result(url, "eth_getTransactionReceipt", [tx])["status"] == "0x1"
    assert int(_result(url, "eth_getBalance", [to, "latest"]), 16) == 10**15
