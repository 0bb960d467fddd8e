"""The dashboard without a browser: frames in, chart/table/warning state out; controls in,
controller calls out."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pandas as pd
import pytest

import notebookswarm as nbs
from notebookswarm.cluster import protocol
from notebookswarm.notebook.dashboard import TRACES, Dashboard
from notebookswarm.notebook.dashboard_model import (
    MAX_NOTICES,
    WARNING,
    DashboardModel,
    Steering,
    endpoint_rows,
    html_table,
)
from notebookswarm.notebook.dashboard_panels import (
    NO_TRACEBACK,
    ServerSeries,
    exceptions_html,
    failures_html,
    series_label,
    traceback_choices,
    traceback_html,
)
from notebookswarm.notebook.rundata import RunData
from notebookswarm.notebook.watch import ServerRow
from notebookswarm.stats.requests import RequestStats
from notebookswarm.testing import CountingServer, FakeClock, wait_until

from updates import as_update

MS = 1_000_000


def frame(
    end: float,
    state: str = "running",
    users: int = 10,
    target: int = 10,
    rate: float = 5.0,
    requests: tuple[tuple[str, str, float, str | None], ...] = (),
    workers: tuple[dict[str, Any], ...] = (),
    overloaded: tuple[str, ...] = (),
    reports: bool = True,
) -> dict[str, Any]:
    """An update frame as the master sends it, covering the second before ``end``."""
    stats = RequestStats()
    for method, name, ms, error in requests:
        stats.record_request(method, name, int(ms * MS), 10, error)
    return {
        "state": state,
        "users": users,
        "target_users": target,
        "spawn_rate": rate,
        "start": end - 1.0,
        "end": end,
        "span": 1.0 if reports else 0.0,
        "stats": stats.to_wire(),
        "workers": list(workers),
        "overloaded": list(overloaded),
        "reports": [["w1", int(end)]] if reports else [],
        "lost": [],
        "failures": [],
        "dropped": 0,
    }


def traffic(n: int, ms: float, name: str = "/", failing: int = 0) -> tuple[Any, ...]:
    """``n`` GET requests of ``ms`` each, the first ``failing`` of them failed."""
    return tuple(("GET", name, ms, "500" if i < failing else None) for i in range(n))


def worker(wid: str, cpu: float = 10.0, lag: float = 0.001, overloaded: bool = False) -> Any:
    return {
        "id": wid,
        "host": "h",
        "pid": 1,
        "cores": 2,
        "state": "running",
        "users": 5,
        "cpu_percent": cpu,
        "loop_lag": lag,
        "rps": 10.0,
        "last_seen": 0.0,
        "error": None,
        "overloaded": overloaded,
    }


# --- the view model ----------------------------------------------------------------------


def test_frames_become_points_of_rates_latencies_and_users() -> None:
    """Each frame with reports adds one point: requests/s and failures/s over its span,
    p50/p95/p99 of its requests in ms, users and target; current rates per endpoint."""
    model = DashboardModel()
    model.feed(
        as_update(frame(101.0, requests=traffic(8, 2.0) + traffic(2, 50.0, "/slow", failing=1)))
    )
    model.feed(as_update(frame(102.0, state="running", requests=())))  # a second with no requests
    [first, quiet] = model.points
    assert (first.time, first.rps, first.failures_per_s) == (101.0, 10.0, 1.0)
    assert first.p50_ms == pytest.approx(2.0, rel=0.01)
    assert first.p99_ms == pytest.approx(50.0, rel=0.01)
    assert (first.users, first.target_users) == (10, 10)
    assert (quiet.rps, quiet.p50_ms, quiet.p99_ms) == (0.0, None, None)
    assert model.current_rps == {}
    series = model.series()
    assert set(series) == {"time", *TRACES}
    assert series["p95_ms"] == [first.p95_ms, None]


def test_state_changes_and_idle_seconds_add_no_points() -> None:
    """A state-change frame (no reports) and idle seconds without requests add nothing, so
    the charts freeze; the first point of a new run starts a new line segment."""
    model = DashboardModel()
    model.feed(as_update(frame(101.0, requests=traffic(5, 1.0))))
    model.feed(as_update(frame(101.4, state="stopping", reports=False)))
    model.feed(
        as_update(frame(102.0, state="stopped", users=0, requests=traffic(3, 1.0)))
    )  # the flush
    assert model.frozen
    for t in (103.0, 104.0):
        model.feed(as_update(frame(t, state="stopped", users=0)))
    assert [p.time for p in model.points] == [101.0, 102.0]
    model.feed(as_update(frame(105.0, state="spawning", users=2, requests=traffic(1, 1.0))))
    assert not model.frozen
    assert model.series()["rps"] == [5.0, 3.0, None, 1.0]


def test_charts_keep_a_bounded_window() -> None:
    """Points older than the window before the newest are dropped."""
    model = DashboardModel(window=10.0)
    for t in range(100, 131):
        model.feed(as_update(frame(float(t), requests=traffic(1, 1.0))))
    assert [p.time for p in model.points] == [float(t) for t in range(120, 131)]


def test_seed_draws_a_run_that_happened_before_the_dashboard() -> None:
    """A dashboard opened after (or during) a run starts from the Aggregated history rows."""
    data = RunData()
    for t in (101.0, 102.0):
        data.ingest(as_update(frame(t, requests=traffic(4, 3.0, failing=1))))
    model = DashboardModel()
    model.seed(data.history())
    assert [(p.time, p.rps, p.failures_per_s, p.users) for p in model.points] == [
        (101.0, 4.0, 1.0, 10),
        (102.0, 4.0, 1.0, 10),
    ]
    assert model.points[0].p50_ms == pytest.approx(3.0, rel=0.01)


def test_warning_names_overloaded_workers_and_clears() -> None:
    """While a worker is overloaded the warning names it with its CPU and loop lag and says
    latencies may include load-generator delay; it clears when the frames say so."""
    model = DashboardModel()
    hot = (worker("w1", cpu=97.0, lag=0.035, overloaded=True), worker("w2"))
    model.feed(as_update(frame(101.0, workers=hot, overloaded=("w1",))))
    assert "w1 (CPU 97%, loop lag 35 ms)" in model.warning
    assert WARNING in model.warning
    assert [w.overloaded for w in model.workers] == [True, False]
    model.feed(as_update(frame(102.0, workers=(worker("w1"), worker("w2")))))
    assert model.warning == ""


def test_endpoint_rows_join_cumulative_stats_and_current_rates() -> None:
    """The endpoint table has the swarm's cumulative counts and percentiles and each
    endpoint's rate in the last update; Aggregated sums the rates."""
    model, data = DashboardModel(), RunData()
    for f in (
        frame(101.0, requests=traffic(4, 1.0) + traffic(2, 9.0, "/b", failing=2)),
        frame(102.0, requests=traffic(3, 1.0)),
    ):
        model.feed(as_update(f))
        data.ingest(as_update(f))
    rows = {r.name: r for r in endpoint_rows(data.stats(), model.current_rps)}
    assert (rows["/"].requests, rows["/"].failures, rows["/"].rps) == (7, 0, 3.0)
    assert (rows["/b"].requests, rows["/b"].failures, rows["/b"].rps) == (2, 2, 0.0)
    assert (rows["Aggregated"].requests, rows["Aggregated"].rps) == (9, 3.0)
    assert rows["/b"].max_ms == pytest.approx(9.0, rel=0.01)
    html = html_table(["name", "p99"], [("/b", math.nan)], marked=[True])
    assert "nbs-overloaded" in html and "–" in html


def test_steering_sends_changes_only_while_running() -> None:
    """A moved control sends only a new value and only while the swarm runs; frames move
    the controls only when the master's target changed or a run began."""
    s = Steering()
    assert s.frame("ready", 0, 1.0) == (None, 1.0)  # first frame: show the master's rate
    assert not s.users_moved(20)  # idle: set would start the swarm
    assert s.frame("spawning", 15, 1.0) == (15, None)  # a run began (from code)
    assert s.users_moved(30)
    assert not s.users_moved(30)  # nothing new
    assert s.frame("running", 15, 1.0) == (None, None)  # in flight before our set: ignored
    assert s.frame("running", 30, 1.0) == (None, None)  # our own change arriving: same value
    assert s.frame("running", 40, 1.0) == (40, None)  # set_users(40) from another cell
    assert s.spawn_rate_moved(5.0)
    s.stopped()
    assert not s.users_moved(50)


def failing_frame(end: float, errors: int, crashes: int) -> dict[str, Any]:
    """A frame with ``errors`` failed GET /b (HTTP 500) and ``crashes`` exceptions raised in
    a task, besides one good request."""
    f = frame(end, requests=traffic(1, 1.0) + traffic(errors, 5.0, "/b", failing=errors))
    stats = RequestStats.from_wire(f["stats"])
    stats.record_exception_text(
        "task.py:7", "KeyError: 'token'", "Traceback ...\nKeyError", crashes
    )
    f["stats"] = stats.to_wire()
    return f


def test_failures_and_exceptions_are_counted_with_when_last_seen() -> None:
    """Each frame's failures and exceptions add up by (method, name, error) and by site,
    stamped with the frame's end; the tables show the counts and the last time seen."""
    model = DashboardModel()
    model.feed(as_update(failing_frame(101.0, errors=3, crashes=1)))
    model.feed(as_update(failing_frame(102.0, errors=2, crashes=4)))
    model.feed(as_update(frame(103.0, requests=traffic(2, 1.0))))
    failures, exceptions = model.failures.failures(), model.failures.exceptions()
    assert failures[["method", "name", "error", "count"]].values.tolist() == [
        ["GET", "/b", "500", 5]
    ]
    assert failures.loc[0, "last_seen"] == pd.Timestamp(102.0, unit="s", tz="UTC")
    assert exceptions[["error", "count"]].values.tolist() == [["KeyError: 'token'", 5]]
    table = failures_html(failures)
    last_seen = time.strftime("%H:%M:%S", time.localtime(102.0))
    assert all(text in table for text in ("Failures", "/b", ">500<", ">5<", last_seen))
    assert "KeyError: &#x27;token&#x27;" in exceptions_html(exceptions)
    model.reset_failures()
    assert model.failures.failures().empty
    assert failures_html(model.failures.failures()) == ""


def test_tracebacks_are_picked_by_message_oldest_first() -> None:
    """The traceback picker lists nothing-picked first, then the exceptions in the order
    they first came; a picked one shows its latest traceback, escaped."""
    model = DashboardModel()
    model.feed(as_update(failing_frame(101.0, errors=0, crashes=1)))
    later = frame(102.0)
    stats = RequestStats.from_wire(later["stats"])
    stats.record_exception_text("b.py:1", "ValueError: <x>", "Traceback\nValueError: <x>", 9)
    later["stats"] = stats.to_wire()
    model.feed(as_update(later))
    exceptions = model.failures.exceptions()
    choices = traceback_choices(exceptions)
    assert [v for _, v in choices] == [NO_TRACEBACK, "KeyError: 'token'", "ValueError: <x>"]
    assert exceptions["error"].tolist() == ["ValueError: <x>", "KeyError: 'token'"]  # by count
    assert "ValueError: &lt;x&gt;" in traceback_html(exceptions, "ValueError: <x>")
    assert traceback_html(exceptions, NO_TRACEBACK) == ""


def test_notices_from_the_master_are_kept_once_beside_the_overload_warning() -> None:
    """What the master says once (a frame's warnings) stays in the warning lines, without
    repeats and the latest few only, after the overload warning while there is one."""
    model = DashboardModel()
    model.note(["said before the dashboard"])
    f = frame(101.0, workers=(worker("w1", overloaded=True),), overloaded=("w1",))
    model.feed(as_update({**f, "warnings": ["too many names"]}))
    model.feed(as_update({**frame(102.0), "warnings": ["too many names"]}))
    assert model.notices == ["said before the dashboard", "too many names"]
    model.feed(as_update({**f, "end": 103.0}))
    assert model.warnings[0] == model.warning and model.warnings[1:] == model.notices
    model.note(f"stuck worker w{i}" for i in range(MAX_NOTICES))
    assert model.notices == [f"stuck worker w{i}" for i in range(MAX_NOTICES)]


def test_server_series_keep_the_window_per_series_and_count_rows_taken() -> None:
    """Watched rows become one series per source, metric, labels and kind (rates marked
    /s); each keeps the last window seconds; ``seen`` is where the next read starts."""
    series = ServerSeries(window=10.0)
    rows = [
        ServerRow(float(t), "site", metric, labels, kind, float(t))
        for t in range(100, 121)
        for metric, labels, kind in (
            ("db_pool_in_use", "", "gauge"),
            ("http_requests_total", 'endpoint="/"', "rate"),
        )
    ]
    series.feed(rows[:20])
    series.feed(rows[20:])
    assert series.seen == len(rows) == 42
    assert series.names == ["site: db_pool_in_use", 'site: http_requests_total{endpoint="/"} /s']
    times, values = series.points("site: db_pool_in_use")
    assert times == values == [float(t) for t in range(110, 121)]
    assert series_label(ServerRow(0.0, "db", "q", 'quantile="0.95"', "quantile", 1.0)) == (
        'db: q{quantile="0.95"}'
    )


# --- the widget, fed by hand -------------------------------------------------------------


class FakeSwarm:
    """Records the calls a dashboard makes; its stats come from a RunData fed the frames."""

    def __init__(self) -> None:
        self.data = RunData()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.callback: Callable[[protocol.Update], None] | None = None
        self.warnings: list[str] = []
        self.watched: list[ServerRow] = []  # what swarm.watch(...) sampled so far

    def server_rows(self, since: int = 0) -> list[ServerRow]:
        return self.watched[since:]

    @property
    def stats(self) -> pd.DataFrame:
        return self.data.stats()

    @property
    def history(self) -> pd.DataFrame:
        return self.data.history()

    @property
    def targets(self) -> tuple[str, int, float]:
        return (self.data.state, self.data.target_users, self.data.spawn_rate)

    def on_frame(self, callback: Callable[[protocol.Update], None]) -> None:
        self.callback = callback

    def send(self, f: dict[str, Any] | protocol.Update) -> None:
        update = as_update(f)
        self.data.ingest(update)
        assert self.callback is not None
        self.callback(update)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.calls.append((name, args))


def test_widget_draws_frames_at_most_twice_a_second() -> None:
    """Frames fill the figure's traces, the tables and the status; a frame under 0.5 s
    after the last redraw is kept but not drawn until the next."""
    swarm, clock = FakeSwarm(), FakeClock()
    dash = Dashboard(swarm, clock=clock)  # type: ignore[arg-type]
    clock.now = 10.0
    swarm.send(frame(101.0, users=4, requests=traffic(6, 2.0, "/search")))
    rps, users = dash.figure.data[TRACES.index("rps")], dash.figure.data[TRACES.index("users")]
    assert (list(rps.y), list(users.y)) == ([6.0], [4])
    assert "/search" in dash.endpoints.value and "running" in dash.status.value
    clock.now = 10.2
    swarm.send(frame(102.0, users=5, requests=traffic(6, 2.0)))
    assert len(rps.y) == 1  # throttled
    clock.now = 10.7
    swarm.send(frame(103.0, users=6, requests=traffic(6, 2.0)))
    assert list(users.y) == [4, 5, 6]
    assert swarm.calls == []  # following frames never steers


def test_widget_warns_and_follows_code_and_freezes() -> None:
    """The warning shows while a worker is overloaded; a target changed from code moves the
    slider and box without a call back; a stop hides the live chart behind a static copy."""
    swarm, clock = FakeSwarm(), FakeClock()
    dash = Dashboard(swarm, clock=clock)  # type: ignore[arg-type]
    hot = (worker("w1", cpu=99.0, overloaded=True),)
    clock.now = 1.0
    swarm.send(frame(101.0, target=10, workers=hot, overloaded=("w1",)))
    assert dash.warning.layout.display == ""
    assert WARNING in dash.warning.value and "nbs-overloaded" in dash.workers.value
    clock.now = 2.0
    swarm.send(frame(102.0, target=250, rate=40.0, requests=traffic(2, 1.0)))
    assert (dash.users_slider.value, dash.users_box.value, dash.rate_slider.value) == (
        250,
        250,
        40.0,
    )
    assert dash.users_slider.max >= 250
    assert dash.warning.layout.display == "none"
    assert swarm.calls == []
    clock.now = 3.0
    swarm.send(frame(103.0, state="stopped", users=0, target=250, requests=traffic(1, 1.0)))
    assert dash.chart.layout.display == "none"
    assert dash.stop_button.disabled and not dash.start_button.disabled
    static = dash.static_bundle()
    figure = static["application/vnd.plotly.v1+json"]
    assert [len(t["x"]) for t in figure["data"]] == [3] * len(TRACES)
    assert "/" in static["text/html"] and "stopped" in static["text/html"]


def test_widget_lists_failures_exceptions_and_a_picked_traceback() -> None:
    """Failures and exceptions appear in their tables as frames bring them; the picker
    shows the chosen exception's traceback and keeps it while more frames arrive; the
    static copy of a stopped run includes both tables."""
    swarm, clock = FakeSwarm(), FakeClock()
    dash = Dashboard(swarm, clock=clock)  # type: ignore[arg-type]
    panel = dash.failure_panel
    assert (panel.failures.value, panel.exceptions.value) == ("", "")
    assert panel.tracebacks.layout.display == "none"
    clock.now = 1.0
    swarm.send(failing_frame(101.0, errors=3, crashes=2))
    assert ">/b<" in panel.failures.value and ">3<" in panel.failures.value
    assert "KeyError" in panel.exceptions.value and panel.tracebacks.layout.display == ""
    panel.picker.value = "KeyError: 'token'"
    assert "Traceback ..." in panel.traceback.value
    clock.now = 2.0
    swarm.send(failing_frame(102.0, errors=1, crashes=1))
    assert panel.picker.value == "KeyError: 'token'" and "Traceback" in panel.traceback.value
    assert ">4<" in panel.failures.value and ">3<" in panel.exceptions.value
    clock.now = 3.0
    swarm.send(frame(103.0, state="stopped", users=0, requests=traffic(1, 1.0)))
    assert "KeyError" in dash.static_bundle()["text/html"]
    assert swarm.calls == []


def test_widget_shows_master_notices_and_picked_server_metrics() -> None:
    """The master's one-time warnings show in the warning area; the server panel stays
    hidden until watched rows exist, makes its chart only when a metric is picked, and
    draws the picked series over the requests chart's seconds."""
    swarm, clock = FakeSwarm(), FakeClock()
    swarm.warnings = ["said before"]
    dash = Dashboard(swarm, clock=clock)  # type: ignore[arg-type]
    assert "said before" in dash.warning.value and dash.warning.layout.display == ""
    server = dash.server_panel
    assert server.widget.layout.display == "none"
    clock.now = 1.0
    swarm.send({**frame(101.0, requests=traffic(2, 1.0)), "warnings": ["a stuck worker"]})
    assert "a stuck worker" in dash.warning.value
    assert server.widget.layout.display == "none" and server.figure is None
    swarm.watched = [
        ServerRow(float(t), "site", m, "", "gauge", float(t - 100 + i))
        for t in (101, 102)
        for i, m in enumerate(("db_pool_in_use", "db_pool_waiting"))
    ]
    clock.now = 2.0
    swarm.send(frame(102.0, requests=traffic(2, 1.0)))
    assert server.widget.layout.display == ""
    assert list(server.picker.options) == ["site: db_pool_in_use", "site: db_pool_waiting"]
    assert server.figure is None  # nothing picked: no second figure
    server.picker.value = ("site: db_pool_waiting", "site: db_pool_in_use")
    [waiting, in_use] = server.figure.data
    assert (list(waiting.y), list(in_use.y)) == ([2.0, 3.0], [1.0, 2.0])
    assert (waiting.yaxis, in_use.yaxis) == ("y", "y2")
    assert tuple(server.figure.layout.xaxis.range) == tuple(
        datetime.fromtimestamp(t) for t in (101.0, 102.0)
    )
    swarm.watched.append(ServerRow(103.0, "site", "db_pool_in_use", "", "gauge", 8.0))
    clock.now = 3.0
    swarm.send(frame(103.0, requests=traffic(2, 1.0)))
    assert list(in_use.y) == [1.0, 2.0, 8.0]
    assert server.picker.value == ("site: db_pool_waiting", "site: db_pool_in_use")


# --- the widget steering a real swarm ----------------------------------------------------


class Visitor(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def index(self) -> None:
        self.client.get("/")


@pytest.fixture
def swarm(target: CountingServer) -> Iterator[nbs.Swarm]:
    with nbs.Swarm(Visitor, host=target.url, workers=1) as s:
        yield s


def test_controls_steer_a_real_swarm(swarm: nbs.Swarm, target: CountingServer) -> None:
    """Start, the users slider, the users box, the spawn-rate slider and Stop each make the
    matching call: the master's users and rate follow, then the traffic stops."""
    dash = Dashboard(swarm)
    dash.users_slider.value = 3
    dash.rate_slider.value = 50.0
    assert swarm.state == "ready"  # moving controls while idle starts nothing
    dash.start_button.click()
    wait_until(lambda: swarm.user_count == 3 and dash.model.state == "running", timeout=15)
    dash.users_slider.value = 6
    wait_until(lambda: swarm.user_count == 6, timeout=15)
    dash.users_box.value = 4
    wait_until(lambda: swarm.user_count == 4 and dash.users_slider.value == 4, timeout=15)
    dash.rate_slider.value = 20.0
    wait_until(lambda: dash.model.spawn_rate == 20.0, timeout=15)
    swarm.set_users(5)  # from code: the controls follow
    wait_until(lambda: dash.users_slider.value == 5 and dash.users_box.value == 5, timeout=15)
    assert swarm.user_count in (4, 5)
    dash.stop_button.click()
    wait_until(lambda: swarm.state == "stopped" and dash.model.frozen, timeout=15)
    sent = target.count()
    wait_until(lambda: dash.chart.layout.display == "none", timeout=15)
    assert target.count() == sent


def test_errors_from_the_controller_show_under_the_controls(swarm: nbs.Swarm) -> None:
    """A call the swarm refuses (it is closed) shows its message instead of raising."""
    dash = Dashboard(swarm)
    swarm.close()
    dash.start_button.click()
    assert "closed" in dash.message.value


def test_arrival_slider_appears_in_the_open_model_and_steers_the_rate(
    swarm: nbs.Swarm, target: CountingServer
) -> None:
    """In the open model the arrivals slider shows the master's rate, follows set_rate from
    code, and moving it changes the rate the master runs."""
    rates: list[Any] = []
    swarm.on_frame(lambda f: rates.append(f.rate))
    dash = Dashboard(swarm)
    assert dash.arrival_slider.layout.display == "none"
    swarm.start(rate=20, max_users=5)
    wait_until(lambda: dash.arrival_slider.layout.display is None, timeout=15)
    assert dash.arrival_slider.value == 20
    swarm.set_rate(30)  # from code: the slider follows
    wait_until(lambda: dash.arrival_slider.value == 30, timeout=15)
    dash.arrival_slider.value = 60  # from the slider: the master's rate follows
    wait_until(lambda: bool(rates) and rates[-1] == 60, timeout=15)
    swarm.stop()
