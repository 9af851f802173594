"""The login use case (did_auth.core.flows.login) without HTTP: preamble (verify budget, client
authentication per RFC 6749 §3.2.1, key refresh, RFC 9449 DPoP proof), the proof's checks,
and the postamble: one counter and one audit line per outcome with the same fields for a
direct SIWE login and the code flow's completion (`method`, `flow`, `dpop_bound`).
Injected clock, in-memory store, the real audit log in memory."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from did_auth_verifier.dpop import jwk_thumbprint, make_dpop_proof
from did_auth_verifier.jose import public_jwk

from did_auth.adapters.monitoring.audit import AuditLog
from did_auth.adapters.monitoring.logins import LoginEvents
from did_auth.core.errors import InvalidClient, InvalidDpopProof, InvalidGrant
from did_auth.core.flows.guard import RequestContext
from did_auth.core.flows.login import AuthorizationCodeLogin, Logins, SiweProofLogin
from did_auth.core.flows.oidc import OidcProvider
from did_auth.core.oauth.client_auth import ClientAuthenticator, hash_secret
from did_auth.core.oauth.codes import s256_challenge
from tests import siwe_text
from tests.core.flows.core import DAPP, ISS, Core, make_core

CTX = RequestContext(ip="203.0.113.9", request_id="req-1")
SUCCESS_FIELDS = {"method", "flow", "sid", "scope", "amr", "dpop_bound"}


class CountingGate:
    """The abuse budgets, open, counting what the use case asked for."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def nonce_request(self, ctx: RequestContext, *, kind: str = "nonce") -> None:
        self.calls.append(kind)

    async def hold_nonce(self, ctx: RequestContext, client_id: str, nonce: str) -> None:
        self.calls.append("hold")

    async def verify_request(self, ctx: RequestContext) -> None:
        self.calls.append("verify")


async def _logins(
    *, server_nonce: bool = False, **over: Any
) -> tuple[Core, Logins, AuditLog, CountingGate]:
    core = await make_core(dpop_nonce=server_nonce, **over)
    settings = core.settings.model_copy(update={"dpop_nonce": server_nonce})
    audit = AuditLog.memory()
    gate = CountingGate()
    oidc = OidcProvider(settings=core.settings, clock=core.clock, store=core.store,
                        keys=core.keys, sessions=core.sessions, siwe=core.siwe)
    logins = Logins(
        settings=settings, gate=gate, nonces=core.nonces,
        client_auth=ClientAuthenticator(core.settings, core.store, core.clock, issuer=ISS),
        refresh_keys=core.keys.refresh, dpop=core.dpop, siwe_login=core.siwe, did_login=None,
        codes=oidc.codes, recorder=LoginEvents(audit),
    )
    return core, logins, audit, gate


async def _siwe(core: Core, logins: Logins, client_id: str = "dapp", **over: Any) -> SiweProofLogin:
    address, key = siwe_text.new_account()
    nonce = (await logins.siwe_nonce(client_id, CTX))["nonce"]
    text = core.siwe_text(address, nonce)
    over.setdefault("signature", siwe_text.sign(text, key))
    return SiweProofLogin(client_id=client_id, message=text, ctx=CTX, **over)


def _records(audit: AuditLog, event: str) -> list[dict[str, Any]]:
    return [r for r in audit.records if r["event"] == event]


async def test_direct_login_binds_the_dpop_key_and_records_one_success() -> None:
    core, logins, audit, gate = await _logins()
    key = ec.generate_private_key(ec.SECP256R1())
    proof = make_dpop_proof(key, htm="POST", htu=ISS + "/siwe/verify", clock=core.clock)
    result = await logins.siwe(await _siwe(core, logins, dpop_proofs=[proof]))
    assert result.grant.jkt == jwk_thumbprint(public_jwk(key.public_key())[1])
    assert result.response["token_type"] == "DPoP" and result.dpop_nonce is None
    assert gate.calls == ["nonce", "hold", "verify"]
    (rec,) = _records(audit, "login_success")
    assert SUCCESS_FIELDS <= rec.keys() and "redacted" not in rec
    assert (rec["method"], rec["flow"], rec["dpop_bound"]) == ("siwe", "direct", True)
    assert (rec["client_id"], rec["ip"], rec["request_id"]) == ("dapp", CTX.ip, CTX.request_id)


async def test_server_nonce_is_returned_for_the_next_proof() -> None:
    core, logins, _, _ = await _logins(server_nonce=True)
    result = await logins.siwe(await _siwe(core, logins))  # no proof: a bearer login
    assert result.grant.jkt is None and result.dpop_nonce  # RFC 9449 §8: DPoP-Nonce


async def test_refused_login_is_recorded_once_and_raised() -> None:
    core, logins, audit, _ = await _logins()
    req = await _siwe(core, logins, signature="0x" + "11" * 65)
    with pytest.raises(InvalidGrant):
        await logins.siwe(req)
    (rec,) = _records(audit, "login_failure")
    assert (rec["method"], rec["flow"], rec["client_id"]) == ("siwe", "direct", "dapp")
    assert rec["status"] == 400 and rec["reason"]
    assert not _records(audit, "login_success")


async def test_confidential_client_must_authenticate_before_any_proof_check() -> None:
    # RFC 6749 §3.2.1: a client issued credentials MUST authenticate.
    secret = secrets.token_urlsafe(24)
    conf = {**DAPP, "client_id": "conf", "client_secret_hash": hash_secret(secret)}
    core, logins, audit, _ = await _logins(clients=[DAPP, conf])
    with pytest.raises(InvalidClient):
        await logins.siwe(await _siwe(core, logins, client_id="conf"))
    ok = await logins.siwe(
        await _siwe(core, logins, client_id="conf",
                    client_secret=secret)
    )
    assert ok.grant.client_id == "conf"
    assert [r["reason"] for r in _records(audit, "login_failure")] == ["client_auth_missing"]


async def test_require_dpop_client_without_a_proof_is_refused() -> None:
    strict = {**DAPP, "client_id": "strict", "require_dpop": True}
    core, logins, _, _ = await _logins(clients=[DAPP, strict])
    with pytest.raises(InvalidDpopProof):
        await logins.siwe(await _siwe(core, logins, client_id="strict"))


async def test_code_flow_completion_records_the_same_fields() -> None:
    core, logins, audit, gate = await _logins()
    oidc = OidcProvider(settings=core.settings, clock=core.clock, store=core.store,
                        keys=core.keys, sessions=core.sessions, siwe=core.siwe)
    logins.codes = oidc.codes
    _, page = await oidc.authorize({
        "client_id": "dapp", "redirect_uri": "https://rp.example/cb", "response_type": "code",
        "scope": "openid account:read", "code_challenge": s256_challenge("v" * 43),
        "code_challenge_method": "S256",
    })
    address, key = siwe_text.new_account()
    text = core.siwe_text(
        address, await core.nonces.issue("dapp"), domain="auth.example", uri=ISS + "/authorize",
        statement=page.statement, resources=list(page.resources), request_id=page.request_id,
    )
    url, grant = await logins.authorization_code(AuthorizationCodeLogin(
        request_id=page.request_id, message=text, signature=siwe_text.sign(text, key), ctx=CTX,
    ))
    assert url.startswith("https://rp.example/cb?code=") and grant.client_id == "dapp"
    assert gate.calls == ["verify"]
    (rec,) = _records(audit, "login_success")
    assert SUCCESS_FIELDS <= rec.keys() and "redacted" not in rec
    assert (rec["method"], rec["flow"], rec["dpop_bound"]) == ("siwe", "authorization_code", False)
    with pytest.raises(InvalidGrant):  # the parked request is single use
        await logins.authorization_code(AuthorizationCodeLogin(
            request_id=page.request_id, message=text, signature=siwe_text.sign(text, key), ctx=CTX,
        ))
    (failed,) = _records(audit, "login_failure")
    assert (failed["method"], failed["flow"], failed["client_id"]) == (
        "siwe", "authorization_code", None)
