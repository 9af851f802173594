"""`did_auth.verifier.errors` is `did_auth_verifier.errors` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import errors as _module
from did_auth_verifier.errors import *  # noqa: F403

sys.modules[__name__] = _module
