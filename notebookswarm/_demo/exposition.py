"""The demo site's ``/metrics`` in Prometheus text exposition, read from its own counters.

The site already keeps its counters as plain numbers (``Site.metrics()``, the JSON at
``/admin/metrics``); a collector turns them into metric families at scrape time, so there
is one source of truth and no second bookkeeping on the request path. A registry of our
own (never the global one) holds it with prometheus_client's process collector, and
prometheus_client writes the text, escaping included. The names match the real stack's
(``db_pool_in_use``, ``app_workers_busy``, ``http_requests_total``...), so an analysis
written against one reads the other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from notebookswarm._demo.database import Database, Slots


class _Counters(Protocol):
    requests: int
    errors: int
    seconds: float


class Site(Protocol):
    """What the collector reads of the site (``server.Site``, which imports this module)."""

    @property
    def endpoints(self) -> Mapping[str, _Counters]:
        """Counters per endpoint."""
        ...

    workers: Slots
    db: Database
    in_flight: int
    stalled_requests: int
    queue_refusals: int


class SiteCollector(Collector):
    """Describe one :class:`Site` as Prometheus metric families."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def collect(self) -> Iterator[Metric]:
        """Yield the site's gauges and counters as they are now."""
        yield from self._http()
        yield from self._workers()
        yield from self._database()

    def _http(self) -> Iterator[Metric]:
        site = self.site
        requests = CounterMetricFamily(
            "http_requests", "Contest requests received, by endpoint.", labels=["endpoint"]
        )
        errors = CounterMetricFamily(
            "http_request_errors", "Contest requests answered 4xx or 5xx.", labels=["endpoint"]
        )
        seconds = SummaryMetricFamily(
            "http_request_duration_seconds",
            "Time from arrival to answer, waits included, by endpoint.",
            labels=["endpoint"],
        )
        for name, counters in site.endpoints.items():
            requests.add_metric([name], counters.requests)
            errors.add_metric([name], counters.errors)
            seconds.add_metric([name], counters.requests, counters.seconds)
        yield requests
        yield errors
        yield seconds
        yield GaugeMetricFamily(
            "http_requests_in_flight", "Contest requests inside the site now.", site.in_flight
        )
        yield CounterMetricFamily(
            "app_stalled_requests", "Requests held by a stall.", site.stalled_requests
        )

    def _workers(self) -> Iterator[Metric]:
        workers = self.site.workers
        yield GaugeMetricFamily("app_workers", "Request workers.", workers.size)
        yield GaugeMetricFamily(
            "app_workers_busy", "Request workers answering a request now.", workers.in_use
        )
        yield GaugeMetricFamily(
            "app_workers_queued", "Requests waiting for a request worker now.", workers.waiting
        )
        yield CounterMetricFamily(
            "app_listen_queue_refusals",
            "Requests refused at once with 503 because the listen queue was full.",
            self.site.queue_refusals,
        )

    def _database(self) -> Iterator[Metric]:
        db = self.site.db
        c = db.counters
        yield GaugeMetricFamily("db_pool_size", "Connections the pool may hold.", db.pool.size)
        yield GaugeMetricFamily(
            "db_pool_in_use", "Pooled connections lent to a request now.", db.pool.in_use
        )
        yield GaugeMetricFamily(
            "db_pool_waiting", "Requests waiting for a pooled connection now.", db.pool.waiting
        )
        for name, text, value in (
            ("db_pool_acquired", "Connections lent.", c.acquired),
            ("db_pool_wait_seconds", "Seconds requests waited for a connection.", c.wait_seconds),
            ("db_pool_timeouts", "Requests that got no connection in time (503).", c.timeouts),
            ("db_queries", "Queries run.", c.queries),
        ):
            yield CounterMetricFamily(name, text, value)
        cache = CounterMetricFamily(
            "app_cache_requests", "Cache look-ups by result (hit or miss).", labels=["result"]
        )
        cache.add_metric(["hit"], c.cache_hits)
        cache.add_metric(["miss"], c.cache_misses)
        yield cache
        yield GaugeMetricFamily(
            "app_cache_entries", "Pages in the cache.", db.snapshot()["cache_entries"]
        )


def registry_for(site: Site) -> CollectorRegistry:
    """Return a registry of the site's metrics and its process's CPU, memory and files."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SiteCollector(site))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """Return the registry's metrics as Prometheus text exposition."""
    return generate_latest(registry)
