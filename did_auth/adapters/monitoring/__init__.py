"""Monitoring: the audit trail and Prometheus metrics.

- `did_auth.adapters.monitoring.audit`: `AuditLog`, one redacted JSON line per security decision.
- `did_auth.adapters.monitoring.metrics`: a dependency-free Prometheus registry (text format 0.0.4)
  and `METRICS`, did-auth's predefined counters, gauges and histograms.
"""

from did_auth.adapters.monitoring.audit import AuditEvent, AuditLog, Outcome
from did_auth.adapters.monitoring.metrics import (
    CONTENT_TYPE,
    METRICS,
    REGISTRY,
    AnomalyKind,
    DidAuthMetrics,
    Registry,
)

__all__ = [
    "CONTENT_TYPE",
    "METRICS",
    "REGISTRY",
    "AnomalyKind",
    "AuditEvent",
    "AuditLog",
    "DidAuthMetrics",
    "Outcome",
    "Registry",
]
