"""One PKCS#11 token (an HSM, or SoftHSM2 for a trial): the library, a pool of logged-in
sessions per worker process, and recovery after a token error.

Every operation runs through `Pkcs11Token.run(op)`: `op` gets a pooled `TokenSession`.
A PKCS#11 error (token removed, stale handle, device error) drops every session, finalises
and re-initialises the library (C_Finalize / C_Initialize: a token that was removed and
is back is only seen again by a fresh initialisation) and runs `op` once more on a new
session; when that fails too, `HsmUnavailable` (503 `temporarily_unavailable`, never a
fallback to a key in memory). So the first request after the token is back succeeds,
without a restart.

PKCS#11 v2.40 §5.6: the login state is the application's, shared by all its sessions with
the token, so the first session logs in and the others are opened already logged in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as px

from did_auth.core.errors import TemporarilyUnavailable

__all__ = ["HsmUnavailable", "KeyMissing", "Pkcs11Token", "TokenSession"]

log = logging.getLogger("did_auth.adapters.hsm")
_T = TypeVar("_T")


class HsmUnavailable(TemporarilyUnavailable):
    """The token cannot do what is asked now. `detail` is the operator's line (start-up,
    logs); clients see only that signing is unavailable."""

    def __init__(self, detail: str) -> None:
        super().__init__("token signing is unavailable; try again later", reason="hsm_down")
        self.detail = detail


class KeyMissing(HsmUnavailable):
    """The token answers but has no object with this label (deleted?)."""


class TokenSession:
    """A logged-in session and the objects found in it (handles are per session)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._found: dict[tuple[ObjectClass, str], Any] = {}

    def find(self, cls: ObjectClass, label: str, *, cached: bool = True) -> Any:
        """The one object of class `cls` labelled `label`; KeyMissing when none."""
        if cached and (cls, label) in self._found:
            return self._found[(cls, label)]
        found = list(self.session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label}))
        if not found:
            self._found.pop((cls, label), None)
            raise KeyMissing(f"no {cls.name.lower().replace('_', ' ')} labelled {label!r}")
        if len(found) > 1:
            raise HsmUnavailable(
                f"the token holds {len(found)} objects labelled {label!r} of class "
                f"{cls.name}: keep one (every replica must use the same)"
            )
        self._found[(cls, label)] = found[0]
        return found[0]

    def forget(self, label: str) -> None:
        for k in [k for k in self._found if k[1] == label]:
            del self._found[k]

    def close(self) -> None:
        try:
            self.session.close()
        except (px.PKCS11Error, RuntimeError):
            pass


class Pkcs11Token:
    """The token labelled `label` in PKCS#11 library `module`, logged in with `pin`."""

    def __init__(self, module: str, label: str, pin: str) -> None:
        self.module = module
        self.label = label
        self._pin = pin
        self._lib: Any = None
        self._idle: list[TokenSession] = []
        self._open: list[TokenSession] = []
        self._lock = threading.Lock()
        self._stale = False  # an error since the library was (re)initialised
        self._down = False  # the last operation failed (logged once per outage)
        self._was_up = False  # an operation succeeded once (start-up failures are not logged
        # here: the caller says them in one line)

    def _library(self) -> Any:
        if self._lib is None:
            try:
                self._lib = pkcs11.lib(self.module)
            except (px.PKCS11Error, RuntimeError, OSError) as exc:
                raise HsmUnavailable(
                    f"signing.module: cannot load the PKCS#11 library {self.module} ({exc})"
                ) from None
        return self._lib

    def _reset(self) -> None:
        """Drop every session and re-initialise the library (C_Finalize, C_Initialize)."""
        with self._lock:
            sessions, self._open, self._idle = self._open, [], []
        for s in sessions:
            s.close()
        if self._lib is not None:
            try:
                self._lib.reinitialize()
            except (px.PKCS11Error, RuntimeError):
                pass  # the next open says what is wrong
        self._stale = False

    def _new_session(self) -> TokenSession:
        if self._stale:
            self._reset()
        lib = self._library()
        try:
            token = lib.get_token(token_label=self.label)
        except px.NoSuchToken:
            raise HsmUnavailable(
                f"signing.token_label: no token labelled {self.label!r} in {self.module}"
            ) from None
        except px.MultipleTokensReturned:
            raise HsmUnavailable(
                f"signing.token_label: several tokens are labelled {self.label!r}"
            ) from None
        except (px.PKCS11Error, RuntimeError) as exc:
            self._stale = True
            raise HsmUnavailable(
                f"token {self.label!r}: not reachable ({type(exc).__name__})"
            ) from None
        with self._lock:
            first = not self._open
        try:
            session = token.open(rw=True, user_pin=self._pin if first else None)
        except (px.PinIncorrect, px.PinInvalid, px.PinLenRange):
            raise HsmUnavailable(f"token {self.label!r}: wrong PIN (login refused)") from None
        except px.PinLocked:
            raise HsmUnavailable(f"token {self.label!r}: the user PIN is locked") from None
        except (px.PKCS11Error, RuntimeError) as exc:
            self._stale = True
            raise HsmUnavailable(
                f"token {self.label!r}: cannot open a session ({type(exc).__name__})"
            ) from None
        ts = TokenSession(session)
        with self._lock:
            self._open.append(ts)
        return ts

    @contextmanager
    def _session(self) -> Iterator[TokenSession]:
        with self._lock:
            ts = self._idle.pop() if self._idle else None
        if ts is None:
            ts = self._new_session()
        try:
            yield ts
        except KeyMissing:
            with self._lock:
                self._idle.append(ts)  # the session is fine; the object is not there
            raise
        except (px.PKCS11Error, RuntimeError, HsmUnavailable):
            self._stale = True
            raise
        else:
            with self._lock:
                self._idle.append(ts)

    def run(self, op: Callable[[TokenSession], _T]) -> _T:
        """`op` on a pooled session; after a token error, once more on a fresh one. The
        first failure and the recovery of an outage are logged (one line each)."""
        try:
            result = self._run(op)
        except HsmUnavailable as exc:
            if self._was_up and not self._down and not isinstance(exc, KeyMissing):
                log.error("signing token unavailable: %s", exc.detail)
                self._down = True
            raise
        if self._down:
            log.warning("signing token %r is back", self.label)
            self._down = False
        self._was_up = True
        return result

    def _run(self, op: Callable[[TokenSession], _T]) -> _T:
        for attempt in (1, 2):
            try:
                with self._session() as ts:
                    return op(ts)
            except KeyMissing as exc:
                if attempt == 2:
                    raise KeyMissing(f"token {self.label!r}: {exc.detail}") from None
                self._stale = True  # a stale session finds nothing: look again afresh
            except HsmUnavailable:
                if attempt == 2:
                    raise
            except (px.PKCS11Error, RuntimeError) as exc:
                if attempt == 2:
                    raise HsmUnavailable(
                        f"token {self.label!r}: {type(exc).__name__} (removed or failing?)"
                    ) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            sessions, self._open, self._idle = self._open, [], []
        for s in sessions:
            s.close()
