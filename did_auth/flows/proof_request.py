"""What a login request carries besides its proof (an EIP-4361 message and signature, a
DID proof): the client, what it asks for, the step-up code and the DPoP binding."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from did_auth.flows.guard import RequestContext

__all__ = ["ProofRequest"]


@dataclass
class ProofRequest:
    client_id: Any
    _: KW_ONLY
    audience: Any = None
    scope: Any = None
    otp: Any = None
    jkt: str | None = None  # thumbprint of a verified DPoP proof's key (RFC 9449 §6)
    ctx: RequestContext = field(default_factory=RequestContext)
