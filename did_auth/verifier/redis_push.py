"""`did_auth.verifier.redis_push` is `did_auth_verifier.redis_push` (the same module object)."""

from __future__ import annotations

import sys

from did_auth_verifier import redis_push as _module
from did_auth_verifier.redis_push import *  # noqa: F403

sys.modules[__name__] = _module
