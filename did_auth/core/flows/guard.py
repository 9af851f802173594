"""The login guard seam, as the flows name it (defined in `did_auth.core.policy.guard`)."""

from did_auth.core.policy.guard import LoginGuard, OpenGuard, RequestContext

__all__ = ["LoginGuard", "OpenGuard", "RequestContext"]
