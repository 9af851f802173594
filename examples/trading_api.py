"""A demo trading API protected by did-auth access tokens (`did_auth_verifier`).

    python examples/trading_api.py --issuer http://127.0.0.1:8000 --audience trading-api \
        --port 9000 [--public-url https://api.example] [--max-staleness 30]

Revocations: the API follows the issuer's revocation feed by default, pushed through
{issuer}/revocations/stream (`--revocation-poll`: poll {issuer}/revocations instead), and
answers 503 `temporarily_unavailable` ("the revocation feed is stale ...") while its
view is older than `--max-staleness` seconds (default 30). `--no-follow-revocations` turns
that off and is UNSAFE: revoked tokens are then accepted until they expire.
(`--follow-revocations` is still accepted; it is the default.)

DPoP: a proof's `htu` must be `--public-url` + the path. The default public URL is
`http://<--host>:<--port>` (`http://127.0.0.1:<port>` when listening on all interfaces);
`Host` and `X-Forwarded-*` headers are never used for it, so behind a proxy or a DNS name
pass `--public-url` with the URL clients use.

| route                | scope           | notes                                             |
| -------------------- | --------------- | ------------------------------------------------- |
| GET  /account        | account:read    | balances of the demo account of the token's `sub` |
| POST /orders         | trade:write     | JSON order, validated; returns a demo order id    |
| POST /withdrawals    | wallet:withdraw | only a withdrawal token (RFC 9396 details): once  |
| GET  /healthz        | none            | liveness                                          |

Failures are answered with RFC 6750 `WWW-Authenticate` challenges (RFC 9449 `DPoP` for
DPoP-bound tokens, RFC 9470 `insufficient_user_authentication` for step-up). The access
token is checked before the request body is even parsed. State is in memory only.

Withdrawals: `POST /withdrawals` with JSON `{"asset", "amount", "address", "network"}` takes
only a token that did-auth issued for exactly this withdrawal (`POST /transactions/authorize`:
the wallet's EIP-712 signature plus a second factor; `authorization_details` of type
`withdrawal`), and only once (`did_auth_verifier.withdrawals`): another asset, amount,
address or network is 403 `insufficient_scope`, a second use 401 `invalid_token`. The
strings are compared as signed (`address` is the signed `destination`; `1.5` is not
`1.50`). Used tokens are remembered in memory, or in Redis with `--replay-redis-url` when
several replicas serve the API.
"""

import argparse
import asyncio
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

try:
    import did_auth_verifier  # noqa: F401
except ImportError:  # running from a checkout without `pip install ./verifier`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "verifier"))

import orjson
import uvicorn
from did_auth_verifier import (
    FeedFollower,
    JWKSCache,
    TokenVerifier,
    VerifiedToken,
)
from did_auth_verifier.dpop import ReplayCache
from did_auth_verifier.fastapi import TokenGuard
from did_auth_verifier.withdrawals import Withdrawal, WithdrawalCheck
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_BODY = 16 * 1024
Amount = Annotated[Decimal, Field(gt=0, max_digits=28, decimal_places=8)]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(pattern=r"^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$", examples=["ETH-USDC"])
    side: Literal["buy", "sell"]
    type: Literal["limit", "market"] = "limit"
    quantity: Amount
    price: Amount | None = None
    client_order_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @model_validator(mode="after")
    def _price_matches_type(self) -> Self:
        if self.type == "limit" and self.price is None:
            raise ValueError("a limit order needs a price")
        if self.type == "market" and self.price is not None:
            raise ValueError("a market order takes no price")
        return self


class WithdrawalIn(BaseModel):
    """The withdrawal as the wallet signed it: strings, compared exactly (never parsed into
    numbers, which would make `1.5` and `1.50` the same request)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    asset: str = Field(pattern=r"^[A-Z0-9]{2,10}$", examples=["USDC"])
    amount: str = Field(
        pattern=r"^(0|[1-9][0-9]*)(\.[0-9]+)?$", max_length=78, examples=["250.00"]
    )
    address: str = Field(pattern=r"^[A-Za-z0-9:._-]{1,128}$")
    network: str = Field(pattern=r"^[A-Za-z0-9:._-]{1,64}$", examples=["ethereum"])


Model = TypeVar("Model", bound=BaseModel)


class BadBody(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("error_description", "invalid request"))
        self.status = status
        self.body = body


async def _bad_body(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadBody)
    return JSONResponse(exc.body, status_code=exc.status)


async def _parse_body(request: Request, model: type[Model]) -> Model:
    """Parse the JSON body only after authentication succeeded (smaller unauthenticated
    attack surface)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise BadBody(413, {"error": "invalid_request", "error_description": "body too large"})
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise BadBody(413, {"error": "invalid_request", "error_description": "body too large"})
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as exc:
        errors = orjson.loads(exc.json(include_url=False, include_input=False))
        raise BadBody(
            422,
            {"error": "invalid_request", "error_description": "invalid body", "errors": errors},
        ) from None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def create_app(
    verifier: TokenVerifier,
    *,
    step_up_max_age: float = 300.0,
    public_url: str | None = None,
    feed: FeedFollower | None = None,
    prefetch_jwks: bool = True,
    withdrawal_replay: ReplayCache | None = None,
) -> FastAPI:
    """The trading API around `verifier` (tests inject a verifier with a fake clock/JWKS).
    `withdrawal_replay`: where used withdrawal tokens are remembered (default: memory)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if prefetch_jwks:
            # Warm the key cache; failure is fine (requests then answer 503 until it works).
            await asyncio.to_thread(verifier.jwks.refresh)
        # The verifier's own revocation follower (the default), then an injected one.
        await asyncio.to_thread(verifier.start)
        if feed is not None:
            await asyncio.to_thread(feed.start)
        try:
            yield
        finally:
            if feed is not None:
                await asyncio.to_thread(feed.stop)
            await asyncio.to_thread(verifier.close)

    app = FastAPI(title="did-auth demo trading API", version="0.1.0", lifespan=lifespan)
    guard = TokenGuard(
        verifier, realm=verifier.audience, public_url=public_url, step_up_max_age=step_up_max_age
    )
    guard.install(app)
    app.add_exception_handler(BadBody, _bad_body)
    withdrawal_check = WithdrawalCheck(
        audience=verifier.audience, replay=withdrawal_replay, clock=verifier.clock
    )

    balances: dict[str, dict[str, str]] = {}
    orders: dict[str, list[dict[str, Any]]] = {}
    withdrawals: dict[str, list[dict[str, Any]]] = {}

    def account_of(sub: str) -> dict[str, str]:
        return balances.setdefault(sub, {"USDC": "10000.00", "ETH": "5.0"})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/account")
    async def account(
        token: Annotated[VerifiedToken, Depends(guard.require_scopes("account:read"))],
    ) -> dict[str, Any]:
        return {
            "sub": token.sub,
            "client_id": token.client_id,
            "scopes": sorted(token.scopes),
            "token_type": token.token_type,
            "balances": account_of(token.sub),
            "open_orders": len(orders.get(token.sub, [])),
        }

    @app.post("/orders", status_code=201, openapi_extra=_schema(OrderIn))
    async def place_order(
        request: Request,
        token: Annotated[VerifiedToken, Depends(guard.require_scopes("trade:write"))],
    ) -> dict[str, Any]:
        order = await _parse_body(request, OrderIn)
        record = {
            "order_id": "ord_" + secrets.token_hex(12),
            "status": "accepted",
            "symbol": order.symbol,
            "side": order.side,
            "type": order.type,
            "quantity": str(order.quantity),
            "price": str(order.price) if order.price is not None else None,
            "client_order_id": order.client_order_id,
        }
        orders.setdefault(token.sub, []).append(record)
        return record

    @app.post("/withdrawals", status_code=202, openapi_extra=_schema(WithdrawalIn))
    async def withdraw(
        request: Request,
        token: Annotated[VerifiedToken, Depends(guard.require_scopes("wallet:withdraw"))],
    ) -> dict[str, Any]:
        withdrawal = await _parse_body(request, WithdrawalIn)
        # Exactly the withdrawal the wallet signed (RFC 9396 authorization_details), once.
        await guard.check_withdrawal(
            token,
            withdrawal_check,
            Withdrawal(
                asset=withdrawal.asset,
                amount=withdrawal.amount,
                destination=withdrawal.address,
                network=withdrawal.network,
            ),
        )
        record = {
            "withdrawal_id": "wd_" + secrets.token_hex(12),
            "status": "pending",
            "asset": withdrawal.asset,
            "amount": withdrawal.amount,
            "address": withdrawal.address,
            "network": withdrawal.network,
        }
        withdrawals.setdefault(token.sub, []).append(record)
        return record

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", required=True, help="did-auth issuer URL (the `iss`)")
    parser.add_argument("--audience", required=True, help="this API's `aud`, e.g. trading-api")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--jwks-url", help="default: {issuer}/.well-known/jwks.json")
    parser.add_argument(
        "--follow-revocations",
        action="store_true",
        help="follow {issuer}/revocations (the default; kept for compatibility)",
    )
    parser.add_argument(
        "--no-follow-revocations",
        action="store_true",
        help="UNSAFE: do not follow the issuer's revocation feed; revoked tokens are then "
        "accepted until they expire",
    )
    parser.add_argument("--revocation-interval", type=float, default=1.0)
    parser.add_argument(
        "--revocation-poll",
        action="store_true",
        help="poll {issuer}/revocations every --revocation-interval seconds instead of "
        "following the pushed stream {issuer}/revocations/stream (the default)",
    )
    parser.add_argument(
        "--max-staleness",
        type=float,
        default=30.0,
        help="refuse every token (503) while the revocation view is older than this (s)",
    )
    parser.add_argument(
        "--public-url",
        help="the URL clients use for this API; DPoP proofs must name it (htu). Default: "
        "http://HOST:PORT (http://127.0.0.1:PORT when HOST is a wildcard); never taken "
        "from Host / X-Forwarded-* headers",
    )
    parser.add_argument("--step-up-max-age", type=float, default=300.0)
    parser.add_argument(
        "--replay-redis-url",
        help="remember used withdrawal tokens in this Redis (replicas share it; needs the "
        "verifier's redis extra). Default: in memory, one process",
    )
    parser.add_argument("--leeway", type=float, default=30.0)
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        help="a browser origin allowed to call this API (repeatable), e.g. the demo dApp's",
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain-http issuer URLs on non-loopback hosts (trusted networks only)",
    )
    args = parser.parse_args(argv)

    try:
        insecure = args.allow_insecure_http
        if args.jwks_url:
            jwks = JWKSCache(args.jwks_url, allow_insecure_http=insecure)
        else:
            jwks = JWKSCache.for_issuer(args.issuer, allow_insecure_http=insecure)
        if args.no_follow_revocations:
            print(
                "trading_api: WARNING --no-follow-revocations: revoked tokens are accepted "
                "until they expire",
                file=sys.stderr,
            )
        verifier = TokenVerifier(
            args.issuer,
            args.audience,
            jwks,
            leeway=args.leeway,
            follow_revocations=not args.no_follow_revocations,
            max_staleness=args.max_staleness,
            revocation_interval=args.revocation_interval,
            allow_insecure_http=insecure,
            revocation_stream=not args.revocation_poll,
        )
        public_url = args.public_url or default_public_url(args.host, args.port)
        replay: ReplayCache | None = None
        if args.replay_redis_url:
            from did_auth_verifier.redis_replay import RedisReplayCache

            replay = RedisReplayCache(args.replay_redis_url)
        app = create_app(
            verifier,
            step_up_max_age=args.step_up_max_age,
            public_url=public_url,
            withdrawal_replay=replay,
        )
    except ValueError as exc:
        print(f"trading_api: {exc} [flags: --allow-insecure-http, --public-url]", file=sys.stderr)
        return 1
    if args.cors_origin:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=args.cors_origin,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "dpop"],
            expose_headers=["WWW-Authenticate"],
        )
    print(f"trading API for {args.audience} (issuer {args.issuer}) at {public_url}", flush=True)
    # No proxy headers: nothing here trusts X-Forwarded-* (the DPoP htu is `public_url`).
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=False)
    return 0


def default_public_url(host: str, port: int) -> str:
    """`http://host:port`, with loopback for a wildcard listen address."""
    if host in ("", "0.0.0.0", "::", "[::]"):  # noqa: S104 - comparing, not binding
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


if __name__ == "__main__":
    raise SystemExit(main())
