"""``self.environment``: Locust's Environment, runners and statistics, as views of ours.

A locustfile sees one :class:`Environment` per process: in a worker (``runner`` is a
:class:`WorkerRunner`) and in the controller — the notebook kernel or the CLI —
(``runner`` is a :class:`MasterRunner`). The runner and the statistics read live state
through small callables the process supplies (:class:`RunnerControls`), so nothing
here knows about sockets, greenlets or the master.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from notebookswarm.stats.requests import EndpointStats, RequestStats
from notebookswarm.users.compat.events import Events
from notebookswarm.users.compat.exception import LocustError

STATE_INIT, STATE_SPAWNING, STATE_RUNNING = "ready", "spawning", "running"
STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED, STATE_MISSING = (
    "cleanup",
    "stopping",
    "stopped",
    "missing",
)
_NS_PER_MS = 1_000_000


class StatsEntry:
    """One row of statistics (an endpoint, or ``total``), with Locust's attribute names."""

    def __init__(self, stats: EndpointStats, name: str = "Aggregated", method: str = "") -> None:
        self._stats = stats
        self.name = name
        self.method = method

    @property
    def num_requests(self) -> int:
        """Requests counted."""
        return self._stats.requests

    @property
    def num_failures(self) -> int:
        """Requests that failed."""
        return self._stats.failures

    @property
    def fail_ratio(self) -> float:
        """Failures divided by requests (0.0 before any request)."""
        n = self._stats.requests
        return self._stats.failures / n if n else 0.0

    @property
    def avg_response_time(self) -> float:
        """Mean latency in milliseconds."""
        n = self._stats.requests
        return self._stats.total_ns / n / _NS_PER_MS if n else 0.0

    @property
    def min_response_time(self) -> float:
        """Lowest latency in milliseconds."""
        return self._stats.latency.min / _NS_PER_MS if self._stats.requests else 0.0

    @property
    def max_response_time(self) -> float:
        """Highest latency in milliseconds."""
        return self._stats.latency.max / _NS_PER_MS

    @property
    def median_response_time(self) -> float:
        """Median latency in milliseconds."""
        return self.get_response_time_percentile(0.5)

    @property
    def total_content_length(self) -> int:
        """Bytes received."""
        return self._stats.bytes

    @property
    def avg_content_length(self) -> float:
        """Mean bytes per request."""
        n = self._stats.requests
        return self._stats.bytes / n if n else 0.0

    def get_response_time_percentile(self, percent: float) -> float:
        """Return the ``percent`` quantile (0.95 for p95) in milliseconds, exact to 1%."""
        return self._stats.latency.percentile(percent) / _NS_PER_MS


class Stats:
    """``environment.stats``: ``total``, ``entries`` and ``get(name, method)`` over live data.

    ``source`` returns the run's cumulative :class:`RequestStats` when asked.
    """

    def __init__(self, source: Callable[[], RequestStats]) -> None:
        self._source = source

    @property
    def total(self) -> StatsEntry:
        """Every endpoint together (Locust's ``Aggregated`` row)."""
        return StatsEntry(self._source().total())

    @property
    def entries(self) -> dict[tuple[str, str], StatsEntry]:
        """One entry per ``(name, method)``, Locust's key order."""
        return {
            (name, method): StatsEntry(stats, name, method)
            for (method, name), stats in self._source().endpoints.items()
        }

    @property
    def errors(self) -> dict[tuple[str, str, str], int]:
        """Failure counts per ``(method, name, error)``."""
        return dict(self._source().errors)

    @property
    def num_requests(self) -> int:
        """Requests counted, all endpoints."""
        return self.total.num_requests

    @property
    def num_failures(self) -> int:
        """Failures counted, all endpoints."""
        return self.total.num_failures

    def get(self, name: str, method: str) -> StatsEntry:
        """Return the entry for one endpoint (empty if it has no requests yet)."""
        stats = self._source().endpoints.get((method, name)) or EndpointStats()
        return StatsEntry(stats, name, method)


@dataclass
class RunnerControls:
    """What a process lets a locustfile see and do through ``environment.runner``."""

    state: Callable[[], str] = lambda: STATE_INIT
    user_count: Callable[[], int] = lambda: 0
    quit: Callable[[], None] = lambda: None
    stop: Callable[[], None] = lambda: None
    worker_count: Callable[[], int] = lambda: 0
    extra: dict[str, Any] = field(default_factory=dict)


class Runner:
    """``environment.runner``: the run's state, user count, statistics and ``quit()``."""

    def __init__(self, environment: Environment, controls: RunnerControls | None = None) -> None:
        self.environment = environment
        self._controls = controls or RunnerControls()
        self.exceptions: dict[str, Any] = {}

    @property
    def state(self) -> str:
        """``ready``, ``spawning``, ``running``, ``stopping`` or ``stopped``."""
        return self._controls.state()

    @property
    def user_count(self) -> int:
        """Users running now (in this worker, for a WorkerRunner; in the swarm otherwise)."""
        return self._controls.user_count()

    @property
    def stats(self) -> Stats:
        """The environment's statistics."""
        return self.environment.stats

    def quit(self) -> None:
        """Stop the run (from a controller: the whole swarm; from a worker: this worker)."""
        self._controls.quit()

    def stop(self) -> None:
        """Stop the users (the swarm stays, as in Locust)."""
        self._controls.stop()


class LocalRunner(Runner):
    """Locust's single-process runner; ``isinstance`` checks against it stay false here."""


class MasterRunner(Runner):
    """The runner a locustfile sees in the controller (notebook kernel or CLI)."""

    @property
    def worker_count(self) -> int:
        """Workers joined to the master."""
        return self._controls.worker_count()


class WorkerRunner(Runner):
    """The runner a locustfile sees in a worker; ``client_id`` is the worker's id."""

    def __init__(
        self, environment: Environment, controls: RunnerControls | None, client_id: str
    ) -> None:
        super().__init__(environment, controls)
        self.client_id = client_id
        self.worker_index = int(self._controls.extra.get("worker_index", 0))


class Environment:
    """What Locust passes around as ``environment``: host, events, options, runner, stats."""

    def __init__(
        self,
        *,
        user_classes: list[type[Any]] | None = None,
        shape_class: Any = None,
        tags: list[str] | None = None,
        exclude_tags: list[str] | None = None,
        events: Events | None = None,
        host: str | None = None,
        reset_stats: bool = False,
        stop_timeout: float | None = None,
        catch_exceptions: bool = True,
        parsed_options: argparse.Namespace | None = None,
        available_user_classes: dict[str, Any] | None = None,
        available_shape_classes: dict[str, Any] | None = None,
    ) -> None:
        self.user_classes = list(user_classes or [])
        self.shape_class = shape_class
        self.tags = tags
        self.exclude_tags = exclude_tags
        self.events = events if events is not None else Events()
        self.host = host
        self.reset_stats = reset_stats
        self.stop_timeout = stop_timeout
        self.catch_exceptions = catch_exceptions
        self.parsed_options = parsed_options if parsed_options is not None else argparse.Namespace()
        self.available_user_classes = available_user_classes or {}
        self.available_shape_classes = available_shape_classes or {}
        #: Set by a listener to choose `notebookswarm run`'s exit code, as in Locust.
        self.process_exit_code: int | None = None
        self.runner: Runner | None = None
        self.web_ui: None = None
        self._stats_source: Callable[[], RequestStats] = RequestStats
        self.stats = Stats(lambda: self._stats_source())

    def set_stats_source(self, source: Callable[[], RequestStats]) -> None:
        """Read ``stats`` from ``source`` (the process's cumulative statistics) from now on."""
        self._stats_source = source

    def _refuse(self, what: str) -> None:
        raise LocustError(
            f"Environment.{what}() is Locust's library mode, which notebookswarm does not "
            "offer: run the file with `notebookswarm run -f FILE` or nbs.Swarm('FILE')"
        )

    def create_local_runner(self) -> Runner:
        """Refused: see the message."""
        self._refuse("create_local_runner")
        raise AssertionError  # unreachable

    def create_master_runner(self, *args: Any, **kwargs: Any) -> Runner:
        """Refused: see the message."""
        self._refuse("create_master_runner")
        raise AssertionError

    def create_worker_runner(self, *args: Any, **kwargs: Any) -> Runner:
        """Refused: see the message."""
        self._refuse("create_worker_runner")
        raise AssertionError

    def create_web_ui(self, *args: Any, **kwargs: Any) -> None:
        """Refused: see the message."""
        self._refuse("create_web_ui")
