"""The Locust compatibility layer in this process: names, events, environment, shapes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from notebookswarm.cluster import protocol
from notebookswarm.errors import ConfigError
from notebookswarm.stats.requests import StatsRecorder
from notebookswarm.users.compat.environment import Environment
from notebookswarm.users.compat.events import Events
from notebookswarm.users.compat.loading import load_code, load_locustfile
from notebookswarm.users.compat.names import UnsupportedLocustName
from notebookswarm.users.compat.shape import LocustShape, ShapeStep
from notebookswarm.users.core import User, UserContext
from notebookswarm.users.measure import measure

from updates import as_update

FILES = Path(__file__).resolve().parents[1] / "locustfiles"


def test_loading_a_locustfile_leaves_no_locust_module() -> None:
    """After a locustfile that imports locust loads here, `locust` is not in sys.modules."""
    loaded = load_locustfile(FILES / "taskset_style.py")
    assert [c.__name__ for c in loaded.classes] == ["WebsiteUser"]
    assert not [name for name in sys.modules if name == "locust" or name.startswith("locust.")]
    assert len(loaded.environment.events.request._handlers) == 1


def test_each_load_has_its_own_events() -> None:
    """Loading the same file twice registers its listeners once on each load's events."""
    first = load_locustfile(FILES / "taskset_style.py")
    second = load_locustfile(FILES / "taskset_style.py")
    assert first.environment.events is not second.environment.events
    assert len(second.environment.events.report_to_master._handlers) == 1


def test_locust_names_win_over_an_installed_locust(tmp_path: Path) -> None:
    """A real `locust` package on the path is neither imported nor disturbed by loading."""
    fake = tmp_path / "site" / "locust"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("MARK = 'real'\n")
    user_file = tmp_path / "users.py"
    user_file.write_text(
        textwrap.dedent(
            """
            import locust
            from locust.contrib.fasthttp import FastHttpUser
            from locust import HttpUser, task
            SEEN = locust.__version__
            class U(HttpUser):
                @task
                def t(self):
                    pass
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import sys
        import locust
        from notebookswarm.users.compat.loading import load_locustfile
        loaded = load_locustfile({str(user_file)!r})
        module = sys.modules[loaded.classes[0].__module__]
        print(module.SEEN, sys.modules["locust"].MARK, "gevent" in sys.modules)
        """
    )
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    version, mark, gevent = out.stdout.split()
    assert version.startswith("notebookswarm-")
    assert (mark, gevent) == ("real", "False")


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("from locust import web_ui", "locust.web_ui"),
        ("import locust.argument_parser", "locust.argument_parser"),
        ("from locust.runners import Foo", "locust.runners.Foo"),
    ],
)
def test_an_unsupported_name_says_what_to_use(source: str, named: str) -> None:
    """Importing a Locust name the layer lacks raises ImportError naming it and the way out."""
    with pytest.raises(UnsupportedLocustName) as caught:
        load_code(source + "\n", "bad.py")
    assert named in str(caught.value)
    assert ":" in str(caught.value).split(named, 1)[1]


def test_environment_passed_to_init_reads_through_the_context() -> None:
    """A Locust-style __init__(self, environment) can read environment.events before super()."""
    events = Events()
    env = Environment(events=events, host="http://127.0.0.1:1")
    seen = []

    class Custom(User):
        def __init__(self, environment: UserContext) -> None:
            seen.append(environment.events)
            super().__init__(environment)

    user = Custom(UserContext(recorder=StatsRecorder(), environment=env))
    assert seen == [events]
    assert user.environment is env


def test_listener_errors_do_not_stop_other_listeners() -> None:
    """A raising listener is reported to on_error and the next listener still runs."""
    events = Events()
    failures: list[str] = []
    events.on_error = lambda hook, exc: failures.append(f"{hook}: {exc}")
    calls: list[int] = []

    @events.test_start.add_listener
    def bad(**kwargs: object) -> None:
        raise ValueError("boom")

    events.test_start.add_listener(lambda **kw: calls.append(1))
    events.test_start.fire(environment=None)
    assert failures == ["test_start: boom"]
    assert calls == [1]


def test_request_hook_records_only_while_listened() -> None:
    """Bound to a recorder, the hook leaves it untouched without listeners and fires with one."""
    recorder = StatsRecorder()
    events = Events()
    events.request.bind(recorder)
    assert "record_request" not in vars(recorder)
    heard: list[tuple[str, str, float, object]] = []

    def listener(
        request_type: str, name: str, response_time: float, exception: object, **_: object
    ) -> None:
        heard.append((request_type, name, response_time, exception))

    events.request.add_listener(listener)
    recorder.record_request("GET", "/a", 2_500_000, 10, None)
    events.request.fire(
        request_type="sql", name="q", response_time=4.0, response_length=0, exception=None
    )
    with events.request.measure("rpc", "m"):
        raise RuntimeError("down")
    events.request.remove_listener(listener)
    assert "record_request" not in vars(recorder)
    recorder.record_request("GET", "/a", 1_000_000, 10, None)
    stats = recorder.take()
    assert {k: s.requests for k, s in stats.endpoints.items()} == {
        ("GET", "/a"): 2,
        ("sql", "q"): 1,
        ("rpc", "m"): 1,
    }
    assert stats.errors == {("rpc", "m", "RuntimeError: down"): 1}
    assert [h[:3] for h in heard[:2]] == [("GET", "/a", 2.5), ("sql", "q", 4.0)]
    assert isinstance(heard[2][3], RuntimeError)


def test_measure_records_success_failure_and_exception() -> None:
    """measure() records a success, a failure() text, and an exception's text, once each."""
    recorder = StatsRecorder()
    with measure(recorder, "db", "ok") as m:
        m.response_length = 7
    with measure(recorder, "db", "marked") as m:
        m.failure("no rows")
    with measure(recorder, "db", "raised"):
        raise ConnectionError("gone")
    stats = recorder.take()
    assert stats.endpoints[("db", "ok")].bytes == 7
    assert stats.errors == {
        ("db", "marked", "no rows"): 1,
        ("db", "raised", "ConnectionError: gone"): 1,
    }
    assert sum(s.requests for s in stats.endpoints.values()) == 3


def test_environment_stats_reads_live_statistics() -> None:
    """environment.stats.total gives Locust's numbers in milliseconds from our statistics."""
    recorder = StatsRecorder()
    for ms in (10, 20, 30, 40):
        recorder.record_request("GET", "/", ms * 1_000_000, 5, "HTTP 500" if ms == 40 else None)
    env = Environment()
    env.set_stats_source(lambda: recorder.current)
    total = env.stats.total
    assert (total.num_requests, total.num_failures, total.fail_ratio) == (4, 1, 0.25)
    assert total.avg_response_time == 25.0
    assert total.get_response_time_percentile(1.0) == 40.0
    assert env.stats.get("/", "GET").num_requests == 4


def test_load_test_shape_adapter_follows_stages() -> None:
    """The adapter gives the shape's users, rate and classes at a given elapsed time, then None."""
    loaded = load_locustfile(FILES / "shape_stages.py")
    shape = loaded.shape()
    assert shape is not None
    adapter = LocustShape(shape)
    assert adapter.value_at(0.0) == 2.0
    assert adapter.step_at(1.9) == ShapeStep(2, 10.0, None)
    assert adapter.step_at(3.0) == ShapeStep(4, 10.0, ("Admin",))
    shape.reset_time()  # run time starts over at 3.0
    assert adapter.step_at(4.0) == ShapeStep(2, 10.0, None)
    assert adapter.value_at(8.5) is None


def test_a_bad_tick_answer_is_refused() -> None:
    """A tick() answer that is not (users, rate[, classes]) or None raises ConfigError."""

    class Bad:
        def tick(self) -> int:
            return 5

    with pytest.raises(ConfigError, match=r"return \(users, spawn_rate\)"):
        LocustShape(Bad()).value_at(0.0)  # type: ignore[arg-type]


def test_controller_events_fire_worker_report_once_per_report_then_test_stop() -> None:
    """Forwarded report data fires worker_report once each; the stopped frame fires test_stop."""
    from notebookswarm.notebook.events_host import ControllerEvents
    from notebookswarm.users.compat.environment import MasterRunner

    loaded = load_locustfile(FILES / "taskset_style.py")
    events = loaded.environment.events
    got: list[tuple[str, int]] = []
    at_stop: list[int] = []
    events.worker_report.add_listener(lambda client_id, data: got.append((client_id, data["n"])))
    events.test_stop.add_listener(lambda environment: at_stop.append(sum(n for _, n in got)))
    host = ControllerEvents(loaded)
    host.fire_init()
    assert loaded.environment.side == "master"  # the file's init listener ran here
    assert isinstance(loaded.environment.runner, MasterRunner)
    host.fire_test_start()
    recorder = StatsRecorder()
    recorder.record_request("GET", "/", 1_000_000, 1, None)
    stats = recorder.take().to_wire()
    for state, users, part, custom in [
        ("running", 2, stats, [protocol.CustomReport(worker="w1", data={"n": 3})]),
        ("stopped", 0, stats, [protocol.CustomReport(worker="w2", data={"n": 4})]),
        ("stopped", 0, {}, []),
    ]:
        update = {"state": state, "users": users, "stats": part, "custom": custom}
        host.on_update(as_update(update))
    host.fire_test_stop()
    assert got == [("w1", 3), ("w2", 4)]
    assert at_stop == [7]
    assert loaded.environment.stats.total.num_requests == 2
