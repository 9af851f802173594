"""HTTP edge (FastAPI): request parsing, the one error mapping, routes."""

from did_auth.api.app import create_app

__all__ = ["create_app"]
