"""Waiting on a condition, not on the clock: tests poll until something is true or a
deadline passes, instead of sleeping a fixed time and hoping it happened by then.

A fixed sleep is either too short (a flaky test on a loaded machine) or too long (wall time
spent for nothing); a poll returns as soon as the condition holds and fails loudly, naming
what it waited for, when it never does.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["wait_until", "wait_until_async"]

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, *,
    what: str = "",
) -> T:
    """Call `predicate` until it returns a truthy value (returned) or `timeout` seconds pass
    (AssertionError). Exceptions from `predicate` propagate."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate!r}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]], timeout: float = 10.0, interval: float = 0.02, *,
    what: str = "",
) -> T:
    """`wait_until` for the event loop: `predicate` may be a plain or an async callable; the
    loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate!r}")
        await asyncio.sleep(interval)
