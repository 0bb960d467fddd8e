"""The terminal's view of a run: a compact live table and the closing summary.

On a terminal the table is redrawn in place (ANSI: back to its first line, clear below);
into a file or a CI log it is one line per interval, with no carriage returns, so a log
reads top to bottom. The rendering is pure (a stats DataFrame in, lines out); only
:class:`LiveTable` writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TextIO

import pandas as pd

from notebookswarm.notebook.frames import AGGREGATED

MAX_ROWS = 12  # endpoints shown live; the summary shows them all
_NAME_WIDTH = 40
_HEAD = f"{'Type':<7} {'Name':<{_NAME_WIDTH}} {'# reqs':>8} {'# fails':>14} |"
_HEAD += f" {'Avg':>7} {'Min':>7} {'Max':>7} {'Med':>7} {'p95':>7} | {'req/s':>8}"
_UP_AND_CLEAR = "\x1b[{n}F\x1b[J"


def _ms(value: Any) -> str:
    number = float(value)
    if math.isnan(number):
        return "-"
    return f"{number:.0f}" if number >= 10 else f"{number:.1f}"


def _name(method: str, name: str) -> tuple[str, str]:
    if len(name) > _NAME_WIDTH:
        name = name[: _NAME_WIDTH - 1] + "…"
    return method, name


def table_lines(
    stats: pd.DataFrame, rps: dict[tuple[str, str], float] | None = None, limit: int | None = None
) -> list[str]:
    """Return the table: a header, one line per endpoint (at most ``limit``), Aggregated.

    ``rps`` gives the current rate per ``(method, name)``; without it, the run's average.
    """
    rule = "-" * len(_HEAD)
    endpoints = stats[stats["name"] != AGGREGATED].to_dict("records")
    total = stats[stats["name"] == AGGREGATED].to_dict("records")
    hidden = max(0, len(endpoints) - limit) if limit is not None else 0
    lines = [_HEAD, rule]
    lines += [_row(r, rps) for r in endpoints[: len(endpoints) - hidden]]
    if hidden:
        lines.append(f"… {hidden} more endpoints (all of them in the summary)")
    lines.append(rule)
    lines += [_row(r, rps) for r in total]
    return lines


def _row(row: dict[Any, Any], rps: dict[tuple[str, str], float] | None) -> str:
    method, name = _name(str(row["method"]), str(row["name"]))
    n, failed = int(row["requests"]), int(row["failures"])
    share = f"{failed}({failed / n:.1%})" if n else "0(0.0%)"
    rate = (rps or {}).get((str(row["method"]), str(row["name"])), float(row["rps"]))
    return (
        f"{method:<7} {name:<{_NAME_WIDTH}} {n:>8} {share:>14} |"
        f" {_ms(row['mean_ms']):>7} {_ms(row['min_ms']):>7} {_ms(row['max_ms']):>7}"
        f" {_ms(row['p50_ms']):>7} {_ms(row['p95_ms']):>7} | {rate:>8.1f}"
    )


def status_line(elapsed: float, state: str, users: int, total: dict[str, Any], rps: float) -> str:
    """Return one line that says where the run is: time, state, users, rate, failures, p95."""
    n, failed = int(total.get("requests", 0)), int(total.get("failures", 0))
    share = failed / n if n else 0.0
    p50, p95 = (_ms(total.get(k, math.nan)) for k in ("p50_ms", "p95_ms"))
    return (
        f"{elapsed:7.1f} s  {state:<8}  users {users:>6}  requests {n:>9}"
        f"  {rps:>8.1f} req/s  failures {failed} ({share:.1%})  p50 {p50} ms  p95 {p95} ms"
    )


def aggregated(stats: pd.DataFrame) -> dict[str, Any]:
    """Return the Aggregated row as a dict (empty when there is none yet)."""
    rows = stats[stats["name"] == AGGREGATED].to_dict("records")
    return {str(k): v for k, v in rows[0].items()} if rows else {}


class LiveTable:
    """Write the live view: in place on a terminal, a line per interval otherwise."""

    def __init__(self, stream: TextIO, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._drawn = 0

    def show(self, status: str, table: Sequence[str]) -> None:
        """Draw one interval: on a terminal the status and table, else the status line."""
        if not self.tty:
            self.stream.write(status + "\n")
            self.stream.flush()
            return
        text = "\n".join([status, *table]) + "\n"
        prefix = _UP_AND_CLEAR.format(n=self._drawn) if self._drawn else ""
        self.stream.write(prefix + text)
        self.stream.flush()
        self._drawn = len(table) + 1

    def release(self) -> None:
        """Leave what was drawn where it is; what follows is printed below it."""
        self._drawn = 0
