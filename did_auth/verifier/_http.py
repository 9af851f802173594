"""`did_auth.verifier._http` is `did_auth_verifier._http` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import _http as _module
from did_auth_verifier._http import *  # noqa: F403

sys.modules[__name__] = _module
