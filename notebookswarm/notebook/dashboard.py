"""The live dashboard: controls that steer a swarm, charts and tables that follow it.

::

    swarm.dashboard()          # the last line of a cell: one widget

Top to bottom: a users slider with a number box, a spawn-rate slider (and, in the open
model, an arrivals-per-second slider), Start / Stop /
Reset stats and a log-scale toggle for latency; a status line; a warning while any worker
is overloaded, and what the master said once (``swarm.warnings``: too many request names,
a stuck worker); the endpoint table; the top failures and exceptions from user code (a
picker shows an exception's traceback); the worker table; one plotly ``FigureWidget`` with
requests/s and failures/s, latency p50 / p95 / p99 and users; and, once ``swarm.watch``
gives rows, the watched server metrics picked by name (their chart is made on the first
pick; see :mod:`~notebookswarm.notebook.dashboard_widgets`).

Threads: frames arrive on the swarm's background thread. The dashboard feeds them to its
:class:`~notebookswarm.notebook.dashboard_model.DashboardModel` and redraws there, at most twice a
second and inside ``batch_update``, under a lock shared with the widget callbacks (which
the kernel runs on its main thread, when no cell is running). A callback never waits on
the master for long: Stop runs on a thread of its own.

Where widgets are not live (a re-opened notebook, an exported HTML), a widget shows
nothing useful, so displaying the dashboard also writes a second output: empty while the
swarm runs, and a static copy of the charts and endpoint table once it stops (a plotly
figure for Jupyter, HTML for exports). While that copy is shown the live chart is hidden,
so a stopped run is drawn once; starting again brings the live chart back.

The module is longer than most because it is one widget's wiring: what the dashboard
computes lives in ``dashboard_model`` and ``dashboard_panels`` (tested without a browser),
its two optional panels in ``dashboard_widgets``; what remains here is the glue between the
widgets, the swarm and the model, which only a browser test can show.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable
from dataclasses import astuple
from datetime import datetime
from typing import Any, Protocol

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from notebookswarm.cluster import protocol
from notebookswarm.errors import NotebookSwarmError
from notebookswarm.notebook.dashboard_model import (
    STEERABLE,
    DashboardModel,
    Steering,
    endpoint_rows,
    html_table,
)
from notebookswarm.notebook.dashboard_panels import ServerSeries
from notebookswarm.notebook.dashboard_widgets import FailurePanel, ServerPanel
from notebookswarm.notebook.watch import ServerRow

#: Seconds between two redraws, at least.
MIN_REDRAW_INTERVAL = 0.5
TRACES = ("rps", "failures_per_s", "p50_ms", "p95_ms", "p99_ms", "users", "target_users")
_PLACEHOLDER = {"text/plain": ""}
_ENDPOINT_HEADERS = (
    "method",
    "name",
    "requests",
    "failures",
    "rps",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
)
_WORKER_HEADERS = ("worker", "host", "state", "users", "CPU %", "loop lag ms", "rps")


class Controller(Protocol):
    """What the dashboard needs of a swarm (``notebookswarm.Swarm`` is one)."""

    @property
    def stats(self) -> pd.DataFrame: ...
    @property
    def history(self) -> pd.DataFrame: ...
    @property
    def targets(self) -> tuple[str, int, float]: ...
    @property
    def warnings(self) -> list[str]: ...
    def server_rows(self, since: int = 0) -> list[ServerRow]: ...
    def on_frame(self, callback: Callable[[protocol.Update], None]) -> None: ...
    def start(self, users: int, spawn_rate: float = 1.0) -> None: ...
    def set_users(self, users: int) -> None: ...
    def set_spawn_rate(self, spawn_rate: float) -> None: ...
    def set_rate(self, rate: float) -> None: ...
    def stop(self, timeout: float | None = None) -> None: ...
    def reset_stats(self) -> None: ...


class DashboardWidget(widgets.VBox):  # type: ignore[misc]  # ipywidgets has no types
    """The dashboard's widget; displaying it also writes the static copy's output."""

    def __init__(self, dashboard: Dashboard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._dashboard = dashboard

    def _ipython_display_(self) -> None:
        self._dashboard.display()


class Dashboard:
    """Sliders and buttons that steer a swarm; charts and tables that follow its frames."""

    def __init__(
        self,
        swarm: Controller,
        window: float = 900.0,
        users: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.swarm = swarm
        self.clock = clock
        self.model = DashboardModel(window)
        self.model.seed(swarm.history)
        self.model.note(swarm.warnings)
        self.server = ServerSeries(window)
        self.steering = Steering()
        self._lock = threading.RLock()
        self._local = threading.local()  # .syncing: a frame is moving the controls
        self._drawn = -float("inf")
        self._handles: list[Any] = []
        self._static_key: tuple[Any, ...] | None = None
        self._build(users)
        self._sync_from(swarm.targets)
        self.draw()
        swarm.on_frame(self._on_frame)

    # --- building ----------------------------------------------------------------------

    def _build_controls(self, users: int) -> None:
        """The sliders that steer: users (with a number box), spawn rate, arrivals."""
        self.users_slider = widgets.IntSlider(
            value=users,
            min=1,
            max=_nice(max(100, 2 * users)),
            description="users",
            continuous_update=False,
        )
        self.users_box = widgets.BoundedIntText(value=users, min=1, max=10_000_000)
        self.users_box.layout.width = "110px"
        self.rate_slider = widgets.FloatSlider(
            value=10.0,
            min=0.5,
            max=100.0,
            step=0.5,
            description="spawn rate",
            continuous_update=False,
            readout_format=".1f",
        )
        # The open model's control: shown only while the swarm runs arrivals at a rate.
        self.arrival_slider = widgets.FloatSlider(
            value=0.0,
            min=0.0,
            max=100.0,
            step=1.0,
            description="arrivals/s",
            continuous_update=False,
            readout_format=".0f",
            layout=widgets.Layout(display="none"),
        )

    def _build(self, users: int) -> None:
        self._build_controls(users)
        self._arrival_seen: float | None = None
        self.start_button = widgets.Button(description="Start", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop")
        self.reset_button = widgets.Button(description="Reset stats", icon="undo")
        self.log_toggle = widgets.ToggleButton(description="log latency", value=False)
        self.status = widgets.HTML()
        self.warning = widgets.HTML()
        self.message = widgets.HTML()
        self.endpoints = widgets.HTML()
        self.failure_panel = FailurePanel(self._lock)
        self.workers = widgets.HTML()
        self.server_panel = ServerPanel(self._lock)
        self.figure = _figure()
        # A block box (not the default flex row) lets the figure take the full width.
        self.chart = widgets.Box([self.figure], layout=widgets.Layout(display="block"))
        named = {
            "users-slider": self.users_slider,
            "users-box": self.users_box,
            "spawn-rate": self.rate_slider,
            "arrival-rate": self.arrival_slider,
            "start": self.start_button,
            "stop": self.stop_button,
            "reset": self.reset_button,
            "log": self.log_toggle,
            "status": self.status,
            "warning": self.warning,
            "message": self.message,
            "chart": self.chart,
            "endpoints": self.endpoints,
            "workers": self.workers,
        }
        for name, widget in named.items():
            widget.add_class(f"nbs-{name}")
        self._wire()
        self.widget = DashboardWidget(
            self,
            children=[
                widgets.HBox([self.users_slider, self.users_box]),
                self.rate_slider,
                self.arrival_slider,
                widgets.HBox(
                    [self.start_button, self.stop_button, self.reset_button, self.log_toggle]
                ),
                self.status,
                self.warning,
                self.message,
                self.endpoints,
                self.failure_panel.widget,
                self.workers,
                self.chart,
                self.server_panel.widget,
            ],
        )
        self.widget.add_class("nbs-dashboard")

    def _wire(self) -> None:
        """Moved controls and pressed buttons steer the swarm."""
        self.users_slider.observe(lambda c: self._users_moved(int(c["new"])), "value")
        self.users_box.observe(lambda c: self._users_moved(int(c["new"])), "value")
        self.rate_slider.observe(lambda c: self._rate_moved(float(c["new"])), "value")
        self.arrival_slider.observe(lambda c: self._arrivals_moved(float(c["new"])), "value")
        self.start_button.on_click(lambda _: self._start())
        self.stop_button.on_click(lambda _: self._stop())
        self.reset_button.on_click(lambda _: self._reset())
        self.log_toggle.observe(lambda _: self.draw(force=True), "value")

    # --- steering (kernel main thread) -------------------------------------------------

    def _users_moved(self, users: int) -> None:
        if users > self.users_slider.max:
            self.users_slider.max = _nice(2 * users)
        # Keep slider and box in step: each assignment re-enters here and sends nothing
        # more. No lock is held here: a reply to set_users arrives on the frame thread.
        self.users_slider.value = users
        self.users_box.value = users
        with self._lock:
            send = self.steering.users_moved(users) and not self._syncing
        if send:
            self._command(lambda: self.swarm.set_users(users))

    def _rate_moved(self, spawn_rate: float) -> None:
        with self._lock:
            send = self.steering.spawn_rate_moved(spawn_rate) and not self._syncing
        if send:
            self._command(lambda: self.swarm.set_spawn_rate(spawn_rate))

    def _arrivals_moved(self, rate: float) -> None:
        with self._lock:
            send = self._arrival_seen is not None and rate != self._arrival_seen
            send = send and not self._syncing
            self._arrival_seen = rate
        if send:
            self._command(lambda: self.swarm.set_rate(rate))

    def _follow_arrivals(self, rate: Any) -> None:
        """Show the arrival slider in the open model, at the rate the master reports."""
        if rate is None:
            self.arrival_slider.layout.display = "none"
            self._arrival_seen = None
            return
        self.arrival_slider.layout.display = None
        rate = float(rate)
        if self._arrival_seen is None or rate != self._arrival_seen:
            self.arrival_slider.max = max(self.arrival_slider.max, _nice(2 * rate))
            self._arrival_seen = rate
            self.arrival_slider.value = rate

    def _start(self) -> None:
        users, rate = int(self.users_slider.value), float(self.rate_slider.value)
        if self._command(lambda: self.swarm.start(users, rate)):
            with self._lock:
                self.steering.started(users, rate)
                self.start_button.disabled = True
                self.stop_button.disabled = False

    def _stop(self) -> None:
        with self._lock:
            self.steering.stopped()
            self.stop_button.disabled = True
        # stop() waits for the final statistics: never make the kernel wait with it.
        threading.Thread(
            target=self._command, args=(self.swarm.stop,), name="nbs-dashboard-stop", daemon=True
        ).start()

    def _reset(self) -> None:
        if self._command(self.swarm.reset_stats):
            with self._lock:
                self.model.reset_failures()
            self.draw(force=True)

    def _command(self, action: Callable[[], None]) -> bool:
        """Run a controller call; show its error under the controls instead of raising."""
        try:
            action()
        except NotebookSwarmError as exc:
            self.message.value = f'<span style="color:#b00020">{html.escape(str(exc))}</span>'
            return False
        self.message.value = ""
        return True

    @property
    def _syncing(self) -> bool:
        return bool(getattr(self._local, "syncing", False))

    def _sync_from(self, targets: tuple[str, int, float]) -> None:
        """Start from the swarm's known state, so a control moved before the first frame
        reaches a running swarm instead of being dropped."""
        state, target_users, spawn_rate = targets
        with self._lock:
            users, rate = self.steering.frame(state, target_users, spawn_rate)
            self._local.syncing = True
            try:
                if users is not None:
                    self._users_moved(users)
                if rate is not None:
                    self.rate_slider.max = max(self.rate_slider.max, _nice(rate))
                    self.rate_slider.value = rate
            finally:
                self._local.syncing = False

    # --- following (the swarm's frame thread) ------------------------------------------

    def _on_frame(self, frame: protocol.Update) -> None:
        with self._lock:
            self.model.feed(frame)
            m = self.model
            users, rate = self.steering.frame(m.state, m.target_users, m.spawn_rate)
            self._local.syncing = True
            try:
                self._follow_arrivals(frame.rate)
                if users is not None:
                    self._users_moved(users)
                if rate is not None:
                    self.rate_slider.max = max(self.rate_slider.max, _nice(rate))
                    self.rate_slider.value = rate
            finally:
                self._local.syncing = False
            self.draw()

    def draw(self, force: bool = False) -> None:
        """Redraw charts, tables and warning, unless the last redraw was under 0.5 s ago."""
        with self._lock:
            now = self.clock()
            if not force and now - self._drawn < MIN_REDRAW_INTERVAL:
                return
            self._drawn = now
            m = self.model
            series = m.series()
            x = [datetime.fromtimestamp(t) for t in series["time"]]
            with self.figure.batch_update():
                for trace, key in zip(self.figure.data, TRACES, strict=True):
                    trace.x, trace.y = x, series[key]
                self.figure.layout.yaxis2.type = "log" if self.log_toggle.value else "linear"
                if self.figure.layout.autosize is None:
                    # Sent once the widget is on the page: plotly's widget draws at 700 px
                    # when it renders before its box has a width, and only an autosize
                    # relayout after that makes it fill the box.
                    self.figure.layout.autosize = True
            self.status.value = _status_html(m.status())
            lines = m.warnings
            self.warning.value = "".join(
                '<div class="nbs-warning-text" style="background:#fff3cd;padding:6px 10px;'
                f'margin:2px 0;border-left:4px solid #e0a800">⚠ {html.escape(line)}</div>'
                for line in lines
            )
            self.warning.layout.display = "" if lines else "none"
            self.failure_panel.draw(m.failures)
            self.server.feed(self.swarm.server_rows(since=self.server.seen))
            window = (m.points[0].time, m.points[-1].time) if m.points else None
            self.server_panel.draw(self.server, window)
            rows = endpoint_rows(self.swarm.stats, m.current_rps)
            self.endpoints.value = html_table(_ENDPOINT_HEADERS, [astuple(r) for r in rows])
            self.workers.value = html_table(
                _WORKER_HEADERS,
                [astuple(w)[:-1] for w in m.workers],  # all but the overloaded flag
                marked=[w.overloaded for w in m.workers],
            )
            running = m.state in STEERABLE
            self.start_button.disabled = running or m.state == "stopping"
            self.stop_button.disabled = not running or not self.steering.steerable
            self._show_static(m.frozen and bool(m.points))

    # --- the static copy ---------------------------------------------------------------

    def display(self) -> None:
        """Display the widget and, below it, the output that holds the static copy."""
        from IPython.display import display as ipython_display

        display: Callable[..., Any] = ipython_display  # IPython has no type hints
        bundle = dict(self.widget._repr_mimebundle_())
        bundle["text/plain"] = "notebookswarm dashboard (live while its kernel runs)"
        display(bundle, raw=True)
        with self._lock:
            static = self.static_bundle() if self._static_key is not None else _PLACEHOLDER
            handle = display(static, raw=True, display_id=True)
            if handle is not None:  # None outside IPython
                self._handles.append(handle)

    def _show_static(self, show: bool) -> None:
        key = (
            (
                len(self.model.points),
                self.model.points[-1].time,
                self.log_toggle.value,
                self.endpoints.value,
                self.failure_panel.html,
            )
            if show
            else None
        )
        if key == self._static_key:
            return
        self._static_key = key
        self.chart.layout.display = "none" if show else "block"
        bundle = self.static_bundle() if show else _PLACEHOLDER
        for handle in self._handles:
            handle.update(bundle, raw=True)

    def static_bundle(self) -> dict[str, Any]:
        """Return the charts and endpoint table as output data that needs no live kernel."""
        figure = go.Figure(self.figure)
        plotly_json = json.loads(pio.to_json(figure, validate=False))
        chart = pio.to_html(figure, include_plotlyjs="cdn", full_html=False)
        status = self.status.value
        tables = self.endpoints.value + self.failure_panel.html
        return {
            "application/vnd.plotly.v1+json": {**plotly_json, "config": {"responsive": True}},
            "text/html": f'<div class="nbs-static">{status}{chart}{tables}</div>',
            "text/plain": "notebookswarm dashboard: the run as it ended (static copy)",
        }


def _figure() -> Any:
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.07,
        subplot_titles=("requests/s", "latency (ms)", "users"),
    )
    styles = [
        ("requests/s", 1, {"color": "#1f77b4"}),
        ("failures/s", 1, {"color": "#d62728"}),
        ("p50", 2, {"color": "#2ca02c"}),
        ("p95", 2, {"color": "#ff7f0e"}),
        ("p99", 2, {"color": "#9467bd"}),
        ("users", 3, {"color": "#17becf"}),
        ("target users", 3, {"color": "#7f7f7f", "dash": "dot"}),
    ]
    for name, row, line in styles:
        fig.add_trace(
            go.Scatter(x=[], y=[], name=name, mode="lines", line=line, connectgaps=False),
            row=row,
            col=1,
        )
    fig.update_layout(
        height=560,
        margin={"l": 50, "r": 20, "t": 30, "b": 30},
        legend={"orientation": "h", "y": -0.08},
        uirevision="notebookswarm",  # keep the user's zoom across updates
    )
    return go.FigureWidget(fig)


def _status_html(s: dict[str, Any]) -> str:
    return (
        f'<div class="nbs-status-line"><b class="nbs-state">{html.escape(s["state"])}</b> · '
        f'<span class="nbs-users">{s["users"]}</span> users '
        f'(target <span class="nbs-target">{s["target_users"]}</span>) · '
        f"{s['rps']:.1f} requests/s · {s['failures_per_s']:.1f} failures/s · "
        f"{s['workers']} workers</div>"
    )


def _nice(n: float) -> int:
    """Return the smallest 1, 2 or 5 times a power of ten that is at least ``n``."""
    scale = 1
    while True:
        for m in (1, 2, 5):
            if m * scale >= n:
                return m * scale
        scale *= 10
