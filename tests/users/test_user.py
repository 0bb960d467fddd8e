"""The user API run in-process: the real task loop, the real recorder, no gevent.

``User.run`` waits with ``time.sleep``; every user here waits 0 s (or logs its waits and
returns 0), and stops itself by raising ``StopUser`` after a fixed number of task runs,
so each test runs one user synchronously to completion.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from notebookswarm.errors import ConfigError
from notebookswarm.stats.requests import StatsRecorder
from notebookswarm.users.core import (
    Locust,
    RescheduleTask,
    SequentialTaskSet,
    StopUser,
    TaskSet,
    User,
    UserContext,
    check_host,
    check_hosts,
    check_user_classes,
    tag,
    task,
)
from notebookswarm.users.http import HttpLocust
from notebookswarm.users.wait_time import between, constant, constant_pacing, constant_throughput

pytestmark = pytest.mark.timeout(30)  # a user that never stops fails here, not at 180 s


@pytest.fixture(autouse=True)
def _seeded_random() -> Iterator[None]:
    """Make task choice reproducible and leave the global generator as it was."""
    state = random.getstate()
    random.seed(20240527)
    yield
    random.setstate(state)


class Tracker(User):
    """A test user that logs what ran and stops itself after ``limit`` task runs."""

    abstract = True
    wait_time = constant(0)
    limit = 100

    def __init__(self, context: UserContext) -> None:
        super().__init__(context)
        self.log: list[str] = []
        self.runs = 0

    def ran(self, name: str) -> None:
        self.log.append(name)
        self.runs += 1
        if self.runs >= self.limit:
            raise StopUser()


def make_context(
    tags: frozenset[str] | None = None, exclude: frozenset[str] = frozenset()
) -> UserContext:
    return UserContext(recorder=StatsRecorder(), tags=tags, exclude_tags=exclude)


def run_user(cls: type[Any], context: UserContext | None = None, *, clean: bool = True) -> Any:
    """Run a user to completion; with ``clean``, also check that user code raised nothing."""
    context = context or make_context()
    user = cls(context)
    user.run()
    if clean:
        assert context.recorder.current.exceptions == {}  # type: ignore[attr-defined]
    return user


def recorder_of(user: User) -> StatsRecorder:
    recorder = user.context.recorder
    assert isinstance(recorder, StatsRecorder)
    return recorder


# --- task weights -------------------------------------------------------------------

EXECUTIONS = 6_000
WEIGHTS = {"one": 1, "three": 3, "six": 6}


def one(holder: Any) -> None:
    (holder.user if isinstance(holder, TaskSet) else holder).ran("one")


def three(holder: Any) -> None:
    (holder.user if isinstance(holder, TaskSet) else holder).ran("three")


def six(holder: Any) -> None:
    (holder.user if isinstance(holder, TaskSet) else holder).ran("six")


class DecoratedWeights(Tracker):
    limit = EXECUTIONS

    @task(1)
    def one(self) -> None:
        self.ran("one")

    @task(3)
    def three(self) -> None:
        self.ran("three")

    @task(6)
    def six(self) -> None:
        self.ran("six")


class DictWeights(Tracker):
    limit = EXECUTIONS
    tasks = {one: 1, three: 3, six: 6}


class ListWeights(Tracker):
    limit = EXECUTIONS
    tasks = [one, (three, 3), six, six, six, six, six, six]


class WeightedSet(TaskSet):
    @task(1)
    def one(self) -> None:
        one(self)

    @task(3)
    def three(self) -> None:
        three(self)

    @task(6)
    def six(self) -> None:
        six(self)


class NestedWeights(Tracker):
    limit = EXECUTIONS
    tasks = [WeightedSet]


@pytest.mark.parametrize("cls", [DecoratedWeights, DictWeights, ListWeights, NestedWeights])
def test_task_weights_set_how_often_each_task_runs(cls: type[Tracker]) -> None:
    """Over 6,000 runs each task's count is within 3 binomial sd of its share of the weights."""
    user = run_user(cls)
    counts = Counter(user.log)
    assert sum(counts.values()) == EXECUTIONS
    total = sum(WEIGHTS.values())
    for name, weight in WEIGHTS.items():
        p = weight / total
        sd = math.sqrt(EXECUTIONS * p * (1 - p))
        assert abs(counts[name] - EXECUTIONS * p) <= 3 * sd, (name, counts)


def test_dict_and_list_forms_expand_weights_into_the_task_list() -> None:
    """A ``{task: weight}`` dict and ``(task, weight)`` tuples repeat a task weight times."""
    for cls in (DictWeights, ListWeights):
        assert Counter(f.__name__ for f in cls.tasks) == WEIGHTS


# --- sequential task sets -----------------------------------------------------------


class Steps(SequentialTaskSet):
    @task
    def first(self) -> None:
        self.user.ran("first")

    @task(2)
    def second(self) -> None:
        self.user.ran("second")

    @task
    def third(self) -> None:
        self.user.ran("third")


class SequentialUser(Tracker):
    limit = 20
    tasks = [Steps]


def step_a(ts: Any) -> None:
    ts.user.ran("a")


def step_b(ts: Any) -> None:
    ts.user.ran("b")


class ListedSteps(SequentialTaskSet):
    tasks = [step_a, (step_b, 3)]


class ListedSequentialUser(Tracker):
    limit = 12
    tasks = [ListedSteps]


def test_sequential_task_set_runs_tasks_in_declaration_order() -> None:
    """A SequentialTaskSet cycles its tasks in order, repeating a task ``weight`` times."""
    user = run_user(SequentialUser)
    assert user.log == ["first", "second", "second", "third"] * 5


def test_sequential_task_set_follows_a_tasks_list_in_order() -> None:
    """``tasks = [a, (b, 3)]`` on a SequentialTaskSet runs a, b, b, b over and over."""
    user = run_user(ListedSequentialUser)
    assert user.log == ["a", "b", "b", "b"] * 3


# --- nested task sets and interrupt() -----------------------------------------------


class Child(TaskSet):
    def on_start(self) -> None:
        self.user.log.append("child.start")

    @task
    def work(self) -> None:
        self.user.ran("child")
        self.interrupt(reschedule=self.user.reschedule)

    def on_stop(self) -> None:
        self.user.log.append("child.stop")


def before(ts: Any) -> None:
    ts.user.ran("before")


def after(ts: Any) -> None:
    ts.user.ran("after")


class Parent(SequentialTaskSet):
    tasks = [before, Child, after]


class InterruptingUser(Tracker):
    limit = 9  # three cycles of before, child, after
    reschedule = True
    tasks = [Parent]

    def wait_time(self) -> float:
        self.log.append("wait")
        return 0.0


class InterruptingWithoutReschedule(InterruptingUser):
    reschedule = False


def test_interrupt_returns_to_the_parent_at_once() -> None:
    """``interrupt()`` stops the nested set and the parent runs its next task without a wait."""
    user = run_user(InterruptingUser)
    cycle = ["before", "wait", "child.start", "child", "child.stop", "after", "wait"]
    assert user.log == (cycle * 3)[:-1]


def test_interrupt_without_reschedule_makes_the_parent_wait_first() -> None:
    """``interrupt(reschedule=False)`` returns to the parent, which waits before its next task."""
    user = run_user(InterruptingWithoutReschedule)
    cycle = ["before", "wait", "child.start", "child", "child.stop", "wait", "after", "wait"]
    assert user.log == (cycle * 3)[:-1]


class OnlyChildUser(Tracker):
    limit = 5
    reschedule = True
    tasks = [Child]

    def wait_time(self) -> float:
        self.log.append("wait")
        return 0.0


def test_a_task_set_that_always_interrupts_never_makes_its_user_wait() -> None:
    """A user whose only task is a set that interrupts with reschedule never waits."""
    user = run_user(OnlyChildUser)
    assert user.log == (["child.start", "child", "child.stop"] * 5)


# --- tags ---------------------------------------------------------------------------


@tag("c")
class TaggedSet(TaskSet):
    @task
    def inner_plain(self) -> None:
        self.user.ran("inner_plain")
        self.interrupt()

    @tag("x")
    @task
    def inner_x(self) -> None:
        self.user.ran("inner_x")
        self.interrupt()


class TaggedUser(Tracker):
    limit = 400
    tasks = [TaggedSet]

    @tag("a")
    @task
    def only_a(self) -> None:
        self.ran("only_a")

    @tag("b")
    @task
    def only_b(self) -> None:
        self.ran("only_b")

    @task
    @tag("a", "b")
    def a_and_b(self) -> None:
        self.ran("a_and_b")

    @task
    def untagged(self) -> None:
        self.ran("untagged")


EVERY_TASK = {"only_a", "only_b", "a_and_b", "untagged", "inner_plain", "inner_x"}


@pytest.mark.parametrize(
    ("tags", "exclude", "expected"),
    [
        (None, set(), EVERY_TASK),
        ({"a"}, set(), {"only_a", "a_and_b"}),
        ({"a", "b"}, set(), {"only_a", "only_b", "a_and_b"}),
        ({"x"}, set(), {"inner_x"}),
        ({"c"}, set(), {"inner_plain", "inner_x"}),
        ({"a", "c"}, set(), {"only_a", "a_and_b", "inner_plain", "inner_x"}),
        (None, {"b"}, {"only_a", "untagged", "inner_plain", "inner_x"}),
        (None, {"c"}, {"only_a", "only_b", "a_and_b", "untagged"}),
        (None, {"x"}, EVERY_TASK - {"inner_x"}),
        ({"a"}, {"b"}, {"only_a"}),
        ({"c"}, {"x"}, {"inner_plain"}),
    ],
)
def test_tags_select_which_tasks_run(
    tags: set[str] | None, exclude: set[str], expected: set[str]
) -> None:
    """Only tasks carrying a selected tag run (a tagged set brings all its tasks), minus
    any task or set carrying an excluded tag."""
    context = make_context(None if tags is None else frozenset(tags), frozenset(exclude))
    user = run_user(TaggedUser, context)
    assert set(user.log) == expected


def innermost(ts: Any) -> None:
    ts.user.ran("innermost")
    ts.interrupt()


class Middle(TaskSet):
    tasks = [innermost]


@tag("d")
class Outer(TaskSet):
    tasks = [Middle]


class DeeplyTaggedUser(Tracker):
    limit = 5
    tasks = [Outer]

    @task
    def untagged(self) -> None:
        self.ran("untagged")


def test_a_tag_on_a_task_set_reaches_the_sets_nested_inside_it() -> None:
    """Selecting a set's tag runs the untagged tasks of sets nested inside it too."""
    user = run_user(DeeplyTaggedUser, make_context(frozenset({"d"})))
    assert user.log == ["innermost"] * 5


# --- on_start / on_stop -------------------------------------------------------------


class Lifecycle(TaskSet):
    def on_start(self) -> None:
        self.user.log.append("set.start")

    @task
    def work(self) -> None:
        self.user.log.append("set.task")
        raise StopUser()

    def on_stop(self) -> None:
        self.user.log.append("set.stop")


class LifecycleUser(Tracker):
    tasks = [Lifecycle]

    def on_start(self) -> None:
        self.log.append("user.start")

    def on_stop(self) -> None:
        self.log.append("user.stop")


def test_start_and_stop_hooks_run_in_order_when_a_task_stops_the_user() -> None:
    """StopUser in a nested task runs the set's on_stop, then the user's, after both on_starts."""
    user = run_user(LifecycleUser)
    assert user.log == ["user.start", "set.start", "set.task", "set.stop", "user.stop"]


class StopsAtStart(LifecycleUser):
    def on_start(self) -> None:
        self.log.append("user.start")
        raise StopUser()


def test_stop_user_in_on_start_runs_no_task_but_still_runs_on_stop() -> None:
    """A user that raises StopUser in on_start runs no task and still runs on_stop."""
    user = run_user(StopsAtStart)
    assert user.log == ["user.start", "user.stop"]


class FailsAtStart(Tracker):
    limit = 3

    def on_start(self) -> None:
        raise ValueError("login refused")

    @task
    def work(self) -> None:
        self.ran("work")


def test_an_exception_in_on_start_is_recorded_and_the_user_goes_on() -> None:
    """An exception in a user's on_start is counted and the user goes on to its tasks."""
    user = run_user(FailsAtStart, clean=False)
    assert user.log == ["work"] * 3
    (record,) = recorder_of(user).current.exceptions.values()
    assert record.count == 1
    assert record.error == "ValueError: login refused"


# --- RescheduleTask and exceptions --------------------------------------------------


class Rescheduling(SequentialTaskSet):
    @task
    def skips(self) -> None:
        self.user.ran("skips")
        raise RescheduleTask()

    @task
    def next_one(self) -> None:
        self.user.ran("next")


class OnlyRescheduling(Tracker):
    limit = 4
    tasks = [Rescheduling]

    def wait_time(self) -> float:
        self.log.append("wait")
        return 0.0


def test_reschedule_task_skips_to_the_next_task_exactly() -> None:
    """In a sequential set, RescheduleTask moves on to the next task after one wait."""
    user = run_user(OnlyRescheduling)
    assert user.log == ["skips", "wait", "next", "wait", "skips", "wait", "next"]


class Failing(SequentialTaskSet):
    @task
    def explode(self) -> None:
        self.user.ran("explode")
        raise ValueError(f"boom after {self.user.runs} runs")

    @task
    def carry_on(self) -> None:
        self.user.ran("carry_on")


class FailingUser(Tracker):
    limit = 6
    tasks = [Failing]


def test_an_exception_in_a_task_is_recorded_with_its_traceback_and_the_user_goes_on() -> None:
    """A ValueError in a task is counted once per raise under one site, with its traceback,
    and the user keeps running its other tasks."""
    user = run_user(FailingUser, clean=False)
    assert user.log == ["explode", "carry_on"] * 3
    (record,) = recorder_of(user).current.exceptions.values()
    assert record.count == 3
    assert record.error == "ValueError: boom after 5 runs"  # the latest example
    assert "ValueError" in record.traceback
    assert "explode" in record.traceback
    assert "boom after 5 runs" in record.traceback


class TwoFailures(Tracker):
    limit = 8

    @task
    def first_failure(self) -> None:
        self.ran("first_failure")
        raise ValueError("first")

    @task
    def second_failure(self) -> None:
        self.ran("second_failure")
        raise ValueError("second")


def test_exceptions_from_different_places_are_counted_apart() -> None:
    """The same exception type raised in two tasks makes two entries whose counts add up."""
    user = run_user(TwoFailures, clean=False)
    exceptions = recorder_of(user).current.exceptions
    assert len(exceptions) == 2
    by_task = {
        name: record.count
        for record in exceptions.values()
        for name in ("first_failure", "second_failure")
        if name in record.traceback
    }
    raised = Counter(user.log)
    raised[user.log[-1]] -= 1  # the last run stopped the user instead of raising
    assert by_task == raised
    assert sum(by_task.values()) == 7


# --- legacy Locust 0.x names --------------------------------------------------------


class WebsiteTasks(TaskSet):
    def on_start(self) -> None:
        self.user.events.append("login")

    @task
    def index(self) -> None:
        self.user.events.append("index")
        if len(self.user.events) > 5:
            raise StopUser()


class WebsiteLocust(Locust):
    task_set = WebsiteTasks
    min_wait = 5000
    max_wait = 15000


class QuickLocust(Locust):
    task_set = WebsiteTasks
    min_wait = 0
    max_wait = 0

    def on_start(self) -> None:
        self.events: list[str] = []


class DefaultLocust(Locust):
    task_set = WebsiteTasks


def sample_waits(user: Any, n: int = 2000) -> list[float]:
    return [user.wait_time() for _ in range(n)]


def test_locust_task_set_becomes_the_users_only_task() -> None:
    """``task_set = X`` on a Locust makes X its task, and the user runs X's tasks."""
    assert WebsiteLocust.tasks == [WebsiteTasks]
    assert check_user_classes([WebsiteLocust]) == [WebsiteLocust]
    user = run_user(QuickLocust)
    assert user.events == ["login"] + ["index"] * 5


def test_min_and_max_wait_in_milliseconds_become_a_wait_in_seconds() -> None:
    """min_wait=5000, max_wait=15000 waits between 5 and 15 seconds, spread over the range."""
    waits = sample_waits(WebsiteLocust(make_context()))
    assert all(5.0 <= w <= 15.0 for w in waits)
    assert min(waits) < 6.0
    assert max(waits) > 14.0


def test_a_locust_waits_one_second_by_default() -> None:
    """A Locust that sets neither min_wait nor max_wait waits exactly 1 s."""
    assert set(sample_waits(DefaultLocust(make_context()), 50)) == {1.0}


class WebsiteHttpLocust(HttpLocust):
    task_set = WebsiteTasks
    host = "http://127.0.0.1:8089"
    min_wait = 200
    max_wait = 300


class DefaultHttpLocust(HttpLocust):
    task_set = WebsiteTasks
    host = "http://127.0.0.1:8089"


def test_http_locust_waits_in_milliseconds_too() -> None:
    """An HttpLocust's min_wait/max_wait are milliseconds, and its default wait is 1 s."""
    user = WebsiteHttpLocust(make_context())
    default = DefaultHttpLocust(make_context())
    try:
        assert all(0.2 <= w <= 0.3 for w in sample_waits(user))
        assert default.wait_time() == 1.0
    finally:
        user.client.close()
        default.client.close()


def test_legacy_waits_on_a_task_set_override_the_users() -> None:
    """min_wait/max_wait on a TaskSet give that set its own wait in seconds."""

    class SlowSet(TaskSet):
        min_wait = 2000
        max_wait = 3000

        @task
        def work(self) -> None:
            pass

    class Host(Tracker):
        tasks = [SlowSet]

    task_set = SlowSet(Host(make_context()))
    assert all(2.0 <= w <= 3.0 for w in sample_waits(task_set, 200))


def test_only_one_of_min_wait_and_max_wait_is_a_config_error() -> None:
    """Setting min_wait without max_wait (or the reverse) fails, naming the class."""
    with pytest.raises(ConfigError, match=r"OnlyMin .*min_wait/max_wait"):

        class OnlyMin(User):
            min_wait = 100

    with pytest.raises(ConfigError, match=r"OnlyMax .*min_wait/max_wait"):

        class OnlyMax(TaskSet):
            max_wait = 100


def test_a_locust_min_wait_above_the_inherited_max_is_a_config_error() -> None:
    """A Locust with min_wait above the inherited 1000 ms max_wait fails with a ConfigError."""
    with pytest.raises(ConfigError, match=r"TooSlow\.min_wait is 5000 ms but max_wait is 1000 ms"):

        class TooSlow(Locust):
            task_set = WebsiteTasks
            min_wait = 5000


# --- wait_time helpers --------------------------------------------------------------


class Clock:
    """Stands in for the user a wait_time function is called with."""

    def __init__(self, task_started: float | None) -> None:
        self._task_started = task_started


def test_between_waits_uniformly_within_its_bounds() -> None:
    """between(a, b) returns seconds in [a, b] that spread over the range."""
    wait = between(1, 3)
    waits = [wait(None) for _ in range(2000)]
    assert all(1.0 <= w <= 3.0 for w in waits)
    assert min(waits) < 1.1
    assert max(waits) > 2.9
    assert between(2, 2)(None) == 2.0
    assert between(0, 0)(None) == 0.0


def test_constant_waits_the_same_every_time() -> None:
    """constant(s) always returns s seconds as a float."""
    wait = constant(1.5)
    assert {wait(None) for _ in range(10)} == {1.5}
    assert constant(2)(None) == 2.0
    assert isinstance(constant(2)(None), float)


def test_constant_pacing_waits_what_is_left_of_the_period() -> None:
    """constant_pacing(p) waits p minus the time since the task started, never below 0."""
    wait = constant_pacing(10)
    assert wait(Clock(None)) == 10.0
    left = wait(Clock(time.monotonic() - 3.0))
    assert 6.0 < left <= 7.0
    assert wait(Clock(time.monotonic() - 30.0)) == 0.0


def test_constant_throughput_paces_at_the_inverse_of_the_rate() -> None:
    """constant_throughput(r) is constant_pacing(1/r)."""
    assert constant_throughput(4)(Clock(None)) == 0.25
    assert constant_throughput(0.5)(Clock(None)) == 2.0
    assert constant_throughput(4)(Clock(time.monotonic() - 1.0)) == 0.0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: between(-1, 1), "-1"),
        (lambda: between(1, -1), "-1"),
        (lambda: between(3, 1), "between\\(3, 1\\)"),
        (lambda: between("1", 2), "'1'"),
        (lambda: constant(-0.5), "-0.5"),
        (lambda: constant(True), "True"),
        (lambda: constant(None), "None"),
        (lambda: constant_pacing(-1), "-1"),
        (lambda: constant_throughput(0), "constant_throughput\\(0\\)"),
        (lambda: constant_throughput(-2), "-2"),
    ],
)
def test_wait_time_helpers_refuse_bad_values(make: Any, match: str) -> None:
    """A negative, non-numeric or inverted wait, or a zero throughput, is a ConfigError."""
    with pytest.raises(ConfigError, match=match):
        make()


# --- checks of classes, hosts and task weights --------------------------------------


def test_a_user_class_without_tasks_is_refused_with_a_hint() -> None:
    """check_user_classes names a class that has no tasks and says to add @task."""

    class NoTasks(User):
        pass

    with pytest.raises(ConfigError, match=r"NoTasks has no tasks: decorate a method with @task"):
        check_user_classes([NoTasks])


def test_an_abstract_user_class_is_refused() -> None:
    """check_user_classes refuses an abstract class, naming it."""

    class Base(User):
        abstract = True

        @task
        def work(self) -> None:
            pass

    class Concrete(Base):
        pass

    with pytest.raises(ConfigError, match="Base is abstract"):
        check_user_classes([Base])
    assert check_user_classes([Concrete]) == [Concrete]


@pytest.mark.parametrize("thing", [object, "WebsiteUser", WebsiteTasks, 3])
def test_something_that_is_not_a_user_class_is_refused(thing: Any) -> None:
    """check_user_classes refuses anything but a User subclass, naming it."""
    with pytest.raises(ConfigError, match="is not a User subclass"):
        check_user_classes([thing])


@pytest.mark.parametrize("park_after", [-1, "5s", True, float("nan")])
def test_a_bad_park_after_is_refused_naming_the_value(park_after: Any) -> None:
    """park_after must be seconds >= 0 or None; anything else names the class and value."""
    cls = type("Sleeper", (DecoratedWeights,), {"park_after": park_after})
    with pytest.raises(ConfigError, match=r"Sleeper\.park_after must be seconds >= 0 or None"):
        check_user_classes([cls])
    ok = type("Sleeper", (DecoratedWeights,), {"park_after": None})
    assert check_user_classes([ok]) == [ok]


def test_no_user_classes_at_all_is_refused() -> None:
    """check_user_classes refuses an empty list."""
    with pytest.raises(ConfigError, match="no user classes"):
        check_user_classes([])


@pytest.mark.parametrize("host", ["ftp://x", "localhost:80", "127.0.0.1", "http://", ""])
def test_a_host_that_is_not_an_http_url_is_refused(host: str) -> None:
    """check_host refuses anything but an http(s) URL, quoting the value and an example."""
    with pytest.raises(ConfigError, match=f"host {host!r} is not an http\\(s\\) URL"):
        check_host(host)


@pytest.mark.parametrize("host", ["http://127.0.0.1:8080", "https://example.com/base"])
def test_an_http_url_is_a_good_host(host: str) -> None:
    """check_host returns an http(s) URL unchanged."""
    assert check_host(host) == host


def test_a_bad_host_on_the_class_is_refused_when_the_user_is_made() -> None:
    """A user whose class host is not an http(s) URL cannot be constructed."""

    class BadHost(Tracker):
        host = "localhost:80"

        @task
        def work(self) -> None:
            pass

    with pytest.raises(ConfigError, match="'localhost:80'"):
        BadHost(make_context())
    assert BadHost(UserContext(recorder=StatsRecorder(), host="http://h")).host == "http://h"


@pytest.mark.parametrize("weight", [0, -1, 1.5, True, "2"])
def test_a_task_weight_that_is_not_a_positive_integer_is_refused(weight: Any) -> None:
    """@task(w) with w not an integer >= 1 is a ConfigError naming the weight."""
    with pytest.raises(ConfigError, match=f"got {weight!r}"):

        @task(weight)
        def work(user: Any) -> None:
            pass


def test_bare_task_decorator_means_weight_one() -> None:
    """@task without parentheses and @task(2) give weights 1 and 2."""

    class Weighted(Tracker):
        @task
        def once(self) -> None:
            pass

        @task(2)
        def twice(self) -> None:
            pass

    assert Counter(f.__name__ for f in Weighted.tasks) == {"once": 1, "twice": 2}


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("http://127.0.0.1:99999", "has port '99999': a port is a number from 1 to 65535"),
        ("http://127.0.0.1:0", "has port '0': a port is a number from 1 to 65535"),
        ("http://h:http", "has port 'http': a port is a number from 1 to 65535"),
        ("http://[::1]:70000/", "has port '70000': a port is a number from 1 to 65535"),
        ("http://[::1", "is not a valid URL (Invalid IPv6 URL)"),
        ("http://:8080", "names no host before its port"),
        (None, "is not an http(s) URL"),
    ],
)
def test_a_host_with_a_bad_port_or_shape_is_refused_naming_it(host: Any, says: str) -> None:
    """check_host names the value and what is wrong with it: the port, the shape, no host."""
    with pytest.raises(ConfigError) as caught:
        check_host(host)
    assert str(caught.value).startswith(f"host {host!r} {says}")


@pytest.mark.parametrize("host", ["http://[::1]:8080", "https://h:65535/base", "http://h:1"])
def test_ports_at_the_edges_and_ipv6_hosts_pass(host: str) -> None:
    """Ports 1 and 65535 and bracketed IPv6 addresses are good hosts."""
    assert check_host(host) == host


def test_a_client_user_with_no_host_anywhere_is_refused_before_it_runs() -> None:
    """check_hosts refuses an HttpUser with no host on the class or the swarm, naming the
    class; a plain User needs none, and a swarm's host fills in for the class."""

    class NoHost(HttpLocust):
        @task
        def work(self) -> None:
            pass

    class Plain(Tracker):
        @task
        def work(self) -> None:
            pass

    with pytest.raises(ConfigError, match=r"^NoHost has no host: pass host='http://\.\.\.' to"):
        check_hosts([Plain, NoHost], None)
    check_hosts([Plain, NoHost], "http://127.0.0.1:8080")
    check_hosts([Plain], None)
