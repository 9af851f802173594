"""The gate assembled from its configuration: the verifier (JWKS, revocation follower, DPoP
replay cache), the check, the metrics and the HTTP routes `/check`, `/healthz`, `/metrics`."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable

from did_auth_verifier.clock import SystemClock
from did_auth_verifier.dpop import DPoPVerifier, InMemoryReplayCache, ReplayCache
from did_auth_verifier.gate.check import Answer, GateCheck
from did_auth_verifier.gate.config import GateConfig
from did_auth_verifier.gate.decisions import Decisions, FollowedFeed
from did_auth_verifier.gate.metrics import GateMetrics
from did_auth_verifier.gate.replay import DeferredReplayCache, RedisReplay
from did_auth_verifier.gate.server import HttpServer, Request, Response, encode_response
from did_auth_verifier.jwks import JWKSCache
from did_auth_verifier.tokens import TokenVerifier

__all__ = ["Gate"]

log = logging.getLogger("did_auth_verifier.gate")

_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
_METRICS_TYPE = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]


def _response(answer: Answer) -> Response:
    return answer.status, answer.headers, answer.body


async def _later(pending: Awaitable[Answer]) -> Response:
    return _response(await pending)


class Gate:
    def __init__(self, config: GateConfig) -> None:
        self.config = config
        self.metrics = GateMetrics()
        jwks_url = config.jwks_url or config.issuer.rstrip("/") + "/.well-known/jwks.json"
        self.jwks = JWKSCache(jwks_url, allow_insecure_http=config.allow_insecure_http)
        self.feed: FollowedFeed | None = None
        if config.follow_revocations:
            self.feed = FollowedFeed(
                config.issuer, interval=config.revocation_interval,
                max_staleness=config.max_staleness,
                allow_insecure_http=config.allow_insecure_http,
            )
        else:
            log.warning("follow_revocations = false: revoked tokens are accepted until they "
                        "expire (UNSAFE)")
        local = InMemoryReplayCache(max_entries=200_000)
        self.replay: RedisReplay | None = None
        cache: ReplayCache = local
        if config.redis_url is not None:
            self.replay = RedisReplay(config.redis_url)
            cache = DeferredReplayCache(local)
        self.verifier = TokenVerifier(
            config.issuer, config.audience, self.jwks, revocations=self.feed,
            follow_revocations=config.follow_revocations, dpop=DPoPVerifier(cache),
            max_staleness=config.max_staleness, allow_insecure_http=config.allow_insecure_http,
        )
        clock = self.verifier.clock
        now = time.time if isinstance(clock, SystemClock) else clock.now
        self.decisions: Decisions[Answer] = Decisions(self.jwks, self.feed, now)
        self.check = GateCheck(config, self.verifier, self.metrics, replay=self.replay,
                               decisions=self.decisions)
        self.server = HttpServer(self.handle)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.server.start(self.config.host, self.config.port)
        loop = asyncio.get_running_loop()
        # Keys and the first read of the feed now, off the event loop; until the feed has
        # been read to its end every check is refused (503), as the verifier does.
        if not await loop.run_in_executor(None, self.jwks.refresh):
            log.warning("JWKS not reachable yet at %s; retried on the first token", self.jwks.url)
        if self.feed is not None:
            await loop.run_in_executor(None, self.feed.start)

    async def close(self) -> None:
        await self.server.close()
        if self.feed is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.feed.stop)
        if self.replay is not None:
            await self.replay.close()

    # -- HTTP -----------------------------------------------------------------------------

    def feed_age(self) -> float | None:
        if self.feed is None:
            return None
        last = self.feed.last_success
        return math.inf if math.isinf(last) else max(0.0, self.verifier.clock.now() - last)

    def handle(self, request: Request) -> Response | bytes | Awaitable[Response]:
        path = request.path
        if path == "/check":
            # nginx auth_request, Traefik and Caddy forward-auth all ask with GET.
            if request.method != "GET":
                return 405, [("Allow", "GET")], b""
            check = self.check
            trusted = check.trusted(request.peer)
            if trusted:
                # the warm path first: a remembered allow decision (gate/decisions.py)
                remembered = check.remembered(request.headers)
                if remembered is not None and remembered.encoded is not None:
                    self.metrics.remembered += 1
                    return remembered.encoded
            result = check.check(trusted, request.headers)
            if type(result) is Answer:
                encoded = result.encoded
                if encoded is None:
                    encoded = result.encoded = encode_response(*_response(result))
                return encoded
            assert not isinstance(result, Answer)
            return _later(result)
        if path == "/healthz":
            return self._health()
        if path == "/metrics":
            return 200, _METRICS_TYPE, self.metrics.render(self.feed_age)
        return 404, _JSON, b'{"error":"not_found"}'

    def _health(self) -> Response:
        age = self.feed_age()
        body: dict[str, object] = {"status": "ok", "routes": len(self.config.routes)}
        status = 200
        if age is not None:
            body["revocation_feed_age"] = None if math.isinf(age) else round(age, 3)
            if age > self.config.max_staleness:
                # Every check is refused while the view is stale: take this gate out.
                status, body["status"] = 503, "revocation feed stale"
        return status, _JSON, json.dumps(body).encode()
