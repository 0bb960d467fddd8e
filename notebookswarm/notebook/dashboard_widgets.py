"""The dashboard's failure and server panels as widgets (their logic: ``dashboard_panels``).

:class:`FailurePanel`: the top failures and exceptions as tables, and a picker that shows
the latest traceback of one exception (a picker, not a ``<details>`` in the table: the
table is redrawn twice a second, which would close an opened traceback each time).

:class:`ServerPanel`: watched server metrics picked by name, in one small chart. It stays
hidden until a watched source (``swarm.watch(...)``) has given rows. Its chart is a plotly
``FigureWidget`` made only when the first metric is picked (each one sends plotly's ~5 MB
bundle to the browser): one row per picked metric, each on its own y axis (a pool of 8
and a rate of 10,000 rows a second share no scale), under one time axis that spans the
same seconds as the requests chart above it.

Both are drawn by the dashboard under its lock; the pickers' callbacks run on the
kernel's main thread and take the same lock through ``lock``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import ipywidgets as widgets
import plotly.graph_objects as go

from notebookswarm.notebook.dashboard_panels import (
    NO_TRACEBACK,
    ServerSeries,
    exceptions_html,
    failures_html,
    traceback_choices,
    traceback_html,
)
from notebookswarm.notebook.failures import FailureLog


class FailurePanel:
    """The failures table, the exceptions table and the traceback picker."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.failures = widgets.HTML()
        self.exceptions = widgets.HTML()
        self.picker = widgets.Dropdown(
            options=[("", NO_TRACEBACK)], layout=widgets.Layout(width="60%")
        )
        self.traceback = widgets.HTML()
        for name, widget in {
            "failures": self.failures,
            "exceptions": self.exceptions,
            "traceback-picker": self.picker,
            "traceback": self.traceback,
        }.items():
            widget.add_class(f"nbs-{name}")
        self.tracebacks = widgets.VBox(
            [self.picker, self.traceback], layout=widgets.Layout(display="none")
        )
        self.widget = widgets.VBox([self.failures, self.exceptions, self.tracebacks])
        self._log: FailureLog | None = None
        self._choices: list[tuple[str, str]] = []
        self._updating = False
        self.picker.observe(lambda _: self._picked(), "value")

    def _picked(self) -> None:
        with self._lock:
            if not self._updating and self._log is not None:
                self.draw(self._log)

    def draw(self, log: FailureLog) -> None:
        """Show the top rows of ``log`` and the picked exception's latest traceback."""
        self._log = log
        failures, exceptions = log.failures(), log.exceptions()
        self.failures.value = failures_html(failures)
        self.exceptions.value = exceptions_html(exceptions)
        choices = traceback_choices(exceptions)
        if choices != self._choices:
            self._choices = choices
            self._updating = True  # new options reset the value: put it back, quietly
            try:
                keep = self.picker.value
                self.picker.options = choices
                self.picker.value = keep if any(v == keep for _, v in choices) else NO_TRACEBACK
            finally:
                self._updating = False
        self.tracebacks.layout.display = "" if len(choices) > 1 else "none"
        self.traceback.value = traceback_html(exceptions, self.picker.value)

    @property
    def html(self) -> str:
        """The two tables as HTML, for the dashboard's static copy."""
        return str(self.failures.value) + str(self.exceptions.value)


#: Metrics drawn at once, at most: each takes a row of the chart.
MAX_PICKED: Final = 6
_ROW_HEIGHT: Final = 110
_COLORS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


class ServerPanel:
    """The picker and the chart; :meth:`draw` is called by the dashboard under its lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.picker = widgets.SelectMultiple(
            options=[],
            rows=8,
            description="server",
            layout=widgets.Layout(width="95%"),
        )
        self.picker.add_class("nbs-server-picker")
        self.note = widgets.HTML(
            '<span style="color:#666">pick up to 6 watched metrics (Ctrl/Shift for several)</span>'
        )
        self.figure: Any = None  # made on the first pick
        self.chart = widgets.Box(layout=widgets.Layout(display="block"))
        self.chart.add_class("nbs-server-chart")
        self.widget = widgets.VBox(
            [self.picker, self.note, self.chart], layout=widgets.Layout(display="none")
        )
        self.widget.add_class("nbs-server")
        self._names: list[str] = []
        self._drawn: tuple[str, ...] = ()
        self._updating = False
        self.series: ServerSeries | None = None
        self._range: Sequence[float] | None = None
        self.picker.observe(lambda _: self._picked(), "value")

    @property
    def picked(self) -> tuple[str, ...]:
        """The metrics chosen, at most :data:`MAX_PICKED`, in the picker's order."""
        return tuple(self.picker.value)[:MAX_PICKED]

    def _picked(self) -> None:
        with self._lock:
            if not self._updating and self.series is not None:
                self.draw(self.series, self._range)

    def draw(self, series: ServerSeries, x_range: Sequence[float] | None) -> None:
        """Show the names seen so far and redraw the picked ones over ``x_range`` (seconds)."""
        self.series, self._range = series, x_range
        names = series.names
        if names != self._names:
            self._names = names
            self._updating = True  # new options reset the value: put it back, quietly
            try:
                keep = tuple(v for v in self.picker.value if v in names)
                self.picker.options = names
                self.picker.value = keep
            finally:
                self._updating = False
            self.widget.layout.display = "" if names else "none"
        picked = self.picked
        if not picked and self.figure is None:
            return
        if self.figure is None:
            self.figure = go.FigureWidget(layout=_layout(()))
            self.chart.children = [self.figure]
        if picked != self._drawn:
            self._reshape(picked)
        with self.figure.batch_update():
            for trace, name in zip(self.figure.data, picked, strict=True):
                times, values = series.points(name)
                trace.x, trace.y = [datetime.fromtimestamp(t) for t in times], values
            if x_range:
                self.figure.layout.xaxis.range = [datetime.fromtimestamp(t) for t in x_range]
            if self.figure.layout.autosize is None:
                self.figure.layout.autosize = True  # fill the box, as the main chart does

    def _reshape(self, picked: tuple[str, ...]) -> None:
        """Give each picked metric a trace and a row of its own."""
        self._drawn = picked
        self.figure.data = ()
        for i, name in enumerate(picked):
            self.figure.add_scatter(
                x=[],
                y=[],
                name=name,
                mode="lines",
                line={"color": _COLORS[i % len(_COLORS)]},
                yaxis="y" if i == 0 else f"y{i + 1}",
            )
        self.figure.layout = _layout(picked)
        self.chart.layout.display = "block" if picked else "none"


def _layout(picked: Sequence[str]) -> dict[str, Any]:
    """A layout with one y axis per metric, stacked top to bottom, one shared time axis."""
    n = max(1, len(picked))
    gap = 0.04 if n > 1 else 0.0
    height = (1.0 - gap * (n - 1)) / n
    layout: dict[str, Any] = {
        "height": 60 + _ROW_HEIGHT * n,
        "margin": {"l": 60, "r": 20, "t": 10, "b": 30},
        "showlegend": False,
        "uirevision": "notebookswarm-server",
        "xaxis": {"anchor": "y" if n == 1 else f"y{n}", "type": "date"},
    }
    for i, name in enumerate(picked):
        top = 1.0 - i * (height + gap)
        axis = "yaxis" if i == 0 else f"yaxis{i + 1}"
        layout[axis] = {
            "domain": [max(0.0, top - height), top],
            "title": {"text": _short(name), "font": {"size": 10}},
            "rangemode": "tozero",
        }
    return layout


def _short(name: str, width: int = 28) -> str:
    metric = name.split(": ", 1)[-1]
    return metric if len(metric) <= width else metric[: width - 1] + "…"
