"""A database client in a locustfile, recording real SQL against a throwaway PostgreSQL."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from notebookswarm._demo.pg import PG_ROOT, Cluster, RunAs
from notebookswarm.testing import run_local

pytestmark = pytest.mark.skipif(
    not list(PG_ROOT.glob("*/bin/initdb")), reason="no PostgreSQL server: run `make db-deps`"
)
FILES = Path(__file__).resolve().parents[1] / "locustfiles"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def database() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (as an unprivileged user) with an orders table."""
    directory = Path(tempfile.mkdtemp(prefix="nbs-pgtest-"))
    run_as = RunAs.choose()
    run_as.give(directory)
    cluster = Cluster(directory, run_as, _free_port())
    try:
        cluster.start(lambda pid: None)
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL)")
        yield cluster.dsn
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_sql_requests_equal_the_rows_written(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every measured INSERT is one row; every query of a missing table one failure."""
    monkeypatch.setenv("NBS_PG_DSN", database)
    result = run_local(FILES / "postgres_client.py", users=2, spawn_rate=50, run_time=1.0)
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    inserts = result.stats.endpoints[("sql", "insert_order")]
    assert inserts.requests == row[0] > 0
    assert inserts.failures == 0
    missing = result.stats.endpoints[("sql", "missing_table")]
    assert missing.failures == missing.requests > 0
    [(_, _, error)] = [key for key in result.stats.errors if key[1] == "missing_table"]
    assert error.startswith('UndefinedTable: relation "no_such_table" does not exist')
    assert not result.stats.exceptions
