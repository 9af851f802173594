"""A small Prometheus registry of our own: counters, gauges, histograms, text format 0.0.4.

Implements the Prometheus text-based exposition format, version 0.0.4 (content type
`text/plain; version=0.0.4; charset=utf-8`): per metric a `# HELP` line (backslash and
newline escaped), a `# TYPE` line, then one sample per label set,
`name{label="value",...} value`, label values escaped (`\\`, `"`, newline); histograms as
cumulative `<name>_bucket{...,le="<upper bound>"}` samples ending with `le="+Inf"`, then
`<name>_sum` and `<name>_count`. (`prometheus_client` is not a dependency.)

Thread-safe and cheap: a child (one label set) is looked up once and its update takes one
uncontended lock. A metric accepts at most `max_series` label sets; later new label sets are
folded into one series whose label values are all `"other"`, so input that reaches a label
cannot grow memory without bound (use route *templates*, never raw paths, as `route`).

Several worker processes: each process has its own registry and `/metrics` shows that
process's numbers only (counters start at 0 when a worker starts, which Prometheus
`rate()`/`increase()` handle as a reset). With `--workers N`, scrape each worker separately
(one port or one container per worker) or run one worker per replica; shared, exact
counts of security decisions live in the audit trail, not here.
"""

from __future__ import annotations

import math
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Generic, TypeVar

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "METRICS",
    "REGISTRY",
    "AnomalyKind",
    "Counter",
    "DidAuthMetrics",
    "Gauge",
    "Histogram",
    "Registry",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
OVERFLOW = "other"

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _CounterChild:
    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        with self._lock:
            self._value += amount

    @property
    def value(self) -> float:
        return self._value


class _GaugeChild:
    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def set(self, value: float) -> None:
        with self._lock:
            self._value = float(value)

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value -= amount

    @property
    def value(self) -> float:
        return self._value


class _HistogramChild:
    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds  # ends with +Inf
        self._lock = threading.Lock()
        self._counts = [0] * len(bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect_left(self._bounds, value)  # first bound >= value (le is inclusive)
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    @contextmanager
    def time(self) -> Iterator[None]:
        """Observe the duration of the `with` block, in seconds."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - start)

    def snapshot(self) -> tuple[list[int], float, int]:
        """(cumulative bucket counts, sum, count)."""
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        cumulative = []
        running = 0
        for c in counts:
            running += c
            cumulative.append(running)
        return cumulative, total, running


C = TypeVar("C", _CounterChild, _GaugeChild, _HistogramChild)


class _Metric(Generic[C]):
    kind = "untyped"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        max_series: int = 10_000,
    ) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for ln in labelnames:
            if not _LABEL_RE.match(ln) or ln.startswith("__"):
                raise ValueError(f"invalid label name {ln!r}")
        if len(set(labelnames)) != len(labelnames):
            raise ValueError("duplicate label names")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self.max_series = max_series
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], C] = {}

    def _new_child(self) -> C:
        raise NotImplementedError

    def labels(self, *values: object, **kv: object) -> C:
        """The child for one label set, by position or by name (all labels required)."""
        if values and kv:
            raise ValueError("pass label values by position or by name, not both")
        if kv:
            if set(kv) != set(self.labelnames):
                raise ValueError(f"{self.name} needs labels {self.labelnames}")
            key = tuple(str(kv[n]) for n in self.labelnames)
        else:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} needs labels {self.labelnames}")
            key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is not None:
            return child
        with self._lock:
            child = self._children.get(key)
            if child is None:
                if len(self._children) >= self.max_series:
                    key = (OVERFLOW,) * len(self.labelnames)
                    child = self._children.get(key)
                if child is None:
                    child = self._new_child()
                    self._children[key] = child
            return child

    def _default(self) -> C:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: use .labels()")
        return self.labels()

    def _items(self) -> list[tuple[tuple[str, ...], C]]:
        with self._lock:
            items = list(self._children.items())
        if not self.labelnames and not items:
            items = [((), self.labels())]
        return sorted(items, key=lambda kv: kv[0])

    def _samples(self) -> list[str]:
        raise NotImplementedError

    def expose(self) -> str:
        head = f"# HELP {self.name} {_escape_help(self.help)}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(line + "\n" for line in self._samples())


class Counter(_Metric[_CounterChild]):
    kind = "counter"

    def _new_child(self) -> _CounterChild:
        return _CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        self._default().inc(amount)

    def _samples(self) -> list[str]:
        return [
            f"{self.name}{_labels(self.labelnames, k)} {_fmt(c.value)}" for k, c in self._items()
        ]


class Gauge(_Metric[_GaugeChild]):
    kind = "gauge"

    def _new_child(self) -> _GaugeChild:
        return _GaugeChild()

    def set(self, value: float) -> None:
        self._default().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._default().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._default().dec(amount)

    def _samples(self) -> list[str]:
        return [
            f"{self.name}{_labels(self.labelnames, k)} {_fmt(c.value)}" for k, c in self._items()
        ]


class Histogram(_Metric[_HistogramChild]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_series: int = 10_000,
    ) -> None:
        if "le" in labelnames:
            raise ValueError("'le' is reserved for histogram buckets")
        bounds = sorted(float(b) for b in buckets)
        if not bounds or len(set(bounds)) != len(bounds) or any(math.isnan(b) for b in bounds):
            raise ValueError("histogram buckets must be distinct numbers")
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.buckets = tuple(bounds)
        super().__init__(name, help, labelnames, max_series=max_series)

    def _new_child(self) -> _HistogramChild:
        return _HistogramChild(self.buckets)

    def observe(self, value: float) -> None:
        self._default().observe(value)

    def time(self) -> AbstractContextManager[None]:
        return self._default().time()

    def _samples(self) -> list[str]:
        out: list[str] = []
        for k, child in self._items():
            cumulative, total, count = child.snapshot()
            for bound, c in zip(self.buckets, cumulative, strict=True):
                le = f'le="{_fmt(bound) if math.isinf(bound) else repr(bound)}"'
                out.append(f"{self.name}_bucket{_labels(self.labelnames, k, le)} {c}")
            out.append(f"{self.name}_sum{_labels(self.labelnames, k)} {_fmt(total)}")
            out.append(f"{self.name}_count{_labels(self.labelnames, k)} {count}")
        return out


M = TypeVar("M", Counter, Gauge, Histogram)


class Registry:
    """Metrics in registration order; `expose()` renders them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}

    def register(self, metric: M) -> M:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        return self.register(Counter(name, help, labelnames))

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        return self.register(Gauge(name, help, labelnames))

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        return self.register(Histogram(name, help, labelnames, buckets=buckets))

    def get(self, name: str) -> Counter | Gauge | Histogram | None:
        return self._metrics.get(name)

    def expose(self) -> str:
        """The whole registry in text format 0.0.4 (serve with `CONTENT_TYPE`)."""
        with self._lock:
            metrics = list(self._metrics.values())
        return "".join(m.expose() for m in metrics)


class AnomalyKind:
    REPLAY = "replay"
    SIGNATURE_FAILURE_BURST = "signature_failure_burst"
    REVOKED_USE = "revoked_use"
    REFRESH_REUSE = "refresh_reuse"

    ALL = (REPLAY, SIGNATURE_FAILURE_BURST, REVOKED_USE, REFRESH_REUSE)


class DidAuthMetrics:
    """did-auth's metrics, registered on one registry."""

    def __init__(self, registry: Registry | None = None) -> None:
        r = registry if registry is not None else Registry()
        self.registry = r
        self.http_requests = r.counter(
            "didauth_http_requests_total",
            "HTTP requests by route template, method and status code.",
            ("route", "method", "status"),
        )
        self.client_disconnects = r.counter(
            "didauth_client_disconnects_total",
            "Requests whose client went away before the response started (not answered, "
            "not counted in didauth_http_requests_total), by route template.",
            ("route",),
        )
        self.http_request_duration = r.histogram(
            "didauth_http_request_duration_seconds",
            "HTTP request latency in seconds by route template.",
            ("route",),
        )
        self.logins = r.counter(
            "didauth_logins_total",
            "Login attempts by method (siwe, did) and outcome (success, failure, denied).",
            ("method", "outcome"),
        )
        self.tokens_issued = r.counter(
            "didauth_tokens_issued_total",
            "Access tokens issued by grant (siwe, did, refresh_token).",
            ("grant",),
        )
        self.rate_limited = r.counter(
            "didauth_rate_limited_total",
            "Requests refused by a rate limit or backoff, by bucket.",
            ("bucket",),
        )
        self.rpc_calls = r.counter(
            "didauth_rpc_calls_total",
            "JSON-RPC calls to chain nodes by chain id and outcome (ok, error, timeout).",
            ("chain", "outcome"),
        )
        self.redis_errors = r.counter(
            "didauth_redis_errors_total",
            "Store operations that failed because Redis was unreachable.",
        )
        self.watcher_lag = r.gauge(
            "didauth_watcher_lag_blocks",
            "Blocks between a chain's head and the last block the revocation watcher applied.",
            ("chain",),
        )
        self.withdrawal_approvals = r.counter(
            "didauth_withdrawal_approvals_total",
            "Withdrawal approvals (POST /transactions/authorize) by outcome (success, "
            "failure) and second factor (otp, webauthn, none).",
            ("outcome", "factor"),
        )
        self.anomalies = r.counter(
            "didauth_anomalies_total",
            "Anomaly signals: replay, signature_failure_burst, revoked_use, refresh_reuse.",
            ("kind",),
        )
        for kind in AnomalyKind.ALL:  # present (at 0) before the first one, for alerting
            self.anomalies.labels(kind=kind)

    # `did_auth.core.ports.audit.Counters`: the counters the core bumps.
    def anomaly(self, kind: str) -> None:
        self.anomalies.labels(kind=kind).inc()

    def token_issued(self, grant: str) -> None:
        self.tokens_issued.labels(grant=grant).inc()


REGISTRY = Registry()
METRICS = DidAuthMetrics(REGISTRY)
