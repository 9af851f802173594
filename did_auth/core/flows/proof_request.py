"""What a login request carries besides its proof (an EIP-4361 message and signature, a
DID proof): the client, what it asks for, the step-up code and the DPoP binding; and what
every flow that checks a proof holds (`ProofFlow`)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from did_auth.config.settings import Settings
from did_auth.core.clock import Clock
from did_auth.core.flows.guard import LoginGuard, OpenGuard, RequestContext
from did_auth.core.flows.otp import OtpService
from did_auth.core.flows.registry_checks import RegistryGate

__all__ = ["ProofFlow", "ProofRequest"]


@dataclass
class ProofRequest:
    client_id: Any
    _: KW_ONLY
    audience: Any = None
    scope: Any = None
    otp: Any = None
    jkt: str | None = None  # thumbprint of a verified DPoP proof's key (RFC 9449 §6)
    ctx: RequestContext = field(default_factory=RequestContext)


@dataclass
class ProofFlow:
    """A flow that checks a proof (SIWE and DID logins, OTP re-enrolment): its settings,
    clock and second factor, the per-account budgets around the proof (`guard`) and the
    on-chain RevocationRegistry checks (`registry`)."""

    settings: Settings
    clock: Clock
    otp: OtpService
    _: KW_ONLY
    guard: LoginGuard = field(default_factory=OpenGuard)
    registry: RegistryGate | None = None
