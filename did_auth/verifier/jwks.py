"""`did_auth.verifier.jwks` is `did_auth_verifier.jwks` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import jwks as _module
from did_auth_verifier.jwks import *  # noqa: F403

sys.modules[__name__] = _module
