"""`did_auth.verifier.tokens` is `did_auth_verifier.tokens` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import tokens as _module
from did_auth_verifier.tokens import *  # noqa: F403

sys.modules[__name__] = _module
