"""`did_auth.verifier.revocations` is `did_auth_verifier.revocations` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import revocations as _module
from did_auth_verifier.revocations import *  # noqa: F403

sys.modules[__name__] = _module
