"""The whole DID login through `DidLogin`, reading the ERC-1056 registry on Hardhat."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest

from did_auth.adapters.chain.did_reader import Web3ChainReader
from did_auth.core.clock import FixedClock
from did_auth.core.did.jwt_proof import sign_proof
from did_auth.core.errors import DidAuthError, TemporarilyUnavailable
from did_auth.core.flows.did_login import DidLogin, DidRequest
from did_auth.core.tokens.issue import Grant
from tests.core.did import CHAIN_ID, CountingReader, Key, Registry, claims_of, make_login
from tests.fixtures.hardhat import HardhatNode
from tests.fixtures.servers import settings_for

ZERO = "0x" + "00" * 20


@dataclass
class Flow:
    login: DidLogin
    svc: Any
    clock: FixedClock
    reader: CountingReader
    registry: Registry

    async def proof(self, did: str, key: Key, alg: str = "ES256K-R", **claims: Any) -> str:
        ch = await self.login.challenge("dapp", did)
        now = int(self.clock.now())
        body = {
            "iss": did,
            "aud": ch["audience"],
            "nonce": ch["challenge"],
            "iat": now,
            "exp": now + 120,
            **claims,
        }
        return sign_proof(body, alg=alg, private_key=key.private)

    async def ok(
        self, did: str, key: Key, alg: str = "ES256K-R", **req: Any
    ) -> tuple[dict[str, Any], Grant]:
        proof = await self.proof(did, key, alg)
        return await self.login.verify(DidRequest(client_id="dapp", proof=proof, **req))

    async def refused(self, did: str, key: Key, code: str, **req: Any) -> DidAuthError:
        proof = await self.proof(did, key)
        with pytest.raises(DidAuthError) as exc:
            await self.login.verify(DidRequest(client_id="dapp", proof=proof, **req))
        assert exc.value.code == code, exc.value.description
        return exc.value


@pytest.fixture
async def flow(
    hardhat_node: HardhatNode, registry: Registry, chain_reader: Web3ChainReader
) -> Flow:
    settings = settings_for(
        chains=[
            {"chain_id": CHAIN_ID, "rpc_url": hardhat_node.url, "did_registry": registry.address}
        ]
    )
    # Our clock is at least the chain's (Hardhat runs ahead of the wall clock when it mines
    # several blocks in one second).
    clock = FixedClock(float(max(int(time.time()), registry.chain_time())))
    reader = CountingReader(chain_reader)
    login, svc = await make_login(settings, clock, readers={CHAIN_ID: reader})
    return Flow(login, svc, clock, reader, registry)


async def test_owner_login_and_warm_cost(flow: Flow) -> None:
    owner = Key.new()
    flow.registry.add_delegate(owner, owner.address, "veriKey", Key.new().address, 3600)
    flow.registry.mine()
    response, grant = await flow.ok(owner.ethr, owner, scope="account:read trade:write")
    claims = claims_of(response["access_token"])
    assert claims["sub"] == owner.ethr and claims["amr"] == ["did"]
    assert claims["scope"] == "account:read trade:write" and claims["client_id"] == "dapp"
    assert claims["sid"] == grant.sid and response["refresh_token"]
    flow.reader.reset()
    await flow.ok(owner.ethr, owner)
    assert flow.reader.calls == {"call": 1}  # warm: one pinned read, no log walk


async def test_delegate_login_scopes_and_revocation(flow: Flow) -> None:
    owner, bot = Key.new(), Key.new()
    flow.registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 3600)
    _, grant = await flow.ok(owner.ethr, bot, scope="account:read trade:write")
    assert grant.sub == owner.ethr and grant.scopes == ("account:read", "trade:write")
    # Delegates never get scopes outside `delegate_scopes` (here: wallet:withdraw).
    await flow.refused(owner.ethr, bot, "invalid_scope", scope="wallet:withdraw", otp="000000")
    flow.registry.revoke_delegate(owner, owner.address, "sigAuth", bot.address)
    # Effective at once: the clock may even equal the revocation block's time.
    flow.clock.t = float(flow.registry.chain_time())
    err = await flow.refused(owner.ethr, bot, "access_denied")
    assert err.reason == "not_authentication_key"
    await flow.ok(owner.ethr, owner)


async def test_expired_delegate(flow: Flow) -> None:
    owner, bot = Key.new(), Key.new()
    flow.registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 30)
    valid_to = flow.registry.chain_time() + 30
    flow.clock.t = float(valid_to - 5)
    await flow.ok(owner.ethr, bot)
    # Validity is judged at the later of the block's time and our clock: an idle chain's
    # old last block does not keep an expired delegate alive.
    flow.clock.t = float(valid_to + 1)
    await flow.refused(owner.ethr, bot, "access_denied")


async def test_owner_change(flow: Flow) -> None:
    old, new = Key.new(), Key.new()
    await flow.ok(old.ethr, old)
    flow.registry.change_owner(old, old.address, new.address)
    await flow.refused(old.ethr, old, "access_denied")
    _, grant = await flow.ok(old.ethr, new)
    assert grant.sub == old.ethr and grant.scopes == ("account:read",)
    # The controller is not a delegate: it may ask for the full client scopes.
    await flow.ok(old.ethr, new, scope="trade:write")


async def test_public_key_did(flow: Flow) -> None:
    owner, new = Key.new(), Key.new()
    did = f"did:ethr:0x7a69:{owner.public_compressed}"
    await flow.ok(did, owner, alg="ES256K")  # #controllerKey, verified with the full key
    flow.registry.change_owner(owner, owner.address, new.address)
    await flow.refused(did, owner, "access_denied")
    await flow.ok(did, new)


async def test_deactivated_did(flow: Flow) -> None:
    owner, bot = Key.new(), Key.new()
    flow.registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 3600)
    flow.registry.change_owner(owner, owner.address, ZERO)
    for key in (owner, bot):
        err = await flow.refused(owner.ethr, key, "access_denied")
        assert err.reason == "did_deactivated"


async def test_verikey_delegate(flow: Flow) -> None:
    owner, auditor = Key.new(), Key.new()
    flow.registry.add_delegate(owner, owner.address, "veriKey", auditor.address, 3600)
    await flow.refused(owner.ethr, auditor, "access_denied")


async def test_step_up_with_otp(flow: Flow) -> None:
    owner = Key.new()
    enrollment = await flow.svc.otp.enroll(owner.ethr)
    totp = pyotp.TOTP(enrollment.secret)
    await flow.svc.otp.confirm(owner.ethr, totp.at(flow.clock.now()))
    flow.clock.advance(30)
    await flow.refused(owner.ethr, owner, "invalid_scope", scope="wallet:withdraw")
    response, grant = await flow.ok(
        owner.ethr, owner, scope="wallet:withdraw", otp=totp.at(flow.clock.now())
    )
    assert grant.amr == ("did", "otp")
    assert claims_of(response["access_token"])["amr"] == ["did", "otp"]


async def test_dpop_binding(flow: Flow) -> None:
    owner = Key.new()
    response, _ = await flow.ok(owner.ethr, owner, jkt="x" * 43)
    assert response["token_type"] == "DPoP"
    assert claims_of(response["access_token"])["cnf"] == {"jkt": "x" * 43}


async def test_chain_down_fails_closed_and_keeps_the_challenge(flow: Flow) -> None:
    owner = Key.new()
    proof = await flow.proof(owner.ethr, owner)

    class Down(CountingReader):
        async def call(self, to: str | None, data: bytes, block: Any = "latest") -> bytes:
            raise TemporarilyUnavailable("chain read failed")

    resolver = flow.login.resolver.ethr[CHAIN_ID]
    working = resolver.reader
    resolver.reader = Down(working)
    with pytest.raises(TemporarilyUnavailable):
        await flow.login.verify(DidRequest(client_id="dapp", proof=proof))
    resolver.reader = working
    await flow.login.verify(DidRequest(client_id="dapp", proof=proof))


async def test_session_auth_key_and_recheck(flow: Flow) -> None:
    owner, bot, new_owner = Key.new(), Key.new(), Key.new()
    flow.registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 3600)
    response, grant = await flow.ok(owner.ethr, bot)
    bot_key = f"eip155:{CHAIN_ID}:{bot.address}".lower()
    assert grant.extra == {"auth_key": bot_key}
    assert claims_of(response["access_token"])["auth_key"] == bot_key
    _, owner_grant = await flow.ok(owner.ethr, owner)
    owner_key = owner_grant.extra["auth_key"]
    await flow.login.recheck(owner.ethr, bot_key)
    await flow.login.recheck(owner.ethr, owner_key)
    flow.registry.revoke_delegate(owner, owner.address, "sigAuth", bot.address)
    with pytest.raises(DidAuthError) as exc:
        await flow.login.recheck(owner.ethr, bot_key)
    assert exc.value.code == "access_denied"
    await flow.login.recheck(owner.ethr, owner_key)
    flow.registry.change_owner(owner, owner.address, new_owner.address)
    with pytest.raises(DidAuthError):
        await flow.login.recheck(owner.ethr, owner_key)
    # did:pkh sessions stay valid: the key is the DID.
    k = Key.new()
    _, pkh_grant = await flow.ok(f"did:pkh:eip155:{CHAIN_ID}:{k.address}", k)
    await flow.login.recheck(pkh_grant.sub, pkh_grant.extra["auth_key"])


async def test_attribute_keys(flow: Flow) -> None:
    """`did/pub/<alg>/sigAuth/<enc>` attribute keys authenticate; `veriKey` ones do not."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    owner, secp_bot = Key.new(), Key.new()
    ed_seed, ed_other = Key.new().private, Key.new().private

    def ed_pub(seed: bytes) -> bytes:
        return (
            Ed25519PrivateKey.from_private_bytes(seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )

    secp_pub = bytes.fromhex(secp_bot.public_compressed[2:])
    reg = flow.registry
    reg.set_attribute(owner, owner.address, "did/pub/Secp256k1/sigAuth/hex", secp_pub, 3600)
    reg.set_attribute(owner, owner.address, "did/pub/Ed25519/sigAuth/base64", ed_pub(ed_seed), 3600)
    reg.set_attribute(
        owner, owner.address, "did/pub/Ed25519/veriKey/base64", ed_pub(ed_other), 3600
    )
    _, grant = await flow.ok(owner.ethr, secp_bot, alg="ES256K")
    assert grant.extra["auth_key"] == f"{owner.ethr}#delegate-1"
    _, grant = await flow.ok(owner.ethr, Key(ed_seed), alg="EdDSA", scope="trade:write")
    with pytest.raises(DidAuthError) as exc:
        await flow.ok(owner.ethr, Key(ed_other), alg="EdDSA")
    assert exc.value.code == "access_denied"
    reg.revoke_attribute(owner, owner.address, "did/pub/Ed25519/sigAuth/base64", ed_pub(ed_seed))
    with pytest.raises(DidAuthError) as exc:
        await flow.ok(owner.ethr, Key(ed_seed), alg="EdDSA")
    assert exc.value.code == "access_denied"  # a revoked key the DID's history names
    await flow.ok(owner.ethr, secp_bot, alg="ES256K-R")
