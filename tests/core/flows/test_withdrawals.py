"""Withdrawal approvals without HTTP (`did_auth.core.flows.withdrawals`): the EIP-712 signature
of the session's account, the single-use session-bound nonce, the second factor and the
token, on the injected clock and the in-memory store.

The typed data the wallet signs is written here by hand and signed with eth-account's
`encode_typed_data` (never with did-auth's encoder), so a mistake in either shows."""

from __future__ import annotations

import secrets
from typing import Any

import pyotp
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from did_auth.core.errors import (
    AccessDenied,
    DidAuthError,
    InvalidAuthorizationDetails,
    InvalidGrant,
    InvalidRequest,
    RateLimited,
)
from did_auth.core.flows.guard import OpenGuard, RequestContext
from did_auth.core.flows.nonces import NonceBook
from did_auth.core.flows.second_factor import OtpFactor, SecondFactors
from did_auth.core.flows.signatures import EoaSignatureChecker
from did_auth.core.flows.withdrawals import TransactionApprovals
from did_auth.core.tokens.local_check import LocalTokenCheck
from tests.core.flows.core import ISS, Core, make_core
from tests.withdrawals import typed_data

CHAIN = 31337
CTX = RequestContext(ip="203.0.113.9")


class OpenGate:
    """No budgets (the rate limits have their own tests)."""

    async def nonce_request(self, ctx: RequestContext, *, kind: str = "nonce") -> None:
        return None

    async def hold_nonce(self, ctx: RequestContext, client_id: str, nonce: str) -> None:
        return None

    async def verify_request(self, ctx: RequestContext) -> None:
        return None


class Wallet:
    def __init__(self, core: Core, chain_id: int = CHAIN) -> None:
        self.acct = Account.create()
        self.address = self.acct.address
        self.sub = f"did:pkh:eip155:{chain_id}:{self.address}"
        self.sid = "0x" + secrets.token_hex(32)
        self.core = core
        self.secret = ""

    def claims(self, **over: Any) -> dict[str, Any]:
        base = {"sub": self.sub, "sid": self.sid, "client_id": "dapp", "aud": ISS, "amr": ["siwe"]}
        return {**base, **over}

    async def enrol(self) -> None:
        e = await self.core.otp.enroll(self.sub)
        await self.core.otp.confirm(self.sub, pyotp.TOTP(e.secret).at(self.core.clock.now()))
        self.core.clock.advance(30)
        self.secret = e.secret

    def code(self, offset: float = 0) -> str:
        return pyotp.TOTP(self.secret).at(self.core.clock.now() + offset)


def details(**over: str) -> dict[str, str]:
    d = {
        "type": "withdrawal",
        "audience": "trading-api",
        "asset": "USDC",
        "amount": "250.00",
        "destination": "0x1111111111111111111111111111111111111111",
        "network": "ethereum",
    }
    return {**d, **over}


def sign(key: Any, d: dict[str, str], nonce: str, expires_at: int, chain_id: int = CHAIN) -> str:
    signable = encode_typed_data(full_message=typed_data(d, nonce, expires_at, chain_id))
    return "0x" + bytes(Account.sign_message(signable, key).signature).hex()


async def setup(factors: dict[str, Any] | None = None) -> tuple[Core, TransactionApprovals]:
    core = await make_core()
    flow = TransactionApprovals(
        settings=core.settings,
        clock=core.clock,
        nonces=NonceBook(core.store, ttl=300, kind="tx"),
        signatures=EoaSignatureChecker(),
        issuer=core.issuer,
        factors=SecondFactors(factors if factors is not None else {"otp": OtpFactor(core.otp)}),
        gate=OpenGate(),
        guard=OpenGuard(),
    )
    return core, flow


async def approve_body(
    flow: TransactionApprovals, w: Wallet, *, d: dict[str, str] | None = None,
    ttl: int = 120, signer: Any = None, chain_id: int = CHAIN, **over: Any,
) -> dict[str, Any]:
    d = d or details()
    nonce = (await flow.nonce(w.claims(), CTX))["nonce"]
    expires_at = int(w.core.clock.now()) + ttl
    body = {
        "authorization_details": [d],
        "nonce": nonce,
        "expires_at": expires_at,
        "signature": sign(signer or w.acct.key, d, nonce, expires_at, chain_id),
    }
    if w.secret:
        body["otp"] = w.code()
    return {**body, **over}


async def refused(coro: Any, kind: type[DidAuthError] = InvalidGrant) -> str:
    with pytest.raises(kind) as err:
        await coro
    return err.value.reason


async def test_the_token_carries_exactly_what_was_signed() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w)
    approved = await flow.authorize(w.claims(), body, CTX)
    r = approved.response
    assert r["token_type"] == "Bearer" and r["scope"] == "wallet:withdraw"
    assert r["authorization_details"] == [details()]
    assert r["expires_in"] == 60 and "refresh_token" not in r
    claims = LocalTokenCheck(
        core.keys, core.store, core.sessions, core.clock, issuer=ISS
    ).signed_claims(r["access_token"]) or {}
    now = int(core.clock.now())
    assert claims["authorization_details"] == [details()]
    assert claims["aud"] == "trading-api" and claims["scope"] == "wallet:withdraw"
    assert claims["exp"] - claims["iat"] == 60 and claims["exp"] <= body["expires_at"]
    assert claims["amr"] == ["siwe", "otp", "mfa"]  # RFC 8176: otp, mfa
    assert claims["sid"] == w.sid and claims["sub"] == w.sub and claims["auth_time"] == now
    assert "cnf" not in claims and claims["jti"] == approved.jti


async def test_dpop_bound_session_gets_a_dpop_bound_token_and_exp_within_expires_at() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w, ttl=20)
    approved = await flow.authorize(w.claims(cnf={"jkt": "thumb"}), body, CTX)
    assert approved.response["token_type"] == "DPoP"
    assert approved.grant.jkt == "thumb"
    assert approved.response["expires_in"] == 20  # never after expires_at


async def test_signature_by_another_account_is_refused_and_the_nonce_survives() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w, signer=Account.create().key)
    assert await refused(flow.authorize(w.claims(), body, CTX)) == "signature"
    # Nothing was used up: the same nonce with the account's own signature passes.
    body["signature"] = sign(w.acct.key, details(), body["nonce"], body["expires_at"])
    await flow.authorize(w.claims(), body, CTX)


async def test_signature_for_another_chain_id_is_refused() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w, chain_id=1)
    assert await refused(flow.authorize(w.claims(), body, CTX)) == "signature"


async def test_every_signed_field_is_bound() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w)
    for field, value in [("amount", "250.0"), ("asset", "USDT"), ("network", "base"),
                         ("destination", "0x2222222222222222222222222222222222222222"),
                         ("audience", "other-api")]:
        tampered = {**body, "authorization_details": [details(**{field: value})]}
        assert await refused(flow.authorize(w.claims(), tampered, CTX)) == "signature", field
    assert await refused(
        flow.authorize(w.claims(), {**body, "expires_at": body["expires_at"] - 1}, CTX)
    ) == "signature"


async def test_a_reused_nonce_is_refused() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w)
    await flow.authorize(w.claims(), body, CTX)
    body["otp"] = w.code(30)  # a fresh code: only the nonce is reused
    assert await refused(flow.authorize(w.claims(), body, CTX)) == "nonce_replay"


async def test_a_nonce_of_another_session_is_refused() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w)
    other_session = w.claims(sid="0x" + secrets.token_hex(32))
    assert await refused(flow.authorize(other_session, body, CTX)) == "nonce_binding"
    await flow.authorize(w.claims(), body, CTX)  # still good for its own session


async def test_an_unknown_or_expired_nonce_is_refused() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w, nonce="N" * 22)
    assert await refused(flow.authorize(w.claims(), body, CTX)) == "nonce_unknown"
    body = await approve_body(flow, w, ttl=290)
    core.clock.advance(301)  # the nonce's TTL (and expires_at) passed
    assert await refused(flow.authorize(w.claims(), body, CTX)) in ("expired", "nonce_unknown")


@pytest.mark.parametrize(
    ("mutate", "kind"),
    [
        (lambda b: b.update(authorization_details=[]), InvalidAuthorizationDetails),
        (lambda b: b.update(authorization_details=[details(), details()]),
         InvalidAuthorizationDetails),
        (lambda b: b.update(authorization_details=[details(type="payment")]),
         InvalidAuthorizationDetails),
        (lambda b: b.update(authorization_details=[{**details(), "memo": "x"}]),
         InvalidAuthorizationDetails),
        (lambda b: b.update(authorization_details=[{**details(), "amount": 250}]),
         InvalidAuthorizationDetails),
        *[
            (lambda b, a=a: b.update(authorization_details=[details(amount=a)]),
             InvalidAuthorizationDetails)
            for a in ("0", "0.00", "-1", "+1", "1e3", ".5", "5.", "01", "1,5", "1 ", " 1", "\uff11")
        ],
        (lambda b: b.update(authorization_details=[details(destination="0x11 11")]),
         InvalidAuthorizationDetails),
        (lambda b: b.update(authorization_details=[details(destination="0x\u202e11")]),
         InvalidAuthorizationDetails),
        (lambda b: b.update(authorization_details=[details(asset="")]),
         InvalidAuthorizationDetails),
        (lambda b: b.pop("authorization_details"), InvalidRequest),
        (lambda b: b.update(extra=1), InvalidRequest),
        (lambda b: b.update(expires_at=True), InvalidRequest),
        (lambda b: b.update(expires_at=str(b["expires_at"])), InvalidRequest),
        (lambda b: b.update(expires_at=b["expires_at"] + 0.5), InvalidRequest),
        (lambda b: b.update(nonce=7), InvalidRequest),
        (lambda b: b.update(signature="0xzz"), InvalidRequest),
        (lambda b: b.pop("otp"), InvalidRequest),
        (lambda b: b.update(webauthn={"id": "x"}), InvalidRequest),  # both, or unavailable
        (lambda b: b.update(expires_at=b["expires_at"] + 10_000), InvalidRequest),
        (lambda b: b.update(authorization_details=[details(audience="nope-api")]),
         InvalidAuthorizationDetails),
        (lambda b: b.update(authorization_details=[details(audience=ISS)]),
         InvalidAuthorizationDetails),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(mutate: Any, kind: type) -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w)
    bad = dict(body)
    mutate(bad)
    with pytest.raises(kind):
        await flow.authorize(w.claims(), bad, CTX)
    await flow.authorize(w.claims(), body, CTX)  # the nonce and the OTP code are unused


async def test_an_expired_approval_is_refused() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w, ttl=5)
    core.clock.advance(5)
    assert await refused(flow.authorize(w.claims(), body, CTX)) == "expired"


async def test_the_second_factor_is_checked_after_the_signature_and_codes_are_single_use() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    body = await approve_body(flow, w, otp="000000" if w.code() != "000000" else "111111")
    assert await refused(flow.authorize(w.claims(), body, CTX)) == "otp_invalid"
    # The wrong code cost the signed approval (its nonce): every guess needs a new signature.
    body["otp"] = w.code()
    assert await refused(flow.authorize(w.claims(), body, CTX)) == "nonce_replay"
    first = await approve_body(flow, w)
    await flow.authorize(w.claims(), first, CTX)
    again = await approve_body(flow, w, otp=first["otp"])  # the same code, a new approval
    assert await refused(flow.authorize(w.claims(), again, CTX)) == "otp_invalid"


async def test_wrong_codes_back_off_the_account() -> None:
    core, flow = await setup()
    w = Wallet(core)
    await w.enrol()
    wrong = "000000" if w.code() != "000000" else "111111"
    with pytest.raises((InvalidGrant, RateLimited)):
        for _ in range(10):
            body = await approve_body(flow, w, otp=wrong)
            with pytest.raises(InvalidGrant):
                await flow.authorize(w.claims(), body, CTX)
    body = await approve_body(flow, w)
    await refused(flow.authorize(w.claims(), body, CTX), RateLimited)


async def test_no_enrolled_factor_is_access_denied() -> None:
    core, flow = await setup()
    w = Wallet(core)
    body = await approve_body(flow, w, otp="123456")
    assert await refused(flow.authorize(w.claims(), body, CTX), AccessDenied) == "otp_missing"


async def test_a_subject_without_an_ethereum_account_cannot_approve() -> None:
    _core, flow = await setup()
    claims = {"sub": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
              "sid": "0x" + "00" * 32, "client_id": "dapp"}
    await refused(flow.nonce(claims, CTX), AccessDenied)


async def test_the_webauthn_seam_passes_the_transaction_nonce_as_binding() -> None:
    seen: list[tuple[str, object, str]] = []

    class Passkey:
        async def verify(self, sub: str, proof: object, *, binding: str) -> tuple[str, ...]:
            seen.append((sub, proof, binding))
            return ("hwk",)

    core, flow = await setup()
    flow.factors = SecondFactors({"otp": OtpFactor(core.otp), "webauthn": Passkey()})
    w = Wallet(core)
    body = await approve_body(flow, w)
    assert "otp" not in body  # no TOTP enrolled: the passkey is the only factor
    body["webauthn"] = {"id": "cred"}
    approved = await flow.authorize(w.claims(), body, CTX)
    assert seen == [(w.sub, {"id": "cred"}, body["nonce"])]
    assert approved.grant.amr == ("siwe", "hwk", "mfa")
