"""`POST /transactions/nonce` and `POST /transactions/authorize` over HTTP, in process,
against both stores (memory and real Redis): the wire format of the interface, the token,
DPoP, errors without state change, the audit line, discovery, and Redis down = 503."""

from __future__ import annotations

import jwt
import pytest

from did_auth.adapters.monitoring.audit import AuditLog
from did_auth.adapters.monitoring.metrics import METRICS
from tests.edge.api.test_siwe_flow import Api, jwks_keys
from tests.fixtures.redis_server import RedisServer, free_port
from tests.fixtures.servers import running_app, settings_for
from tests.withdrawals import CHAIN, details, login

ISS = "http://testserver"


async def claims_of(api: Api, token: str, audience: str = "trading-api") -> dict:  # type: ignore[type-arg]
    client, _ = api
    header = jwt.get_unverified_header(token)
    keys = jwks_keys((await client.get("/.well-known/jwks.json")).json())
    return dict(
        jwt.decode(token, keys[header["kid"]], algorithms=["ES256"], audience=audience,
                   issuer=ISS)
    )


async def test_discovery_advertises_withdrawal_details(api: Api) -> None:
    client, _ = api
    doc = (await client.get("/.well-known/openid-configuration")).json()
    assert doc["authorization_details_types_supported"] == ["withdrawal"]
    same = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert same["authorization_details_types_supported"] == ["withdrawal"]


async def test_approval_returns_a_token_for_exactly_the_signed_withdrawal(api: Api) -> None:
    client, _ = api
    s = await login(client)
    await s.enrol_otp()
    ok_before = METRICS.withdrawal_approvals.labels(outcome="success", factor="otp").value
    body = await s.approval_body()
    r = await s.authorize(body)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    tok = r.json()
    assert set(tok) == {"access_token", "token_type", "expires_in", "scope",
                        "authorization_details"}
    assert tok["token_type"] == "Bearer" and tok["scope"] == "wallet:withdraw"
    assert tok["authorization_details"] == [details()] and tok["expires_in"] <= 60
    claims = await claims_of(api, tok["access_token"])
    session = await claims_of(api, s.token, audience=ISS)
    assert claims["authorization_details"] == [details()]
    assert claims["aud"] == "trading-api" and claims["scope"] == "wallet:withdraw"
    assert claims["exp"] - claims["iat"] <= 60 and claims["exp"] <= body["expires_at"]
    assert claims["amr"] == ["siwe", "otp", "mfa"]
    assert claims["sub"] == f"did:pkh:eip155:{CHAIN}:{s.address}"
    assert claims["sid"] == session["sid"] and claims["jti"] != session["jti"]
    assert "cnf" not in claims
    after = METRICS.withdrawal_approvals.labels(outcome="success", factor="otp").value
    assert after == ok_before + 1


async def test_dpop_bound_session_approves_with_its_key_only(api: Api) -> None:
    client, _ = api
    s = await login(client, dpop=True)
    await s.enrol_otp()
    body = await s.approval_body()
    # The session's DPoP-bound token as a bearer token: refused (RFC 9449 §7.2).
    bearer = {"Authorization": f"Bearer {s.token}"}
    r = await client.post("/transactions/authorize", json=body, headers=bearer)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    r = await s.authorize(body)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    claims = await claims_of(api, r.json()["access_token"])
    session = await claims_of(api, s.token, audience=ISS)
    assert claims["cnf"] == session["cnf"]


async def test_only_a_token_for_did_auth_itself(api: Api) -> None:
    """A token an API received (aud = trading-api) cannot ask for approvals (RFC 9068 §4)."""
    client, _ = api
    s = await login(client, audience="trading-api")
    r = await client.post("/transactions/nonce", headers=s.headers("/transactions/nonce"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    r = await client.post("/transactions/nonce")
    assert r.status_code == 401 and "www-authenticate" in r.headers


@pytest.mark.parametrize(
    ("mutate", "status", "error"),
    [
        (lambda b: b.update(authorization_details=[{**details(), "memo": "x"}]), 400,
         "invalid_authorization_details"),
        (lambda b: b.update(authorization_details=[details(amount="1e3")]), 400,
         "invalid_authorization_details"),
        (lambda b: b.update(authorization_details=[details(audience="nope-api")]), 400,
         "invalid_authorization_details"),
        (lambda b: b.update(expires_at="soon"), 400, "invalid_request"),
        (lambda b: b.update(unknown=True), 400, "invalid_request"),
        (lambda b: b.pop("otp"), 400, "invalid_request"),
        (lambda b: b.update(signature="0x" + "11" * 65), 400, "invalid_grant"),
    ],
)
async def test_bad_input_is_4xx_and_changes_nothing(
    api: Api, mutate: object, status: int, error: str
) -> None:
    client, _ = api
    s = await login(client)
    await s.enrol_otp()
    body = await s.approval_body()
    bad = dict(body)
    mutate(bad)  # type: ignore[operator]
    r = await s.authorize(bad)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.json()["error_description"]
    r = await s.authorize(body)  # the nonce and the code are still good
    assert r.status_code == 200, r.text


async def test_malformed_json_and_duplicate_members(api: Api) -> None:
    client, _ = api
    s = await login(client)
    headers = {**s.headers("/transactions/authorize"), "content-type": "application/json"}
    for raw in (b"{", b"", b'{"nonce": "a", "nonce": "b"}', b"[]"):
        r = await client.post("/transactions/authorize", content=raw, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (raw, r.text)
        headers = {**s.headers("/transactions/authorize"), "content-type": "application/json"}


async def test_every_attempt_is_audited_without_secrets(api: Api) -> None:
    client, svc = api
    sink = AuditLog.memory()
    svc.audit = sink
    s = await login(client)
    await s.enrol_otp()
    body = await s.approval_body()
    r = await s.authorize({**body, "otp": "000000" if body["otp"] != "000000" else "111111"})
    assert r.status_code == 400
    r = await s.authorize(await s.approval_body())
    assert r.status_code == 200, r.text
    lines = [x for x in sink.records if x["event"] == "withdrawal_approval"]
    assert [x["outcome"] for x in lines] == ["denied", "success"]
    assert lines[0]["reason"] == "otp_invalid"
    ok = lines[1]
    assert ok["amount"] == "250.00" and ok["destination"] == details()["destination"]
    assert ok["factor"] == "otp" and ok["amr"] == ["siwe", "otp", "mfa"]
    text = repr(lines)
    assert body["signature"][2:40] not in text and r.json()["access_token"][:40] not in text


async def test_redis_down_is_503(tmp_path) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer(free_port(), tmp_path)
    redis.start()
    settings = settings_for(redis_url=redis.url, key_encryption_key_file=str(tmp_path / "k"))
    try:
        async with running_app(settings) as (client, _):
            s = await login(client)
            redis.stop()
            for path in ("/transactions/nonce", "/transactions/authorize"):
                r = await client.post(path, json={}, headers=s.headers(path))
                assert r.status_code == 503, r.text
                assert r.json()["error"] == "temporarily_unavailable"
    finally:
        redis.stop()


async def test_a_passkey_approves_a_withdrawal_bound_to_its_nonce() -> None:
    """The WebAuthn factor (the passkeys seam): the assertion's challenge is issued for the
    transaction nonce, so an assertion made for one approval cannot confirm another."""
    from tests.soft_authenticator import SoftAuthenticator

    settings = settings_for(
        webauthn={"rp_id": "localhost", "origins": ["http://localhost:8000"]}
    )
    async with running_app(settings) as api:
        client, _ = api
        s = await login(client)
        device = SoftAuthenticator(rp_id="localhost", origin="http://localhost:8000")
        r = await client.post("/passkeys/register/options", json={},
                              headers=s.headers("/passkeys/register/options"))
        assert r.status_code == 200, r.text
        r = await client.post("/passkeys/register",
                              json={"credential": device.create(r.json()), "name": "key"},
                              headers=s.headers("/passkeys/register"))
        assert r.status_code == 201, r.text

        async def assertion_for(nonce: str) -> dict:  # type: ignore[type-arg]
            r = await client.post("/passkeys/assert/options", json={"binding": nonce},
                                  headers=s.headers("/passkeys/assert/options"))
            assert r.status_code == 200, r.text
            return dict(device.get(r.json()))

        first, second = await s.nonce(), await s.nonce()
        for_first = await assertion_for(first)
        body = await s.approval_body(nonce=second, otp="unused")
        body.pop("otp")
        r = await s.authorize({**body, "webauthn": for_first})  # made for another approval
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        body = await s.approval_body(nonce=first, otp="unused")
        body.pop("otp")
        r = await s.authorize({**body, "webauthn": for_first, "otp": "123456"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        r = await s.authorize({**body, "webauthn": for_first})
        assert r.status_code == 200, r.text
        claims = await claims_of(api, r.json()["access_token"])
        assert claims["amr"] == ["siwe", "hwk", "mfa"]  # RFC 8176: device-bound key
        assert claims["authorization_details"] == [details()]
