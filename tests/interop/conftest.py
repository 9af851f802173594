"""Fixtures of the third-party client conformance tests."""

from tests.interop.rp_harness import confidential_server, public_server

__all__ = ["confidential_server", "public_server"]
