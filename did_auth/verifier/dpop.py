"""`did_auth.verifier.dpop` is `did_auth_verifier.dpop` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import dpop as _module
from did_auth_verifier.dpop import *  # noqa: F403

sys.modules[__name__] = _module
