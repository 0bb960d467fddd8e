"""The database's side of the stack as numbers: one sample of PostgreSQL's statistics views.

Names follow Prometheus' habits so a watch can treat them alike: ``*_total`` are counters
since the cluster started (a watch turns them into rates), the rest are levels now.
Connections are counted for the contest database only, without the sampling one.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

_ACTIVITY: Final = """
SELECT count(*),
       count(*) FILTER (WHERE state = 'active'),
       count(*) FILTER (WHERE state = 'idle'),
       count(*) FILTER (WHERE state LIKE 'idle in transaction%'),
       count(*) FILTER (WHERE state = 'active' AND wait_event_type IS NOT NULL),
       count(*) FILTER (WHERE wait_event_type = 'Lock'),
       coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)
                        FILTER (WHERE state <> 'idle')), 0)
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'
"""
ACTIVITY_KEYS: Final = (
    "pg_connections",
    "pg_connections_active",
    "pg_connections_idle",
    "pg_connections_idle_in_transaction",
    "pg_connections_waiting",
    "pg_connections_lock_waiting",
    "pg_oldest_transaction_seconds",
)

_DATABASE: Final = """
SELECT xact_commit, xact_rollback, blks_read, blks_hit, tup_returned, tup_fetched,
       tup_inserted, tup_updated, tup_deleted, deadlocks, temp_bytes
FROM pg_stat_database WHERE datname = current_database()
"""
DATABASE_KEYS: Final = (
    "pg_xact_commit_total",
    "pg_xact_rollback_total",
    "pg_blks_read_total",
    "pg_blks_hit_total",
    "pg_tup_returned_total",
    "pg_tup_fetched_total",
    "pg_tup_inserted_total",
    "pg_tup_updated_total",
    "pg_tup_deleted_total",
    "pg_deadlocks_total",
    "pg_temp_bytes_total",
)

# How the leaderboard reads the submissions: sequential scans falling and index scans
# rising is the index fix, seen from the database.
_SUBMISSIONS: Final = """
SELECT seq_scan, seq_tup_read, coalesce(idx_scan, 0), n_live_tup
FROM pg_stat_user_tables WHERE relname = 'submissions'
"""
SUBMISSIONS_KEYS: Final = (
    "pg_submissions_seq_scan_total",
    "pg_submissions_seq_tup_read_total",
    "pg_submissions_idx_scan_total",
    "pg_submissions_rows",
)

# Where the database's time goes, from pg_stat_statements: in all, and for the two
# queries the index and the cache are about. Their rates are calls and busy seconds per
# second: a database that spends 1.9 s per second on the leaderboard is its bottleneck.
_STATEMENTS: Final = """
SELECT coalesce(sum(calls), 0),
       coalesce(sum(total_exec_time), 0) / 1000,
       coalesce(sum(calls) FILTER (WHERE query LIKE '%WITH firsts AS%'), 0),
       coalesce(sum(total_exec_time) FILTER (WHERE query LIKE '%WITH firsts AS%'), 0) / 1000,
       coalesce(sum(calls) FILTER (WHERE query LIKE '%LEFT JOIN submissions AS s%'), 0),
       coalesce(sum(total_exec_time)
                FILTER (WHERE query LIKE '%LEFT JOIN submissions AS s%'), 0) / 1000
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
STATEMENTS_KEYS: Final = (
    "pg_statements_calls_total",
    "pg_statements_seconds_total",
    "pg_leaderboard_calls_total",
    "pg_leaderboard_seconds_total",
    "pg_problem_list_calls_total",
    "pg_problem_list_seconds_total",
)


def db_metrics(conn: psycopg.Connection[Any]) -> dict[str, float]:
    """Return one sample of the activity, database, submissions and statements statistics."""
    sample: dict[str, float] = {}
    for query, keys in (
        (_ACTIVITY, ACTIVITY_KEYS),
        (_DATABASE, DATABASE_KEYS),
        (_SUBMISSIONS, SUBMISSIONS_KEYS),
        (_STATEMENTS, STATEMENTS_KEYS),
    ):
        row = conn.execute(query).fetchone()
        values = row if row is not None else (0,) * len(keys)
        sample.update((key, float(value or 0)) for key, value in zip(keys, values, strict=True))
    return sample
