"""`did_auth.verifier.fastapi` is `did_auth_verifier.fastapi` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import fastapi as _module
from did_auth_verifier.fastapi import *  # noqa: F403

sys.modules[__name__] = _module
