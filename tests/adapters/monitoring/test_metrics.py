"""Prometheus text format 0.0.4: the exposition parses, histograms are cumulative."""

from __future__ import annotations

import math
import re
import threading

import pytest

from did_auth.adapters.monitoring.metrics import (
    CONTENT_TYPE,
    METRICS,
    REGISTRY,
    AnomalyKind,
    Counter,
    DidAuthMetrics,
    Registry,
)

Sample = tuple[str, frozenset[tuple[str, str]]]

_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})?'
    r" (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|Inf|NaN))$"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def _unescape(v: str) -> str:
    return re.sub(r"\\([\\\"n])", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text: str) -> tuple[dict[str, str], dict[str, str], dict[Sample, float]]:
    """A strict little parser of the 0.0.4 text format: (help, type, samples)."""
    assert text.endswith("\n")
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    samples: dict[Sample, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert name not in helps
            helps[name] = doc
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}
            assert name not in types
            types[name] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"bad sample line: {line!r}"
            labels = frozenset(
                (k, _unescape(v)) for k, v in _LABEL.findall(m.group("labels") or "")
            )
            key = (m.group("name"), labels)
            assert key not in samples, f"duplicate sample {key}"
            raw = m.group("value")
            samples[key] = float(raw.replace("Inf", "inf"))
            base = re.sub(r"_(bucket|sum|count)$", "", m.group("name"))
            assert m.group("name") in types or base in types, "sample before its TYPE"
    return helps, types, samples


def test_counter_and_gauge_exposition_with_escaping() -> None:
    reg = Registry()
    c = reg.counter("t_requests_total", "Requests.\nSecond line \\ here.", ("route", "status"))
    c.labels(route="/siwe/verify", status="200").inc()
    c.labels("/siwe/verify", "200").inc(2)
    c.labels(route='we"ird\\path\n', status="429").inc()
    g = reg.gauge("t_lag_blocks", "Lag.", ("chain",))
    g.labels(chain="31337").set(5)
    g.labels(chain="31337").dec(2)
    g.labels(chain="1").inc()
    plain = reg.counter("t_errors_total", "Errors.")
    text = reg.expose()
    helps, types, samples = parse(text)
    assert helps["t_requests_total"] == "Requests.\\nSecond line \\\\ here."
    assert types == {"t_requests_total": "counter", "t_lag_blocks": "gauge",
                     "t_errors_total": "counter"}
    assert samples[("t_requests_total", frozenset({("route", "/siwe/verify"),
                                                   ("status", "200")}))] == 3
    assert samples[("t_requests_total", frozenset({("route", 'we"ird\\path\n'),
                                                   ("status", "429")}))] == 1
    assert samples[("t_lag_blocks", frozenset({("chain", "31337")}))] == 3
    assert samples[("t_lag_blocks", frozenset({("chain", "1")}))] == 1
    assert samples[("t_errors_total", frozenset())] == 0  # unlabelled: present at 0
    plain.inc()
    assert parse(reg.expose())[2][("t_errors_total", frozenset())] == 1


def test_histogram_buckets_are_cumulative() -> None:
    reg = Registry()
    h = reg.histogram("t_duration_seconds", "Latency.", ("route",), buckets=(0.1, 0.5, 1))
    for v in (0.05, 0.1, 0.2, 0.7, 3.0):  # 0.1 lands in le="0.1": bounds are inclusive
        h.labels(route="/token").observe(v)
    with h.labels(route="/jwks").time():
        pass
    _, types, samples = parse(reg.expose())
    assert types["t_duration_seconds"] == "histogram"

    def s(name: str, route: str, le: str | None = None) -> float:
        labels = {("route", route)} | ({("le", le)} if le else set())
        return samples[(name, frozenset(labels))]

    buckets = [s("t_duration_seconds_bucket", "/token", le) for le in ("0.1", "0.5", "1.0",
                                                                       "+Inf")]
    assert buckets == [2, 3, 4, 5]
    assert buckets == sorted(buckets)
    assert s("t_duration_seconds_count", "/token") == 5 == buckets[-1]
    assert s("t_duration_seconds_sum", "/token") == pytest.approx(4.05)
    assert s("t_duration_seconds_count", "/jwks") == 1
    assert s("t_duration_seconds_bucket", "/jwks", "0.1") == 1


def test_predefined_metrics_expose_and_parse() -> None:
    m = DidAuthMetrics()
    m.http_requests.labels(route="/siwe/verify", method="POST", status="429").inc()
    m.http_request_duration.labels(route="/siwe/verify").observe(0.012)
    m.logins.labels(method="siwe", outcome="success").inc()
    m.tokens_issued.labels(grant="refresh_token").inc()
    m.rate_limited.labels(bucket="verify_per_ip").inc()
    m.rpc_calls.labels(chain="31337", outcome="ok").inc()
    m.redis_errors.inc()
    m.watcher_lag.labels(chain="31337").set(2)
    m.anomalies.labels(kind=AnomalyKind.REPLAY).inc()
    helps, types, samples = parse(m.registry.expose())
    assert types == {
        "didauth_http_requests_total": "counter",
        "didauth_http_request_duration_seconds": "histogram",
        "didauth_client_disconnects_total": "counter",
        "didauth_logins_total": "counter",
        "didauth_tokens_issued_total": "counter",
        "didauth_rate_limited_total": "counter",
        "didauth_rpc_calls_total": "counter",
        "didauth_redis_errors_total": "counter",
        "didauth_watcher_lag_blocks": "gauge",
        "didauth_anomalies_total": "counter",
        "didauth_withdrawal_approvals_total": "counter",
    }
    assert all(helps[name] for name in types)
    for kind in ("replay", "signature_failure_burst", "revoked_use", "refresh_reuse"):
        expected = 1 if kind == "replay" else 0
        assert samples[("didauth_anomalies_total", frozenset({("kind", kind)}))] == expected
    assert samples[("didauth_redis_errors_total", frozenset())] == 1
    # The process-wide registry carries the same metrics.
    assert REGISTRY is METRICS.registry
    assert set(parse(REGISTRY.expose())[1]) == set(types)
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_concurrent_updates_are_exact() -> None:
    reg = Registry()
    c = reg.counter("t_hits_total", "Hits.", ("k",))
    h = reg.histogram("t_obs", "Obs.")

    def work() -> None:
        child = c.labels(k="x")
        for _ in range(5000):
            child.inc()
            h.observe(0.3)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _, _, samples = parse(reg.expose())
    assert samples[("t_hits_total", frozenset({("k", "x")}))] == 40_000
    assert samples[("t_obs_count", frozenset())] == 40_000
    assert samples[("t_obs_bucket", frozenset({("le", "0.25")}))] == 0
    assert samples[("t_obs_bucket", frozenset({("le", "0.5")}))] == 40_000


def test_label_sets_are_bounded() -> None:
    c = Counter("t_bounded_total", "Bounded.", ("chain",), max_series=3)
    for i in range(10):
        c.labels(chain=str(i)).inc()
    reg = Registry()
    reg.register(c)
    _, _, samples = parse(reg.expose())
    assert len(samples) == 4  # 3 real series and the overflow series
    assert samples[("t_bounded_total", frozenset({("chain", "other")}))] == 7


def test_misuse_is_refused() -> None:
    reg = Registry()
    c = reg.counter("t_x_total", "X.", ("a",))
    with pytest.raises(ValueError):
        reg.counter("t_x_total", "again")
    with pytest.raises(ValueError):
        c.labels(b="1")
    with pytest.raises(ValueError):
        c.labels("1", "2")
    with pytest.raises(ValueError):
        c.inc()  # labelled metric needs .labels()
    with pytest.raises(ValueError):
        c.labels(a="1").inc(-1)
    with pytest.raises(ValueError):
        reg.counter("bad-name", "X.")
    with pytest.raises(ValueError):
        reg.histogram("t_h", "H.", ("le",))
    with pytest.raises(ValueError):
        reg.gauge("t_g", "G.", ("__reserved",))


def test_special_values() -> None:
    reg = Registry()
    g = reg.gauge("t_special", "Special.", ("v",))
    g.labels(v="inf").set(math.inf)
    g.labels(v="ninf").set(-math.inf)
    g.labels(v="nan").set(math.nan)
    g.labels(v="frac").set(0.25)
    _, _, samples = parse(reg.expose())
    assert samples[("t_special", frozenset({("v", "inf")}))] == math.inf
    assert samples[("t_special", frozenset({("v", "ninf")}))] == -math.inf
    assert math.isnan(samples[("t_special", frozenset({("v", "nan")}))])
    assert samples[("t_special", frozenset({("v", "frac")}))] == 0.25
