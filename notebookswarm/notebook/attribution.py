"""Say which server resource hit its limit at the knee of a step load, from watched metrics.

``attribute(server, steps, table, knee)`` takes the watched rows (``swarm.server``: time,
source, metric, labels, kind, value), the steps of the load and the capacity table, and
finds, per series, its level in each step (the median of the step's settled seconds).
Three kinds of evidence name a limit:

- **a queue that grows**: a gauge named like a line (``*_waiting``, ``*_queued``,
  ``*_pending``, ...) that rises from its first step's level;
- **a gauge held at its bound**: a usage gauge (``*_in_use``, ``*_busy``, ``*_active``,
  ...) at 90% or more of its partner bound (``*_size``, ``*_max``, ``*_limit``, or the bare
  prefix: ``app_workers_busy`` of ``app_workers``), or a process's CPU at 90% of a core;
- **refusals or a per-request cost that rise**: rates of refusals, rejections, drops or
  timeouts that appear, and means, quantiles or rates per request (not counts of
  requests) that at least double from the step before the knee to the last.

Series are grouped into resources by name (``db_pool_in_use``, ``db_pool_size`` and
``db_pool_waiting`` are the resource ``db_pool``). Resources with a queue or a bound come
before those with only refusals or costs (slower answers are a symptom); among them, the
one that saturated first (its evidence reached half its course at the earliest step) ranks
first: a saturated inner resource fills the lines in front of it only later (requests wait
for the pool inside busy workers, so the workers fill up after the pool). At equal steps a
queue outranks a bound.

Beside a bound that held, the sentence says where the held units' time went. A rate of
seconds spent per second (``*_seconds_total``: ``pg_statements_seconds_total``, a
process's CPU; not time waiting in a line, ``db_pool_wait_seconds_total``) is how many
things were busy at once on average, so the largest of them at the knee, each at least a
tenth of the bound, are compared with it (``time``). Two sync app workers held at 2 of 2
while the database's statements took 1.7 s per second spend most of their time waiting
for the database.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

_USAGE: Final = ("_in_use", "_inuse", "_busy", "_used", "_active")
_BOUND: Final = ("_size", "_max", "_limit", "_capacity")
_QUEUE: Final = ("_waiting", "_waiters", "_queued", "_queue_length", "_queue", "_pending")
_QUEUE_WORDS: Final = re.compile(r"wait(ing|ers)|queue[dsl_]|queue$|pending|backlog")
_REFUSAL_WORDS: Final = re.compile(r"refus|reject|drop|timeout|overflow")
_IN_LINE: Final = re.compile(r"wait|queue|pending|backlog")
#: Evidence kinds, strongest first, as in ``table["rule"]``.
RULES: Final = ("queue grows", "held at its bound", "refusals appear", "cost rises")
#: A usage gauge at this share of its bound (or more) is held there.
AT_BOUND: Final = 0.9
#: A cost that grows by this factor from the first step rises.
COST_FACTOR: Final = 2.0
#: Seconds spent per second named beside a held bound: at least this share of the bound.
TIME_SHARE: Final = 0.1
TIME_COLUMNS: Final = ["source", "metric", "labels", "seconds_per_second", "share_of_bound"]
EVIDENCE_COLUMNS: Final = [
    "rank",
    "source",
    "metric",
    "labels",
    "kind",
    "rule",
    "resource",
    "before",
    "at",
    "after",
    "bound",
    "onset_users",
    "score",
    "evidence",
]


@dataclass
class Attribution:
    """Which server resource limited the run, with the evidence."""

    table: pd.DataFrame  # one row per series that shows evidence, the likely limit first
    levels: pd.DataFrame  # one row per series, one column per step's users
    sentence: str
    server: pd.DataFrame
    steps: list[tuple[float, float, int]]
    knee_users: int
    history: pd.DataFrame | None = None
    #: Seconds spent per second at the knee beside the held bound, largest first.
    time: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TIME_COLUMNS))

    @property
    def limit(self) -> str | None:
        """The metric ranked first, or None when nothing showed a limit."""
        return None if self.table.empty else str(self.table["metric"].iloc[0])

    def __str__(self) -> str:
        return self.sentence

    def figure(self, top: int = 3) -> Any:
        """Return a plotly figure: the step load on top, the ``top`` ranked series below."""
        from notebookswarm.notebook.attribution_chart import attribution_figure

        return attribution_figure(
            self.table, self.server, self.steps, self.knee_users, self.history, top
        )


def step_levels(
    server: pd.DataFrame, steps: Sequence[tuple[float, float, int]], settle: float = 1.5
) -> pd.DataFrame:
    """Return the median of each series in each step's settled part (columns: step index)."""
    keys = ["source", "metric", "labels", "kind"]
    if server.empty:
        return pd.DataFrame(columns=[*keys, *range(len(steps))]).set_index(keys)
    seconds = (server["time"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    parts = []
    for i, (start, end, _users) in enumerate(steps):
        settled = start + min(settle, (end - start) / 3)
        inside = server[(seconds > settled) & (seconds <= end)]
        parts.append(inside.groupby(keys, observed=True)["value"].median().rename(i))
    return pd.concat(parts, axis=1).reindex(columns=range(len(steps)))


def attribute(
    server: pd.DataFrame,
    steps: Sequence[tuple[float, float, int]],
    table: pd.DataFrame,
    knee: pd.Series,
    history: pd.DataFrame | None = None,
    settle: float = 1.5,
) -> Attribution:
    """Rank the watched series by how likely each is the limit at the knee (module docstring).

    ``table``/``knee`` are ``capacity(run)``'s; ``steps`` are ``run.meta["steps"]``.
    """
    steps = [(float(a), float(b), int(n)) for a, b, n in steps]
    users = [n for _, _, n in steps]
    knee_users = int(knee["users"])
    k = users.index(knee_users) if knee_users in users else 0
    levels = step_levels(server, steps, settle)
    throughput = table["throughput"].to_numpy(dtype=float)
    rows = _evidence(levels, k, users, throughput)
    ranked = _rank(rows)
    evidence = pd.DataFrame(ranked, columns=EVIDENCE_COLUMNS)
    evidence = evidence.astype({"rank": "int64", "onset_users": "int64", "score": "float64"})
    wide = levels.copy()
    wide.columns = [f"users_{n}" for n in users]
    held = _held_bound(ranked)
    time = _where_time_went(levels, k, held["bound"] if held is not None else math.nan)
    sentence = _sentence(ranked, k, users, table, time)
    return Attribution(
        evidence, wide.reset_index(), sentence, server, steps, knee_users, history, time
    )


def _held_bound(ranked: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The bound that held in the top resource: its first row, or the queue's partner."""
    if not ranked:
        return None
    top = ranked[0]
    if top["rule"] == RULES[1]:
        return None if top["metric"].endswith("cpu_seconds_total") else top
    if top["rule"] == RULES[0]:
        return _partner(ranked)
    return None


def _where_time_went(levels: pd.DataFrame, k: int, bound: float) -> pd.DataFrame:
    """Rates of seconds per second at the knee's step, each at least TIME_SHARE of ``bound``
    (largest first, three at most); empty without a finite bound."""
    rows = []
    if math.isfinite(bound) and bound > 0:
        for index, series in levels.iterrows():
            source, metric, labels, kind = (str(part) for part in index)  # type: ignore[attr-defined]
            value = float(series.iloc[k])
            if (
                kind == "rate"
                and metric.endswith("_seconds_total")
                and not _IN_LINE.search(metric)  # time in a line is not time in the bound
                and value >= TIME_SHARE * bound
            ):
                rows.append((source, metric, labels, value, value / bound))
    rows.sort(key=lambda row: -row[3])
    return pd.DataFrame(rows[:3], columns=TIME_COLUMNS)


def _evidence(
    levels: pd.DataFrame, k: int, users: list[int], throughput: np.ndarray[Any, Any]
) -> list[dict[str, Any]]:
    names = {(s, m, lab) for s, m, lab, kind in levels.index if kind == "gauge"}
    resources = _resources(names)
    rows = []
    for index, series in levels.iterrows():
        source, metric, labels, kind = (str(part) for part in index)  # type: ignore[attr-defined]
        values = series.to_numpy(dtype=float)
        if np.isnan(values).all():
            continue
        found = _judge(levels, source, metric, labels, kind, values, throughput, names, k)
        if found is None:
            continue
        rule, profile, bound = found
        cost = values / np.where(throughput > 0, throughput, np.nan)
        onset = int(np.argmax(profile >= 0.5)) if (profile >= 0.5).any() else len(users)
        before, at = values[max(0, k - 1)], values[k]
        rows.append(
            {
                "source": source,
                "metric": metric,
                "labels": labels,
                "kind": kind,
                "rule": rule,
                "resource": _resource_of(metric, resources),
                "before": before,
                "at": at,
                "after": values[-1],
                "bound": bound,
                "onset_users": users[min(onset, len(users) - 1)],
                "onset": onset,
                "score": float(np.nanmean(profile)),
                "users": users,
                "cost": cost,
                "k": k,
            }
        )
    return rows


def _judge(
    levels: pd.DataFrame,
    source: str,
    metric: str,
    labels: str,
    kind: str,
    values: np.ndarray[Any, Any],
    throughput: np.ndarray[Any, Any],
    names: set[tuple[str, str, str]],
    k: int,
) -> tuple[str, np.ndarray[Any, Any], float] | None:
    """Return (rule, per-step profile in [0, 1], bound) for a series that shows a limit.

    ``k`` is the knee's step: a cost rises when it at least doubles from the step before.
    """
    first, last = _first(values), values[-1]
    if kind == "gauge" and _is_queue(metric):
        if last >= 1 and last >= first + max(1.0, first):
            return RULES[0], _course(values), math.nan
        return None
    if kind == "gauge" and metric.endswith(_USAGE):
        bound = _bound_of(levels, source, metric, labels, names)
        return _held(values, bound)
    if kind == "rate" and metric.endswith("cpu_seconds_total"):
        cores = max(1.0, math.ceil(np.nanmax(values) - 0.1))
        return _held(values, np.full_like(values, min(cores, float(os.cpu_count() or 1))))
    if kind == "rate" and _REFUSAL_WORDS.search(metric):
        if last > 0 and last > 2 * first + 0.1:
            return RULES[2], _course(values), math.nan
        return None
    if kind == "rate" and (metric.endswith("_count") or "request" in metric):
        return None  # a count of requests is the load itself, not a cost of serving it
    if kind not in ("mean", "quantile", "rate"):
        return None
    cost = values / np.where(throughput > 0, throughput, np.nan) if kind == "rate" else values
    base, end = cost[max(0, k - 1)], cost[-1]
    if math.isnan(base):
        base = _first(cost)
    if end > 0 and end >= COST_FACTOR * base:  # False for NaN
        return RULES[3], _course(cost), math.nan
    return None


def _first(values: np.ndarray[Any, Any]) -> float:
    finite = values[~np.isnan(values)]
    return float(finite[0]) if len(finite) else math.nan


def _course(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Each step's share of the way from the first step's level to the highest."""
    if np.isnan(values).all():
        return np.zeros_like(values)
    base, top = _first(values), float(np.nanmax(values))
    if top <= base:
        return np.zeros_like(values)
    return np.clip(np.nan_to_num((values - base) / (top - base)), 0.0, 1.0)


def _held(
    values: np.ndarray[Any, Any], bound: np.ndarray[Any, Any] | None
) -> tuple[str, np.ndarray[Any, Any], float] | None:
    if bound is None:
        return None
    share = values / np.where(bound > 0, bound, np.nan)
    if np.isnan(share).all() or not np.nanmax(share) >= AT_BOUND:
        return None
    profile = np.clip(np.nan_to_num((share - 0.8) / 0.2), 0.0, 1.0)
    return RULES[1], profile, float(bound[-1])


def _is_queue(metric: str) -> bool:
    return metric.endswith(_QUEUE) or bool(_QUEUE_WORDS.search(metric))


def _bound_of(
    levels: pd.DataFrame, source: str, metric: str, labels: str, names: set[tuple[str, str, str]]
) -> np.ndarray[Any, Any] | None:
    prefix = _strip(metric, _USAGE)
    for candidate in (*(prefix + s for s in _BOUND), prefix):
        if (source, candidate, labels) in names:
            row = levels.loc[[(source, candidate, labels, "gauge")]]
            return row.iloc[0].to_numpy(dtype=float)
    return None


def _strip(metric: str, suffixes: Sequence[str]) -> str:
    for suffix in suffixes:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def _resources(names: set[tuple[str, str, str]]) -> list[str]:
    """Prefixes that name a resource: those of usage, bound and queue gauges."""
    found = set()
    for _, metric, _ in names:
        for group in (_USAGE, _BOUND, _QUEUE):
            if metric.endswith(group):
                found.add(_strip(metric, group))
    return sorted(found, key=len, reverse=True)


def _resource_of(metric: str, resources: list[str]) -> str:
    for prefix in resources:  # longest first
        if metric == prefix or metric.startswith(prefix + "_"):
            return prefix
    return metric.removesuffix("_total").removesuffix("_count")


def _rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order resources: those with a queue or a bound first, then by onset, strongest rule
    and course; within one resource by rule and onset."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        labels = re.sub(r',?quantile="[^"]*"', "", row["labels"]).lstrip(",")
        groups.setdefault((row["source"], row["resource"], labels), []).append(row)

    def group_key(members: list[dict[str, Any]]) -> tuple[bool, int, int, float]:
        strongest = min(RULES.index(m["rule"]) for m in members)
        return (
            strongest > 1,  # refusals and costs only: symptoms, after any queue or bound
            min(m["onset"] for m in members),
            min(RULES.index(m["rule"]) for m in members),
            -max(m["score"] for m in members),
        )

    ranked = []
    for members in sorted(groups.values(), key=group_key):
        members.sort(key=lambda m: (RULES.index(m["rule"]), m["onset"], -m["score"]))
        ranked += members
    for i, row in enumerate(ranked, start=1):
        row["rank"] = i
        row["evidence"] = _row_sentence(row)
    return ranked


def _num(value: float) -> str:
    if math.isnan(value):
        return "?"
    if (abs(value - round(value)) < 0.05 and abs(value) >= 1) or value == 0:
        return f"{round(value):d}"
    return f"{value:.3g}"


def _name(row: dict[str, Any]) -> str:
    return f"{row['metric']}{{{row['labels']}}}" if row["labels"] else str(row["metric"])


def _row_sentence(row: dict[str, Any]) -> str:
    users, k = row["users"], row["k"]
    before_users = users[max(0, k - 1)]
    name, rule = _name(row), row["rule"]
    if rule == RULES[1]:
        unit = " cores" if row["metric"].endswith("cpu_seconds_total") else ""
        return (
            f"{name} held at {_num(row['after'])}{unit} of {_num(row['bound'])} "
            f"from {row['onset_users']} users on"
        )
    if rule == RULES[3] and row["kind"] == "rate":
        cost = row["cost"]
        return (
            f"{name} per request rose from {_num(_first(cost))} at {users[0]} users "
            f"to {_num(cost[-1])} at {users[-1]} users"
        )
    return (
        f"{name} grew from {_num(row['before'])} at {before_users} users "
        f"to {_num(row['after'])} at {users[-1]} users"
    )


def _partner(ranked: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The bound held in the same resource as the top row (a queue's pool), if any."""
    top = ranked[0]
    return next(
        (
            r
            for r in ranked[1:]
            if r["resource"] == top["resource"]
            and r["source"] == top["source"]
            and r["rule"] == RULES[1]
        ),
        None,
    )


def _sentence(
    ranked: list[dict[str, Any]],
    k: int,
    users: list[int],
    table: pd.DataFrame,
    time: pd.DataFrame,
) -> str:
    """One sentence: the top resource's queue and its bound, or its strongest evidence, and
    where the held bound's time went."""
    if not ranked:
        return (
            "no watched metric shows a limit: none held at a bound, no queue grew and no "
            "per-request cost rose; watch the database, the app's pools and its CPU"
        )
    top = ranked[0]
    partner = _partner(ranked)
    if top["rule"] == RULES[0]:
        text = (
            f"{_name(top)} grew from {_num(top['before'])} to {_num(top['after'])} "
            f"at {users[-1]} users"
        )
        if partner is not None:
            text += (
                f" while {_name(partner)} held at {_num(partner['after'])} of "
                f"{_num(partner['bound'])}"
            )
    else:
        text = top["evidence"]
    if not time.empty:
        spent = [
            f"{_name({'metric': metric, 'labels': labels})} {_num(float(value))}"
            for metric, labels, value in zip(
                time["metric"], time["labels"], time["seconds_per_second"], strict=True
            )
        ]
        spent[0] += f" ({time['share_of_bound'].iloc[0]:.0%} of the bound)"
        text += "; seconds spent per second at the knee: " + ", ".join(spent)
    p95 = table["p95_ms"].to_numpy(dtype=float)
    return (
        f"{text} (knee at {users[k]} users; p95 {_num(p95[max(0, k - 1)])} -> {_num(p95[-1])} ms)"
    )
