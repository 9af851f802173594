"""did-auth against the reference JavaScript stack, on the same Hardhat node and registry.

- Documents: npm `ethr-did-resolver` (through `did-resolver`) and our resolver must build
  equal documents (lists compared without regard to order) after every kind of registry
  change: delegate add (sigAuth, veriKey, with validity), expiry, revocation, attribute
  keys and services added and revoked, owner change, deactivation; for address and
  public-key identifiers.
- Proofs: `did-jwt` signs (ES256K-R for did:ethr owner and sigAuth delegate, ES256K,
  EdDSA for did:key, ES256K(-R) for did:pkh) and `DidLogin` accepts them; proofs our
  Python signer makes verify in `did-jwt` against `ethr-did-resolver`.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import pytest
from coincurve import PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from did_auth.adapters.chain.did_reader import Web3ChainReader
from did_auth.core.clock import FixedClock
from did_auth.core.did.ethr import EthrResolver, parse_did_ethr
from did_auth.core.did.jwt_proof import sign_proof
from did_auth.core.did.key import did_key
from did_auth.core.did.pkh import pkh_did
from did_auth.core.errors import DidAuthError
from did_auth.core.flows.did_login import DidRequest
from tests.core.did import CHAIN_ID, Key, Registry, claims_of, make_login, normalise, run_js
from tests.fixtures.hardhat import HardhatNode
from tests.fixtures.servers import CLIENT, settings_for

ZERO = "0x" + "00" * 20


def resolve_op(node: HardhatNode, registry: Registry, did: str, block: int) -> dict[str, Any]:
    return {
        "op": "resolve",
        "rpcUrl": node.url,
        "chainId": CHAIN_ID,
        "registry": registry.address,
        "did": did,
        "blockTag": block,
    }


async def compare(
    node: HardhatNode, registry: Registry, resolver: EthrResolver, dids: list[str]
) -> list[dict[str, Any]]:
    """Resolve `dids` with both resolvers at the current head; assert equal documents."""
    block = registry.block_number()
    js = run_js([resolve_op(node, registry, did, block) for did in dids])
    ours = []
    for did, ref in zip(dids, js, strict=True):
        assert "error" not in ref["didResolutionMetadata"], ref
        res = await resolver.resolve(parse_did_ethr(did))
        assert res.block == block  # nothing was mined in between: the same state
        doc = res.document.to_json()
        assert normalise(doc) == normalise(ref["didDocument"]), did
        # Stronger than required: even the order of every list is the reference order.
        assert doc == ref["didDocument"], did
        assert res.deactivated == bool(ref["didDocumentMetadata"].get("deactivated")), did
        ours.append(doc)
    return ours


async def test_documents_equal_the_reference_resolver(
    hardhat_node: HardhatNode, registry: Registry, chain_reader: Web3ChainReader
) -> None:
    resolver = EthrResolver(chain_id=CHAIN_ID, registry=registry.address, reader=chain_reader)
    a, b = Key.new(), Key.new()
    a_did = a.ethr
    b_did = f"did:ethr:0x7a69:{b.public_compressed}"
    bot, auditor, short = Key.new(), Key.new(), Key.new()
    dids = [a_did, b_did]

    await compare(hardhat_node, registry, resolver, dids)  # never changed

    registry.add_delegate(a, a.address, "sigAuth", bot.address, 3600)
    registry.add_delegate(a, a.address, "veriKey", auditor.address, 7200)
    registry.add_delegate(b, b.address, "sigAuth", bot.address, 3600)
    docs = await compare(hardhat_node, registry, resolver, dids)
    assert len(docs[0]["authentication"]) == 2 and len(docs[0]["assertionMethod"]) == 3

    secp = bytes.fromhex(Key.new().public_compressed[2:])
    ed = secrets.token_bytes(32)
    x25519 = secrets.token_bytes(32)
    url = b"https://hubs.example.com/did"
    attrs: list[tuple[str, bytes]] = [
        ("did/pub/Secp256k1/veriKey/hex", secp),
        ("did/pub/Ed25519/veriKey/base64", ed),
        ("did/pub/Ed25519/sigAuth/base58", b"\0" + ed[1:]),
        ("did/pub/Secp256k1/sigAuth", secp),  # no encoding: hex
        ("did/pub/X25519/enc/base64", x25519),
        ("did/pub/RSA/veriKey/pem", b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"),
        ("did/pub/Ed25519/veriKey/raw", ed),  # unknown encoding: `value`
        ("did/svc/HubService", url),
        ("did/svc/Messaging", b'{"uri":"https://m.example.com","accept":["didcomm/v2"]}'),
        ("did/svc/Numeric", b"42"),
        ("not/a/did/attribute", b"ignored"),
    ]
    for name, value in attrs:
        registry.set_attribute(a, a.address, name, value, 3600)
    docs = await compare(hardhat_node, registry, resolver, dids)
    assert len(docs[0]["service"]) == 3 and docs[0]["keyAgreement"]
    assert docs[0]["service"][2]["serviceEndpoint"] == 42

    registry.revoke_delegate(a, a.address, "sigAuth", bot.address)
    registry.revoke_attribute(a, a.address, "did/pub/Ed25519/veriKey/base64", ed)
    registry.revoke_attribute(a, a.address, "did/svc/HubService", url)
    registry.mine()  # the revocation block's own time would still list them (validTo >= now)
    docs = await compare(hardhat_node, registry, resolver, dids)
    assert len(docs[0]["service"]) == 2

    # Expiry (validity 1 s): wait for a block past validTo; both resolvers judge validity at
    # that block's timestamp.
    registry.add_delegate(a, a.address, "sigAuth", short.address, 1)
    registry.add_delegate(b, b.address, "veriKey", short.address, 1)
    t = registry.chain_time()
    while registry.chain_time() < t + 2:
        time.sleep(0.5)
        registry.mine()
    docs = await compare(hardhat_node, registry, resolver, dids)
    assert f"eip155:{CHAIN_ID}:{short.address}" not in str(docs)

    # Re-adding a revoked delegate, after more events (numbering and order).
    registry.add_delegate(a, a.address, "sigAuth", bot.address, 3600)
    await compare(hardhat_node, registry, resolver, dids)

    new_a, new_b = Key.new(), Key.new()
    registry.change_owner(a, a.address, new_a.address)
    registry.change_owner(b, b.address, new_b.address)  # b loses #controllerKey
    docs = await compare(hardhat_node, registry, resolver, dids)
    assert not any(vm["id"].endswith("#controllerKey") for vm in docs[1]["verificationMethod"])

    registry.change_owner(new_a, a.address, ZERO)
    docs = await compare(hardhat_node, registry, resolver, dids)
    assert docs[0]["verificationMethod"] == [] and docs[0]["authentication"] == []


async def test_did_jwt_proofs_are_accepted(
    hardhat_node: HardhatNode, registry: Registry, chain_reader: Web3ChainReader
) -> None:
    owner, bot, auditor = Key.new(), Key.new(), Key.new()
    ed_seed = secrets.token_bytes(32)
    ids = run_js(
        [
            {
                "op": "identifiers",
                "privateKey": owner.hex,
                "chainId": CHAIN_ID,
                "ed25519PrivateKey": ed_seed.hex(),
            }
        ]
    )[0]
    # The identifiers the JS stack derives are ours too.
    secp_pub = PrivateKey(owner.private).public_key.format(compressed=True)
    ed_pub = (
        Ed25519PrivateKey.from_private_bytes(ed_seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    assert ids["ethr"] == owner.ethr
    assert ids["ethrPublicKey"] == f"did:ethr:0x7a69:{owner.public_compressed}"
    assert ids["pkh"] == pkh_did(CHAIN_ID, owner.address)
    assert ids["keySecp256k1"] == did_key("secp256k1", secp_pub)
    assert ids["keyEd25519"] == did_key("Ed25519", ed_pub)

    registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 3600)
    registry.add_delegate(owner, owner.address, "veriKey", auditor.address, 3600)
    settings = settings_for(
        chains=[
            {"chain_id": CHAIN_ID, "rpc_url": hardhat_node.url, "did_registry": registry.address}
        ],
        clients=[{**CLIENT, "delegate_scopes": ["account:read"]}],
    )
    now = int(max(time.time(), registry.chain_time()))
    login, _ = await make_login(settings, FixedClock(now), readers={CHAIN_ID: chain_reader})

    cases: list[tuple[str, Key | bytes, str, bool]] = [
        (ids["ethr"], owner, "ES256K-R", False),
        (ids["ethr"], bot, "ES256K-R", True),
        (ids["ethr"], owner, "ES256K", False),
        (ids["ethrPublicKey"], owner, "ES256K", False),
        (ids["ethrPublicKey"], owner, "ES256K-R", False),
        (ids["pkh"], owner, "ES256K-R", False),
        (ids["pkh"], owner, "ES256K", False),
        (ids["keySecp256k1"], owner, "ES256K", False),
        (ids["keyEd25519"], ed_seed, "EdDSA", False),
        (ids["ethr"], auditor, "ES256K-R", False),  # veriKey: refused below
    ]
    ops = []
    for did, key, alg, _ in cases:
        ch = await login.challenge("dapp", did)
        private = key if isinstance(key, bytes) else key.private
        ops.append(
            {
                "op": "sign",
                "alg": alg,
                "privateKey": private.hex(),
                "issuer": did,
                "payload": {
                    "aud": ch["audience"],
                    "nonce": ch["challenge"],
                    "iat": now,
                    "exp": now + 120,
                },
            }
        )
    signed = run_js(ops)
    for (did, _, alg, is_delegate), out in zip(cases[:-1], signed[:-1], strict=True):
        header = base64.urlsafe_b64decode(out["jwt"].split(".")[0] + "==")
        assert f'"alg":"{alg}"' in header.decode()
        if is_delegate:
            # A bot key gets only `delegate_scopes` (here: account:read); the refusal
            # happens before the challenge is consumed, so the same proof then works.
            with pytest.raises(DidAuthError) as exc:
                await login.verify(DidRequest("dapp", out["jwt"], scope="trade:write"))
            assert exc.value.code == "invalid_scope"
            response, grant = await login.verify(DidRequest("dapp", out["jwt"]))
        else:
            response, grant = await login.verify(
                DidRequest("dapp", out["jwt"], scope="trade:write")
            )
        assert grant.sub == did and grant.amr == ("did",), (did, alg)
        assert claims_of(response["access_token"])["sub"] == did
    with pytest.raises(DidAuthError) as exc:
        await login.verify(DidRequest("dapp", signed[-1]["jwt"]))
    assert exc.value.code == "access_denied"  # the veriKey delegate


async def test_our_proofs_verify_in_did_jwt(hardhat_node: HardhatNode, registry: Registry) -> None:
    owner, bot, auditor = Key.new(), Key.new(), Key.new()
    registry.add_delegate(owner, owner.address, "sigAuth", bot.address, 3600)
    registry.add_delegate(owner, owner.address, "veriKey", auditor.address, 3600)
    now = int(time.time())
    body = {
        "iss": owner.ethr,
        "aud": "trading-api",
        "nonce": "N" * 22,
        "iat": now,
        "exp": now + 120,
    }
    common = {
        "op": "verify",
        "audience": "trading-api",
        "rpcUrl": hardhat_node.url,
        "chainId": CHAIN_ID,
        "registry": registry.address,
    }
    proofs = [
        sign_proof(body, alg="ES256K-R", private_key=owner.private),
        sign_proof(body, alg="ES256K", private_key=owner.private),
        sign_proof(body, alg="ES256K-R", private_key=bot.private),
        sign_proof(body, alg="ES256K-R", private_key=auditor.private),
    ]
    out = run_js([{**common, "jwt": p} for p in proofs])
    assert [o["verified"] for o in out] == [True, True, True, False]
    assert out[0]["signer"] == f"{owner.ethr}#controller"
    assert out[2]["signer"] == f"{owner.ethr}#delegate-1"
