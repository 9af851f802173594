"""The login hot path: `POST /siwe/nonce` and `POST /siwe/verify` without FastAPI's
per-request machinery.

A login is two small requests, and FastAPI's generic path (router scan, dependency
solving, exception and exit-stack middlewares, response serialisation) costs more CPU than
all of did-auth's checks together. This ASGI layer sits innermost among the app's own
middlewares (so the request context, request id, metrics and body-size limit still apply)
and, for those two routes only, reads the JSON body, validates it with the *same* pydantic
model, calls the *same* handler function the FastAPI route calls, and writes the JSON reply
itself (orjson). Nothing about the checks differs: the handlers are shared
(`did_auth.edge.api.routes.siwe`), and they call the login use case (`did_auth.core.flows.login`).

Anything unusual goes the normal way, unchanged: another path or method, a body that is not
`application/json`, or one the model rejects (FastAPI then produces its usual 400), with the
body replayed. A `DidAuthError` is answered by the app's registered handler (audit, metrics,
headers), any other exception propagates to the app's server-error handling, as before.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from did_auth.core.errors import DidAuthError
from did_auth.core.flows.guard import RequestContext
from did_auth.services import Services

__all__ = ["HotPaths", "HotRoute"]

# handler(services, ctx, validated body, DPoP header values, Authorization header value)
#   -> (JSON payload, response headers)
Handler = Callable[
    [Services, RequestContext, Any, list[str], str | None],
    Awaitable[tuple[dict[str, Any], Mapping[str, str]]],
]


@dataclass(frozen=True)
class HotRoute:
    model: type[BaseModel]
    handler: Handler
    route: Any = None  # the FastAPI route, so metrics label the request by its template


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == b"application/json")
    return False


class HotPaths:
    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, HotRoute],
        on_error: Callable[[Request, Any], Any],
        services: Services,
    ) -> None:
        self.app = app
        self.routes = routes
        self.on_error = on_error
        self.services = services  # the app's Services, bound once (no per-request lookup)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if hot is None or scope["method"] != "POST" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return  # the client went away before sending its body
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            model = hot.model.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)  # FastAPI's own 400
            return
        if hot.route is not None:
            scope["route"] = hot.route
        state = scope.setdefault("state", {})
        ctx = state.get("ctx")
        if not isinstance(ctx, RequestContext):
            ctx = RequestContext()
        state["client_id"] = getattr(model, "client_id", None)
        dpop: list[str] = []
        authorization: str | None = None
        for k, v in scope["headers"]:
            if k == b"dpop":
                dpop.append(v.decode("latin-1"))
            elif k == b"authorization":
                authorization = v.decode("latin-1")
        try:
            # The same handler as the FastAPI route: client authentication included.
            payload, headers = await hot.handler(self.services, ctx, model, dpop, authorization)
        except DidAuthError as exc:
            response = self.on_error(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
            return
        content = orjson.dumps(payload)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw.append((b"content-length", str(len(content)).encode()))
        raw.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": content})


def _replay(body: bytes, receive: Receive) -> Receive:
    done = False

    async def replay() -> Message:
        nonlocal done
        if not done:
            done = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
