"""The dashboard without a browser: frames in, chart/table/warning state out; controls in,
controller calls out."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

import notebookswarm as nbs
from notebookswarm.cluster import protocol
from notebookswarm.notebook.dashboard import TRACES, Dashboard
from notebookswarm.notebook.dashboard_model import (
    WARNING,
    DashboardModel,
    Steering,
    endpoint_rows,
    html_table,
)
from notebookswarm.notebook.rundata import RunData
from notebookswarm.stats.requests import RequestStats
from notebookswarm.testing import CountingServer

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


# --- the widget, fed by hand -------------------------------------------------------------


class FakeSwarm:
    """Records the calls a dashboard makes; its stats come from a RunData fed the frames."""

    def __init__(self) -> None:
        self.data = RunData()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.callback: Callable[[protocol.Update], None] | None = None

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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_widget_draws_frames_at_most_twice_a_second() -> None:
    """Frames fill the figure's traces, the tables and the status; a frame under 0.5 s
    after the last redraw is kept but not drawn until the next."""
    swarm, clock = FakeSwarm(), Clock()
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
    swarm, clock = FakeSwarm(), Clock()
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


# --- the widget steering a real swarm ----------------------------------------------------


class Visitor(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def index(self) -> None:
        self.client.get("/")


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


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
    wait_for(lambda: swarm.user_count == 3 and dash.model.state == "running")
    dash.users_slider.value = 6
    wait_for(lambda: swarm.user_count == 6)
    dash.users_box.value = 4
    wait_for(lambda: swarm.user_count == 4 and dash.users_slider.value == 4)
    dash.rate_slider.value = 20.0
    wait_for(lambda: dash.model.spawn_rate == 20.0)
    swarm.set_users(5)  # from code: the controls follow
    wait_for(lambda: dash.users_slider.value == 5 and dash.users_box.value == 5)
    assert swarm.user_count in (4, 5)
    dash.stop_button.click()
    wait_for(lambda: swarm.state == "stopped" and dash.model.frozen)
    sent = target.count()
    wait_for(lambda: dash.chart.layout.display == "none")
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
    swarm.on_frame(lambda f: rates.append(f.get("rate")))
    dash = Dashboard(swarm)
    assert dash.arrival_slider.layout.display == "none"
    swarm.start(rate=20, max_users=5)
    wait_for(lambda: dash.arrival_slider.layout.display is None)
    assert dash.arrival_slider.value == 20
    swarm.set_rate(30)  # from code: the slider follows
    wait_for(lambda: dash.arrival_slider.value == 30)
    dash.arrival_slider.value = 60  # from the slider: the master's rate follows
    wait_for(lambda: bool(rates) and rates[-1] == 60)
    swarm.stop()
