"""The gate's Prometheus text exposition (format 0.0.4), written by hand: a few counters, one
latency histogram and the revocation feed's age, with no client library."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

__all__ = ["GateMetrics"]

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
OUTCOMES = ("allowed", "unauthenticated", "forbidden", "unavailable")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class GateMetrics:
    """Single event loop: plain integers, no locks."""

    def __init__(self) -> None:
        self.checks: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.denials: dict[str, int] = {}
        self._bucket_counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self._count = 0
        # Allowed checks answered from a remembered decision (gate/decisions.py): counted
        # as allowed, not timed (a dictionary lookup).
        self.remembered = 0

    def observe(self, outcome: str, reason: str, seconds: float) -> None:
        self.checks[outcome] += 1
        if outcome != "allowed":
            self.denials[reason] = self.denials.get(reason, 0) + 1
        self._bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sum += seconds
        self._count += 1

    def render(self, feed_age: Callable[[], float | None]) -> bytes:
        out = [
            "# HELP didauth_gate_checks_total Gateway checks answered, by outcome "
            "(allowed 200, unauthenticated 401, forbidden 403, unavailable 503).",
            "# TYPE didauth_gate_checks_total counter",
        ]
        counts = dict(self.checks, allowed=self.checks["allowed"] + self.remembered)
        out += [f'didauth_gate_checks_total{{outcome="{o}"}} {n}' for o, n in counts.items()]
        out += [
            "# HELP didauth_gate_remembered_total Allowed checks answered from a remembered "
            "decision (same bearer token, method and URI; nothing changed since).",
            "# TYPE didauth_gate_remembered_total counter",
            f"didauth_gate_remembered_total {self.remembered}",
        ]
        out += [
            "# HELP didauth_gate_denials_total Denied checks by the verifier's reason.",
            "# TYPE didauth_gate_denials_total counter",
        ]
        out += [f'didauth_gate_denials_total{{reason="{_label(r)}"}} {n}'
                for r, n in sorted(self.denials.items())]
        out += [
            "# HELP didauth_gate_check_seconds Time to decide one check inside the gate "
            "(checks not answered from a remembered decision).",
            "# TYPE didauth_gate_check_seconds histogram",
        ]
        running = 0
        for bound, n in zip(BUCKETS, self._bucket_counts, strict=False):
            running += n
            out.append(f'didauth_gate_check_seconds_bucket{{le="{bound:g}"}} {running}')
        out.append(f'didauth_gate_check_seconds_bucket{{le="+Inf"}} {self._count}')
        out.append(f"didauth_gate_check_seconds_sum {self._sum:.6f}")
        out.append(f"didauth_gate_check_seconds_count {self._count}")
        age = feed_age()
        out += [
            "# HELP didauth_gate_revocation_feed_age_seconds Age of the revocation view: seconds "
            "since the feed was last read to its end (+Inf before the first complete read; "
            "absent when revocations are not followed).",
            "# TYPE didauth_gate_revocation_feed_age_seconds gauge",
        ]
        if age is not None:
            shown = "+Inf" if math.isinf(age) else f"{age:.3f}"
            out.append(f"didauth_gate_revocation_feed_age_seconds {shown}")
        return ("\n".join(out) + "\n").encode()
