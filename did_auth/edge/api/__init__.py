"""HTTP edge (FastAPI): request parsing, the one error mapping, routes."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): every uvicorn worker unpickles did_auth.edge.api.header_timeout's protocol
    # before its health-check thread starts, so importing this package must not import the
    # whole application (web3, eth-account: seconds on a loaded machine, and the supervisor
    # kills a worker that does not answer its ping within 5 s).
    if name == "create_app":
        from did_auth.edge.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
