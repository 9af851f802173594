"""OtpService keyed by the account (`account_key`), unit level (memory store): a factor
stored before one key per wallet (keyed by the SIWE subject) is adopted as the account's,
every name of the wallet uses it, and one code passes once (compare-and-set)."""

from __future__ import annotations

import base64
import os

import orjson
import pyotp
import pytest

from did_auth.adapters.store.memory import MemoryStore
from did_auth.core.clock import FixedClock
from did_auth.core.errors import AccessDenied, InvalidGrant
from did_auth.core.flows.otp import OtpService
from did_auth.core.flows.revocations import account_key
from did_auth.core.tokens.kek import Sealer

ADDRESS = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
T = 1_800_000_000.0


def test_account_key_names_one_wallet_once() -> None:
    key = f"eip155:{ADDRESS.lower()}"
    for name in (
        ADDRESS, ADDRESS.lower(), f"did:pkh:eip155:1:{ADDRESS}",
        f"did:pkh:eip155:31337:{ADDRESS.lower()}", f"did:ethr:{ADDRESS}",
        f"did:ethr:0x7a69:{ADDRESS}", f"did:ethr:polygon:{ADDRESS.lower()}",
    ):
        assert account_key(name) == key, name
    did_key = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    assert account_key(did_key) == did_key


async def test_legacy_factor_is_adopted_and_serves_every_name() -> None:
    store, sealer, clock = MemoryStore(), Sealer(os.urandom(32)), FixedClock(T)
    otp = OtpService(store, sealer, clock, issuer_name="t")
    legacy_sub = f"did:pkh:eip155:31337:{ADDRESS}"
    secret = pyotp.random_base32()
    record = {"active": True, "last_step": -1,
              "sealed": base64.b64encode(sealer.seal(secret.encode(), legacy_sub.encode())).decode()}
    await store.put(f"da:{{otp:{legacy_sub}}}:secret", orjson.dumps(record), 3600)

    assert not await otp.enrolled(f"did:ethr:0x7a69:{ADDRESS}")  # not adopted through an alias
    assert await otp.enrolled(legacy_sub)  # adopted by its own subject ...
    assert await otp.enrolled(f"did:ethr:0x7a69:{ADDRESS}")  # ... then the account's
    code = pyotp.TOTP(secret).at(T)
    await otp.verify(f"did:pkh:eip155:1:{ADDRESS}", code)
    with pytest.raises(InvalidGrant):  # RFC 6238 §5.2: the same code passes once
        await otp.verify(legacy_sub, code)


async def test_no_factor_for_another_wallet() -> None:
    otp = OtpService(MemoryStore(), Sealer(os.urandom(32)), FixedClock(T), issuer_name="t")
    with pytest.raises(AccessDenied):
        await otp.verify(f"did:pkh:eip155:1:{ADDRESS}", "123456")
