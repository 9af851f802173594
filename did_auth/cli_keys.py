"""`did-auth keys list | rotate | retire` and the start-up check of a PKCS#11 token.

Both backends share the semantics: `rotate` publishes the new key `--publish-ahead`
seconds before it signs and keeps the old one until its last token has expired;
`rotate --compromised` replaces the ring by a key that signs now (no overlap); `retire`
drops the keys whose last token has expired (or `--kid KID` now) and destroys them (in a
token: C_DestroyObject). Replicas see every change through the store within 5 s.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from did_auth.config.settings import Settings
from did_auth.core.clock import SystemClock
from did_auth.core.ports.store import Store

__all__ = ["check_token", "run_keys"]


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def check_token(settings: Settings, store: Store) -> str | None:
    """With `[signing] backend = "pkcs11"`: the module loads, the token is there, the PIN
    logs in, the key-encryption key exists (created at the first start) and every key of
    the ring is in the token. None, or the one line saying what is wrong."""
    try:
        from did_auth.adapters.hsm import HsmUnavailable, open_hsm
    except ImportError:
        return (
            'signing.backend = "pkcs11" needs the PKCS#11 binding: pip install '
            "'did-auth[hsm]' (python-pkcs11)"
        )
    from did_auth.core.tokens.keys import KeyRing

    try:
        hsm = open_hsm(settings.signing)
    except HsmUnavailable as exc:
        return exc.detail
    try:
        ring = KeyRing(
            store, hsm.backend, SystemClock(), alg=settings.key_alg,
            max_token_ttl=settings.access_token_ttl,
        )
        await ring.load()
        ring.check()
    except HsmUnavailable as exc:
        return (
            f"{exc.detail} (a key of the ring is not in the token: restore it, or withdraw "
            "the ring with `did-auth keys rotate --compromised`)"
        )
    finally:
        hsm.close()
    return None


async def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    from did_auth.core.tokens.keys import REFRESH_INTERVAL
    from did_auth.services import build_services

    if args.action == "rotate" and not args.compromised and args.publish_ahead <= REFRESH_INTERVAL:
        print(f"did-auth: --publish-ahead must be more than {REFRESH_INTERVAL:g} seconds",
              file=sys.stderr)
        return 1
    svc = build_services(settings)
    try:
        if args.action == "rotate" and args.compromised:
            # No load first: a leaked or deleted key must not stop its own withdrawal.
            new = await svc.keys.replace_compromised()
            print(f"replaced: new key {new.kid} signs now; every old key is withdrawn from "
                  "the JWKS (replicas within 5 s); revoke the sessions at risk")
        elif args.action == "rotate":
            new = await svc.keys.rotate(publish_ahead=args.publish_ahead)
            print(f"rotated: new key {new.kid} signs from {_ts(new.active_from)}")
        elif args.action == "retire":
            try:
                gone = await svc.keys.retire(args.kid)
            except ValueError as exc:
                print(f"did-auth: {exc}", file=sys.stderr)
                return 1
            for k in gone:
                print(f"retired: {k.kid} (withdrawn from the JWKS and destroyed)")
            if not gone:
                print("retired: none (no key's last token has expired yet)")
        else:
            await svc.keys.load()
        backend = svc.keys.signer.name
        for k in svc.keys.keys:
            state = "current" if k.retire_at is None else f"retires {_ts(k.retire_at)}"
            print(f"{k.kid}  {k.alg}  {backend}  active from {_ts(k.active_from)}  {state}")
    finally:
        await svc.close()
    return 0
