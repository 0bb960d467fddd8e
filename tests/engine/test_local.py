"""End-to-end runs of one worker process against a real local target."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from notebookswarm._local import run_local
from notebookswarm.errors import ConfigError
from notebookswarm.testing import CountingServer

SEED = """
from notebookswarm import HttpLocust, TaskSet, task

class WebsiteTasks(TaskSet):
    def on_start(self):
        self.client.post("/login", {"username": "test_user", "password": ""})

    @task
    def index(self):
        self.client.get("/")

    @task
    def about(self):
        self.client.get("/about/")

class WebsiteUser(HttpLocust):
    task_set = WebsiteTasks
    min_wait = 200
    max_wait = 600
"""

UsersFile = Callable[[str], Path]


def test_seed_example_counts_equal_target(target: CountingServer, users_file: UsersFile) -> None:
    """The seed example's per-endpoint counts equal what the target received, exactly."""
    users = 12
    result = run_local(users_file(SEED), host=target.url, users=users, spawn_rate=50, run_time=4)
    counted = {(m, n): s.requests for (m, n), s in result.stats.endpoints.items()}
    assert counted == target.counts()
    assert counted[("POST", "/login")] == users
    assert counted[("GET", "/")] + counted[("GET", "/about/")] > users
    assert result.stats.total().failures == 0
    assert all(body == b"username=test_user&password=" for body in target.bodies["POST", "/login"])


def test_seed_example_waits_honour_min_and_max_wait(
    target: CountingServer, users_file: UsersFile
) -> None:
    """Between two tasks a user waits between min_wait and max_wait milliseconds."""
    run_local(users_file(SEED), host=target.url, users=6, spawn_rate=50, run_time=4)
    assert target.log is not None
    by_user: dict[int, list[float]] = defaultdict(list)
    for port, method, _path, when in target.log:
        if method == "GET":  # the login runs before the first task, without a wait
            by_user[port].append(when)
    gaps = [b - a for times in by_user.values() for a, b in pairwise(times)]
    assert len(gaps) >= 12
    assert min(gaps) >= 0.2
    assert max(gaps) <= 0.6 + 0.1  # the wait plus one loopback request


def test_catch_response_overrides_status(target: CountingServer, users_file: UsersFile) -> None:
    """A 200 marked failure counts as a failure with its message; a 500 marked success counts
    as a success."""
    target.route("/broken", status=500)
    path = users_file(
        """
        from notebookswarm import HttpUser, task, constant

        class Checker(HttpUser):
            wait_time = constant(0.05)

            @task
            def check(self):
                with self.client.get("/fine", catch_response=True) as r:
                    if r.text == "ok":
                        r.failure("body was ok but we wanted more")
                with self.client.get("/broken", catch_response=True) as r:
                    if r.status_code == 500:
                        r.success()
                self.client.get("/broken", name="/broken (plain)")
        """
    )
    result = run_local(path, host=target.url, users=2, spawn_rate=10, run_time=2)
    fine = result.stats.endpoints[("GET", "/fine")]
    broken = result.stats.endpoints[("GET", "/broken")]
    plain = result.stats.endpoints[("GET", "/broken (plain)")]
    assert fine.requests > 0 and fine.failures == fine.requests
    assert broken.requests > 0 and broken.failures == 0
    assert plain.failures == plain.requests > 0
    assert result.stats.errors == {
        ("GET", "/fine", "body was ok but we wanted more"): fine.requests,
        ("GET", "/broken (plain)", "HTTP 500 Internal Server Error"): plain.requests,
    }
    assert target.count("GET", "/broken") == broken.requests + plain.requests


def test_exception_in_task_is_counted_and_user_goes_on(
    target: CountingServer, users_file: UsersFile
) -> None:
    """A task that raises ValueError is counted with its traceback and the user keeps running."""
    path = users_file(
        """
        from notebookswarm import HttpUser, task, constant

        class Buggy(HttpUser):
            wait_time = constant(0.05)

            @task
            def explode(self):
                self.client.get("/before")
                raise ValueError("bad data in the task")
        """
    )
    result = run_local(path, host=target.url, users=1, spawn_rate=10, run_time=2)
    runs = target.count("GET", "/before")
    assert runs > 5  # the user carried on after the first exception
    [record] = result.stats.exceptions.values()
    assert record.count == runs
    assert record.error == "ValueError: bad data in the task"
    assert "in explode" in record.traceback and "ValueError" in record.traceback


def test_closed_port_is_a_counted_connection_failure(users_file: UsersFile) -> None:
    """Requests to a port nobody listens on fail with the connection error; nothing crashes."""
    with CountingServer() as gone:
        url = gone.url  # a port that was just free, now closed
    path = users_file(
        """
        from notebookswarm import HttpUser, task, constant

        class Knocker(HttpUser):
            wait_time = constant(0.1)

            @task
            def knock(self):
                self.client.get("/")
        """
    )
    result = run_local(path, host=url, users=2, spawn_rate=10, run_time=1.5)
    stats = result.stats.endpoints[("GET", "/")]
    assert stats.requests > 2 and stats.failures == stats.requests
    [(key, count)] = result.stats.errors.items()
    assert key == ("GET", "/", "ConnectionRefusedError: [Errno 111] Connection refused")
    assert count == stats.requests
    assert not result.stats.exceptions


SIMPLE = """
from notebookswarm import HttpUser, task

class Simple(HttpUser):
    @task
    def index(self):
        self.client.get("/")
"""


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"users": -1}, "users must be an integer >= 0, got -1"),
        ({"spawn_rate": 0}, "spawn_rate must be > 0 users per second, got 0"),
        ({"spawn_rate": -2.5}, "spawn_rate must be > 0 users per second, got -2.5"),
        ({"host": "ftp://example.org"}, "host 'ftp://example.org' is not an http(s) URL"),
        ({"host": "127.0.0.1:8080"}, "host '127.0.0.1:8080' is not an http(s) URL"),
    ],
)
def test_bad_input_is_refused_before_anything_starts(
    target: CountingServer, users_file: UsersFile, kwargs: dict[str, object], needle: str
) -> None:
    """Bad numbers or a non-http host raise a ConfigError naming the value; nothing is sent."""
    options: dict[str, object] = {"host": target.url, "users": 1, "spawn_rate": 1, "run_time": 1}
    options.update(kwargs)
    with pytest.raises(ConfigError) as info:
        run_local(users_file(SIMPLE), **options)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert target.count() == 0


def test_user_class_without_tasks_is_refused(target: CountingServer, users_file: UsersFile) -> None:
    """A user class with no tasks is refused with a message that names it and the fix."""
    path = users_file(
        """
        from notebookswarm import HttpUser

        class Idle(HttpUser):
            pass
        """
    )
    with pytest.raises(ConfigError, match=r"user class Idle has no tasks: decorate a method"):
        run_local(path, host=target.url, users=1, spawn_rate=1, run_time=1)
    assert target.count() == 0
