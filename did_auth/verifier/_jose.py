"""`did_auth.verifier._jose` is `did_auth_verifier.jose` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import jose as _module
from did_auth_verifier.jose import *  # noqa: F403

sys.modules[__name__] = _module
