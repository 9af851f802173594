"""Injected clocks: protocol code never reads the wall clock itself.

One definition for the server and the verifier: the verifier distribution owns it (the
server depends on the verifier, never the other way round)."""

from __future__ import annotations

from did_auth_verifier.clock import Clock, FixedClock, SystemClock

__all__ = ["Clock", "FixedClock", "SystemClock"]
