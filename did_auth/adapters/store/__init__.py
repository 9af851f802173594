"""State that must be shared by replicas: nonces, sessions, refresh tokens, keys, limits."""

from did_auth.adapters.store.factory import open_store
from did_auth.core.ports.store import Store

__all__ = ["Store", "open_store"]
