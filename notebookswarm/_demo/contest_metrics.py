"""The real stack's Prometheus metrics, written by every gunicorn worker, merged on scrape.

prometheus_client's multiprocess mode: each worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (the stack's directory) and ``/metrics`` merges them, so
whichever worker answers a scrape reports the whole site. Gauges are ``livesum``: the sum
over the workers alive now (gunicorn's ``child_exit`` hook drops a dead worker's files).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The site's Prometheus metrics; gauges sum over the live workers."""

    def __init__(self) -> None:
        # Not registered in a registry: in multiprocess mode /metrics reads every
        # worker's files, and the kernel that imports this module gets no global metrics.
        self.requests = Counter(
            "http_requests_total", "Requests answered, by endpoint, method and status.",
            ["endpoint", "method", "status"], registry=None,
        )  # fmt: skip
        self.duration = Histogram(
            "http_request_duration_seconds", "Time to answer a request, by endpoint.",
            ["endpoint"], buckets=_BUCKETS, registry=None,
        )  # fmt: skip
        self.query = Histogram(
            "db_query_duration_seconds", "Time holding a pooled connection, by endpoint.",
            ["endpoint"], buckets=_BUCKETS, registry=None,
        )  # fmt: skip
        self.workers = Gauge(
            "app_workers", "Request slots: sync workers, or threads of threaded workers.",
            registry=None, multiprocess_mode="livesum",
        )  # fmt: skip
        self.busy = Gauge(
            "app_workers_busy", "Request slots answering a request now.",
            registry=None, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_size = Gauge(
            "db_pool_size", "Connections the workers' pools may hold.",
            registry=None, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_in_use = Gauge(
            "db_pool_in_use", "Pooled connections lent to a request now.",
            registry=None, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_waiting = Gauge(
            "db_pool_waiting", "Requests waiting for a pooled connection now.",
            registry=None, multiprocess_mode="livesum",
        )  # fmt: skip
        self.cache = Counter(
            "app_cache_requests_total", "Cache look-ups by result (hit or miss).",
            ["result"], registry=None,
        )  # fmt: skip


def exposition() -> bytes:
    """Return the Prometheus text of every worker, merged."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
