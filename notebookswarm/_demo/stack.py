"""A real database-backed contest site to hunt bottlenecks in: PostgreSQL, gunicorn, a pool.

``start_stack()`` starts Debian's PostgreSQL as a throwaway cluster in a temporary
directory, loads a contest's history (250,000 submissions by default), and serves the
contest site with gunicorn sync workers, each through its own bounded psycopg_pool::

    stack = start_stack()                 # about ten seconds; a free port on 127.0.0.1
    stack.url, stack.metrics_url          # the site, its Prometheus text
    stack.db_metrics()                    # pg_stat_activity / pg_stat_database, a dict

Three bottlenecks of the story are built in, each with its own switch, so a notebook can
apply one fix at a time and run the same load again:

    the missing index   stack.add_index()             live, nothing restarts
                        (stack.drop_index() puts the bottleneck back)
    no cache            stack.restart(cache=True)     the leaderboard and problem list
                                                      are kept cache_ttl seconds per worker
    too few workers     stack.restart(workers=8)      the database had room all along

``restart`` replaces gunicorn only: the URL, the database and its data stay, the app's
counters start again from zero. The listening socket belongs to the stack, so requests
sent during a restart wait in its backlog instead of being refused.

``stop()`` (or leaving ``with start_stack() as stack:``) ends PostgreSQL, gunicorn and its
workers and removes the directory; a failure part-way through ``start_stack`` does the
same before it raises. Should the owning Python process die without stopping, a watchdog
process (:mod:`.watchdog`) does it for the owner.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import weakref
from typing import Any

import psycopg

from notebookswarm._demo import stack_sql as sql
from notebookswarm._demo.pg import Cluster, RunAs, StackError
from notebookswarm._demo.stack_db import db_metrics
from notebookswarm._demo.stack_processes import Owned, StackSettings
from notebookswarm.errors import ConfigError

__all__ = ["Stack", "StackError", "StackSettings", "start_stack"]


class Stack:
    """A running stack; see the module's docstring for the switches and how to stop it."""

    def __init__(self, owned: Owned, settings: StackSettings, contest: int) -> None:
        self._owned = owned
        self.settings = settings
        self.contest = contest
        assert owned.cluster is not None and owned.listener is not None
        self.dsn = owned.cluster.dsn
        self.directory = owned.directory
        self.url = f"http://127.0.0.1:{owned.listener.getsockname()[1]}"
        # Served by gunicorn's master on a port of its own, never from a request slot: a
        # saturated site still answers its scrape, and the scrape takes no busy worker.
        self.metrics_url = owned.metrics_url
        self._finalizer = weakref.finalize(self, owned.close)

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running"
        return f"<Stack {self.url} {state} {self.settings}>"

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` has run."""
        return not self._finalizer.alive

    def pids(self) -> dict[str, int]:
        """Return the gunicorn master's and the postmaster's pids (for a pid watch)."""
        owned = self._owned
        found = {}
        if owned.app is not None:
            found["gunicorn"] = owned.app.pid
        if owned.cluster is not None and owned.cluster.process is not None:
            found["postgres"] = owned.cluster.process.pid
        return found

    def _execute(self, query: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(query.encode())

    def add_index(self) -> None:
        """Fix the leaderboard: index the submissions by contest (live, under load too)."""
        self._execute(sql.CREATE_INDEX)

    def drop_index(self) -> None:
        """Put the missing-index bottleneck back."""
        self._execute(sql.DROP_INDEX)

    def has_index(self) -> bool:
        """Whether the leaderboard's index exists now."""
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.INDEX_NAME]).fetchone()
        return bool(row and row[0])

    def explain_leaderboard(self, analyze: bool = False) -> str:
        """Return PostgreSQL's plan of the leaderboard query (run it with ``analyze=True``)."""
        options = "ANALYZE, BUFFERS" if analyze else "COSTS"
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(f"EXPLAIN ({options}) {sql.LEADERBOARD}", {"contest": self.contest})
            return "\n".join(str(row[0]) for row in rows)

    def restart(self, timeout: float = 60.0, **changes: Any) -> None:
        """Restart gunicorn with some settings changed, e.g. ``restart(workers=8)``."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(StackSettings)}
        if unknown:
            raise ConfigError(f"restart() got {sorted(unknown)}: change one of StackSettings'")
        settings = dataclasses.replace(self.settings, **changes)
        settings.check()
        self._owned.stop_app()
        self._owned.start_app(settings, self.dsn, timeout)
        self.settings = settings

    def db_metrics(self) -> dict[str, float]:
        """Sample the database: connections by state, commits, blocks, tuples, scans.

        Keys ending in ``_total`` are counters since the cluster started; the others are
        levels now. PostgreSQL 15 publishes a busy backend's counters about once a second,
        an idle one's within ten, so counters trail the load by up to a second while it
        runs. Safe to call from a watch thread; a failure raises (the next call reconnects).
        """
        owned = self._owned
        with owned.db_lock:
            if owned.db is None or owned.db.closed:
                owned.db = psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=2,
                    options="-c statement_timeout=2000",
                )  # fmt: skip
            try:
                return db_metrics(owned.db)
            except psycopg.Error:
                owned.db.close()
                owned.db = None
                raise

    def stop(self) -> None:
        """End gunicorn, its workers and PostgreSQL, and remove the directory."""
        self._finalizer()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _load(dsn: str, size: sql.DataSize, index: bool) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(b"CREATE EXTENSION pg_stat_statements")
        conn.execute(sql.SCHEMA.encode())
        conn.execute(size.load_sql().encode())
        if index:
            conn.execute(sql.CREATE_INDEX.encode())
        conn.execute(b"VACUUM ANALYZE")


def start_stack(
    *,
    workers: int = 2,
    threads: int = 1,
    pool_size: int = 4,
    pool_timeout: float = 10.0,
    cache: bool = False,
    cache_ttl: float = 5.0,
    judge_ms: float = 20.0,
    index: bool = False,
    contests: int = 50,
    users: int = 20_000,
    submissions: int = 250_000,
    port: int = 0,
    db_port: int | None = None,
    parent_dir: str | None = None,
    timeout: float = 120.0,
) -> Stack:
    """Start PostgreSQL, load the contest and serve it with gunicorn; return the running stack.

    ``workers`` gunicorn processes of ``threads`` threads (1: sync workers) each have a
    pool of ``pool_size`` connections. ``index=True`` starts with the leaderboard's index,
    ``cache=True`` with the cache. ``port`` is the site's (0: a free one), ``db_port``
    PostgreSQL's (None: a free one); ``parent_dir`` is where the temporary directory goes
    (it must be searchable by the unprivileged account PostgreSQL runs as when root).
    """
    settings = StackSettings(workers, threads, pool_size, pool_timeout, cache, cache_ttl, judge_ms)
    settings.check()
    size = sql.DataSize(contests, users, submissions)
    if min(contests, users, submissions) < 1:
        raise ConfigError(f"{size}: give at least one contest, user and submission")
    owned = Owned(parent_dir)
    try:
        run_as = RunAs.choose()
        run_as.give(owned.directory)
        owned.cluster = Cluster(owned.directory, run_as, db_port or _free_port())
        owned.cluster.start(lambda pid: owned.tell(f"group {pid} {int(signal.SIGQUIT)}"), timeout)
        _load(owned.cluster.dsn, size, index)
        # The site's port is taken only now: a socket that listens while the data loads
        # would accept connections nobody answers for seconds instead of refusing them.
        owned.listener = socket.create_server(("127.0.0.1", port), backlog=1024)
        owned.metrics_listener = socket.create_server(("127.0.0.1", 0))
        owned.start_app(settings, owned.cluster.dsn, timeout)
    except BaseException:
        owned.close()
        raise
    return Stack(owned, settings, contests)
