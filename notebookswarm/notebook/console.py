"""The terminal's view of a run: a compact live table and the closing summary.

On a terminal the table is redrawn in place (ANSI: back to its first line, clear below);
into a file or a CI log it is one line per interval, with no carriage returns, so a log
reads top to bottom. The rendering is pure (a stats DataFrame in, lines out); only
:class:`LiveTable` writes.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import pandas as pd

from notebookswarm.notebook.frames import AGGREGATED

MAX_ROWS = 12  # endpoints shown live; the summary shows them all
NAME_WIDTH = 40  # of the summary; the live table fits the terminal's width
#: Latency columns: all of them in the summary, the compact set live.
Columns = tuple[tuple[str, str], ...]
FULL: Columns = (("Avg", "mean_ms"), ("Min", "min_ms"), ("Max", "max_ms"), ("Med", "p50_ms"))
FULL += (("p95", "p95_ms"),)
COMPACT: Columns = (("Med", "p50_ms"), ("p95", "p95_ms"), ("Max", "max_ms"))
_UP_AND_CLEAR = "\x1b[{n}F\x1b[J"


def _ms(value: Any) -> str:
    number = float(value)
    if math.isnan(number):
        return "-"
    return f"{number:.0f}" if number >= 10 else f"{number:.1f}"


def name_width_for(columns: int, latencies: Sequence[tuple[str, str]] = COMPACT) -> int:
    """Return the Name column's width that makes a table fit ``columns`` characters."""
    fixed = 6 + 1 + 1 + 8 + 1 + 13 + 2 + 7 * len(latencies) + 3 + 8
    return max(10, min(NAME_WIDTH, columns - fixed - 1))


def table_lines(
    stats: pd.DataFrame,
    rps: dict[tuple[str, str], float] | None = None,
    limit: int | None = None,
    name_width: int = NAME_WIDTH,
    latencies: Sequence[tuple[str, str]] = FULL,
) -> list[str]:
    """Return the table: a header, one line per endpoint (at most ``limit``), Aggregated.

    ``rps`` gives the current rate per ``(method, name)``; without it, the run's average.
    """
    head = f"{'Type':<6} {'Name':<{name_width}} {'# reqs':>8} {'# fails':>13} |"
    head += "".join(f" {label:>6}" for label, _ in latencies) + f" | {'req/s':>8}"
    rule = "-" * len(head)
    endpoints = stats[stats["name"] != AGGREGATED].to_dict("records")
    total = stats[stats["name"] == AGGREGATED].to_dict("records")
    hidden = max(0, len(endpoints) - limit) if limit is not None else 0
    lines = [head, rule]
    lines += [_row(r, rps, name_width, latencies) for r in endpoints[: len(endpoints) - hidden]]
    if hidden:
        lines.append(f"… {hidden} more endpoints (all of them in the summary)")
    lines.append(rule)
    lines += [_row(r, rps, name_width, latencies) for r in total]
    return lines


def _row(
    row: dict[Any, Any],
    rps: dict[tuple[str, str], float] | None,
    width: int,
    latencies: Sequence[tuple[str, str]],
) -> str:
    method, name = str(row["method"]), str(row["name"])
    shown = name if len(name) <= width else name[: width - 1] + "…"
    n, failed = int(row["requests"]), int(row["failures"])
    share = f"{failed}({failed / n:.1%})" if n else "0(0.0%)"
    rate = (rps or {}).get((method, name), float(row["rps"]))
    cells = "".join(f" {_ms(row[column]):>6}" for _, column in latencies)
    return f"{method:<6} {shown:<{width}} {n:>8} {share:>13} |{cells} | {rate:>8.1f}"


def status_line(elapsed: float, state: str, users: int, total: dict[str, Any], rps: float) -> str:
    """Return one line that says where the run is: time, state, users, rate, failures, p95."""
    n, failed = int(total.get("requests", 0)), int(total.get("failures", 0))
    share = failed / n if n else 0.0
    p95 = _ms(total.get("p95_ms", math.nan))
    return (
        f"{elapsed:6.1f} s {state}: {users} users, {n} reqs, {rps:.1f} req/s,"
        f" {failed} fails ({share:.1%}), p95 {p95} ms"
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

    def show(self, status: str, stats: pd.DataFrame, rps: dict[tuple[str, str], float]) -> None:
        """Draw one interval: on a terminal the status and table, else the status line."""
        if not self.tty:
            self.stream.write(status + "\n")
            self.stream.flush()
            return
        columns = shutil.get_terminal_size().columns
        table = table_lines(stats, rps, MAX_ROWS, name_width_for(columns), COMPACT)
        # A line wider than the terminal would wrap and the redraw would miss its start.
        text = "\n".join(line[: columns - 1] for line in [status, *table]) + "\n"
        prefix = _UP_AND_CLEAR.format(n=self._drawn) if self._drawn else ""
        self.stream.write(prefix + text)
        self.stream.flush()
        self._drawn = len(table) + 1

    def release(self) -> None:
        """Leave what was drawn where it is; what follows is printed below it."""
        self._drawn = 0


class Progress:
    """A progress line: redrawn in place on a terminal or in Jupyter, else a line now and then."""

    def __init__(self, total: float, every: float = 5.0) -> None:
        self.in_place = _redraws_in_place()
        self.every = every
        self.next = 0.0

    def show(self, elapsed: float, line: str, final: bool = False) -> None:
        """Show ``line`` (at ``elapsed`` seconds); the final one ends the line."""
        if self.in_place:
            print("\r" + line, end="\n" if final else "", flush=True)
        elif final or elapsed >= self.next:
            print(line, flush=True)
            self.next = elapsed + self.every


def _redraws_in_place() -> bool:
    out = sys.stdout
    if getattr(out, "isatty", lambda: False)():
        return True
    return type(out).__module__.startswith("ipykernel")  # Jupyter's output honours \r
