"""An ASGI wrapper for `did-auth serve`: an exception while the application starts (the
lifespan startup) is one line on stderr, not the traceback Starlette hands to uvicorn."""

from __future__ import annotations

import sys
from typing import Any

from did_auth.core.errors import ConfigError, DidAuthError

__all__ = ["StartupGuard"]


class StartupGuard:
    """Wraps the app (single process) or each worker's app (`--workers N`)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        failed = False

        async def quiet_send(message: Any) -> None:
            nonlocal failed
            if message["type"] == "lifespan.startup.failed":
                failed = True
                message = {"type": message["type"], "message": ""}
            await send(message)

        try:
            await self.app(scope, receive, quiet_send)
        except BaseException as exc:  # reported in one line, then exit 1
            if not failed:
                raise
            text = exc.description if isinstance(exc, DidAuthError) else f"{exc}"
            if isinstance(exc, ConfigError):
                text = "invalid configuration: " + "; ".join(exc.problems)
            print(f"did-auth: cannot start: {text or type(exc).__name__}", file=sys.stderr)
