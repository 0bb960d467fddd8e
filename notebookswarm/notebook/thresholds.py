"""Judge a run: k6-style threshold expressions checked against its statistics.

::

    p95_ms<500                  the Aggregated row's 95th percentile under 500 ms
    GET /api:p99_ms<=800        one endpoint: method and name before the last ':'
    /api:p99_ms<800             one endpoint by name alone (when one method uses it)
    failure_ratio<0.01          also 1%
    rps>200

Metrics are columns of the stats DataFrame (see ``frames``): ``requests``, ``failures``,
``failure_ratio``, ``rps``, ``avg_ms`` (its ``mean_ms``), ``min_ms``, ``max_ms``,
``p50_ms``, ``p90_ms``, ``p95_ms``, ``p99_ms``, ``p999_ms`` and the ``*_corrected_ms``
ones of the open model. Operators: ``<``, ``<=``, ``>``, ``>=``. Parsing is pure and
refuses a malformed expression naming the part it could not read, so a command can refuse
it before any process starts. A threshold on an endpoint that saw no request fails: a
check that measured nothing proves nothing.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.frames import AGGREGATED, CORRECTED, PERCENTILES

#: Threshold metric -> stats column.
METRICS: dict[str, str] = {
    "requests": "requests",
    "failures": "failures",
    "failure_ratio": "failure_ratio",
    "rps": "rps",
    "avg_ms": "mean_ms",
    "mean_ms": "mean_ms",
    "min_ms": "min_ms",
    "max_ms": "max_ms",
    **{name: name for name in PERCENTILES},
    **{name: name for name in CORRECTED},
}
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_OPERATOR = re.compile(r"<=|>=|==|!=|=|<|>")
_METHOD = re.compile(r"^[A-Z][A-Z_-]*$")
VERDICT_COLUMNS = ["threshold", "observed", "limit", "passed", "note"]


@dataclass(frozen=True)
class Threshold:
    """One parsed expression: which row, which metric, how compared, against what."""

    text: str
    metric: str
    op: str
    limit: float
    name: str = AGGREGATED
    method: str | None = ""  # None: any method that uses ``name``

    @property
    def endpoint(self) -> str:
        """Say which row this threshold reads: ``Aggregated``, ``GET /api`` or ``/api``."""
        return self.name if not self.method else f"{self.method} {self.name}"

    def holds(self, observed: float) -> bool:
        """Say whether ``observed`` satisfies the comparison (never when it is NaN)."""
        return not math.isnan(observed) and bool(_OPERATORS[self.op](observed, self.limit))


def parse_threshold(text: str) -> Threshold:
    """Parse one expression such as ``"GET /api:p99_ms<800"``; raise ConfigError naming the
    part that could not be read."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"threshold {text!r} is empty: write one like 'p95_ms<500'")
    selector, _, expression = text.rpartition(":")
    match = _OPERATOR.search(expression)
    if match is None:
        raise ConfigError(
            f"threshold {text!r}: no comparison in {expression.strip()!r}: "
            "write METRIC<LIMIT with one of <, <=, >, >="
        )
    metric, op = expression[: match.start()].strip(), match.group()
    limit_text = expression[match.end() :].strip()
    if " " in metric:
        raise ConfigError(
            f"threshold {text!r}: could not read the metric {metric!r}: an endpoint goes "
            "before a ':', as in 'GET /api:p95_ms<500'"
        )
    if op not in _OPERATORS:
        raise ConfigError(
            f"threshold {text!r}: operator {op!r} is not supported: use <, <=, > or >="
        )
    if metric not in METRICS:
        raise ConfigError(
            f"threshold {text!r}: unknown metric {metric!r}: use one of {', '.join(METRICS)}"
        )
    limit = _limit(text, metric, limit_text)
    name, method = _endpoint(text, selector)
    return Threshold(text=text.strip(), metric=metric, op=op, limit=limit, name=name, method=method)


def _limit(text: str, metric: str, limit_text: str) -> float:
    number, scale = limit_text, 1.0
    if metric.endswith("_ms") and number.endswith("ms"):
        number = number[:-2]
    elif metric == "failure_ratio" and number.endswith("%"):
        number, scale = number[:-1], 0.01
    try:
        value = float(number.strip()) * scale
    except ValueError:
        raise ConfigError(
            f"threshold {text!r}: limit {limit_text!r} is not a number"
            + (" (a ratio may end in %)" if metric == "failure_ratio" else "")
        ) from None
    if not math.isfinite(value):
        raise ConfigError(f"threshold {text!r}: limit {limit_text!r} must be a finite number")
    return value


def _endpoint(text: str, selector: str) -> tuple[str, str | None]:
    selector = selector.strip()
    if not selector or selector == AGGREGATED:
        return AGGREGATED, ""
    first, _, rest = selector.partition(" ")
    if rest.strip() and _METHOD.match(first):
        return rest.strip(), first
    if " " not in selector and _METHOD.match(selector):
        raise ConfigError(
            f"threshold {text!r}: endpoint {selector!r} has a method but no name: "
            "write 'GET /path:p95_ms<500'"
        )
    return selector, None


def parse_thresholds(texts: Iterable[str | Threshold]) -> list[Threshold]:
    """Parse every expression (or pass parsed ones through); the first bad one raises."""
    return [t if isinstance(t, Threshold) else parse_threshold(t) for t in texts]


def observe(threshold: Threshold, stats: pd.DataFrame) -> tuple[float, str]:
    """Return the value a threshold reads from a stats DataFrame, and a note when it has none."""
    rows = stats[stats["name"] == threshold.name]
    if threshold.method is not None:
        rows = rows[rows["method"] == threshold.method]
    if len(rows) > 1:
        methods = ", ".join(sorted(str(m) for m in rows["method"]))
        raise ConfigError(
            f"threshold {threshold.text!r}: {threshold.name!r} is requested with {methods}: "
            f"say which, e.g. '{rows['method'].iloc[0]} {threshold.name}:...'"
        )
    if rows.empty or int(rows["requests"].iloc[0]) == 0:
        return math.nan, f"no requests to {threshold.endpoint}"
    return float(rows[METRICS[threshold.metric]].iloc[0]), ""


def evaluate(thresholds: Iterable[str | Threshold], source: Any) -> pd.DataFrame:
    """Check thresholds against a run, a swarm or a stats DataFrame; one verdict row each.

    Columns: ``threshold`` (the expression), ``observed``, ``limit``, ``passed`` and a
    ``note`` that says why a threshold without data failed.
    """
    parsed = parse_thresholds(thresholds)
    stats: pd.DataFrame = source if isinstance(source, pd.DataFrame) else source.stats
    rows = []
    for threshold in parsed:
        observed, note = observe(threshold, stats)
        rows.append(
            {
                "threshold": threshold.text,
                "observed": observed,
                "limit": threshold.limit,
                "passed": threshold.holds(observed),
                "note": note,
            }
        )
    frame = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    return frame.astype(
        {
            "threshold": "string",
            "observed": "float64",
            "limit": "float64",
            "passed": "bool",
            "note": "string",
        }
    )


def breached(verdicts: pd.DataFrame) -> list[str]:
    """Return one line per failed verdict: the expression and what was observed."""
    lines = []
    for row in verdicts[~verdicts["passed"]].to_dict("records"):
        note = str(row["note"]) if pd.notna(row["note"]) else ""
        seen = note or f"observed {_number(float(row['observed']))}"
        lines.append(f"{row['threshold']}  ({seen})")
    return lines


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
