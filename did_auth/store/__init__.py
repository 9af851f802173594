"""State that must be shared by replicas: nonces, sessions, refresh tokens, keys, limits."""

from did_auth.store.base import Store, open_store

__all__ = ["Store", "open_store"]
