"""State that must be shared by replicas: nonces, sessions, refresh tokens, keys, limits."""

from did_auth.store.base import Store
from did_auth.store.factory import open_store

__all__ = ["Store", "open_store"]
