"""The user API: classes people subclass to describe what a simulated user does.

Shaped like Locust's (and through :mod:`notebookswarm.users.compat` a locustfile runs
unchanged): ``User`` with
``tasks`` or ``@task`` methods, ``TaskSet`` and ``SequentialTaskSet`` for nested
behaviour, ``@tag`` to select tasks, ``on_start``/``on_stop``, ``weight``,
``fixed_count`` and ``abstract`` on classes, and the control-flow exceptions
``StopUser``, ``RescheduleTask`` and ``InterruptTaskSet``. The legacy names of Locust
0.x (``Locust``, ``HttpLocust``, ``task_set``, ``min_wait``/``max_wait`` in
milliseconds) keep working.

Nothing here imports gevent: waiting uses ``time.sleep``, which is cooperative once the
worker entry point has monkey-patched the process, and stopping a user is the runtime's
job. A user talks to the rest of the system only through its :class:`UserContext`.

One module, longer than most, because ``User`` and ``TaskSet`` are one thing: they share
the task loop (choosing, running, waiting, interrupting) that nested task sets re-enter.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, overload
from urllib.parse import urlsplit

from notebookswarm.errors import ConfigError
from notebookswarm.stats.recorder import Recorder
from notebookswarm.users.measure import Measurement, measure
from notebookswarm.users.wait_time import between

F = TypeVar("F", bound=Callable[..., Any])
TaskLike = Any  # a function taking the task set / user, or a TaskSet subclass


#: What user code may raise and the user live on: every Exception, and ``sys.exit()`` or a
#: ``KeyboardInterrupt`` raised in a task (a locustfile's bug is counted, with its
#: traceback, like any other; it never ends the worker or the user). The runtime's kill
#: (gevent's GreenletExit) and our own StopUser are not among them.
USER_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit, KeyboardInterrupt)


class StopUser(Exception):  # Locust's name, kept so locustfiles port
    """Raise in a task to stop this user for good (its ``on_stop`` runs)."""


class RescheduleTask(Exception):  # Locust's name
    """Raise in a task to end it early and go on to the next one after the usual wait."""


class InterruptTaskSet(Exception):  # Locust's name
    """Raised by :meth:`TaskSet.interrupt` to hand control back to the parent."""

    def __init__(self, reschedule: bool = True) -> None:
        super().__init__(reschedule)
        self.reschedule = reschedule


class _Park(BaseException):
    """A top-level wait long enough to hand back: the runtime resumes the user later.

    A BaseException so that no ``except Exception`` in a task set's code can swallow it.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class _BackToParent(Exception):
    """Carries a nested task set's interrupt() to its parent."""

    def __init__(self, reschedule: bool) -> None:
        super().__init__(reschedule)
        self.reschedule = reschedule


@dataclass
class UserContext:
    """What a running user needs from outside: the host, the recorder and the tag filter."""

    recorder: Recorder
    host: str | None = None
    tags: frozenset[str] | None = None
    exclude_tags: frozenset[str] = frozenset()
    _task_cache: dict[tuple[type[Any], bool], list[TaskLike]] = field(default_factory=dict)
    #: Locust's ``environment`` (users.compat), set by the process that runs the users.
    environment: Any = None

    def __getattr__(self, name: str) -> Any:
        # A Locust user's __init__(self, environment) gets this context: let it read the
        # environment's attributes (events, parsed_options, runner...) through it.
        environment = self.__dict__.get("environment")
        if environment is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(environment, name)

    def tasks_of(self, cls: type[Any], selected: bool = False) -> list[TaskLike]:
        """Return a class's tasks after the tag filter (memoised per class).

        ``selected`` says the class, or a task set it runs inside, carries a selected tag:
        then every task passes but the excluded ones, as :func:`filter_tasks` promised
        when it kept the class.
        """
        key = (cls, selected)
        tasks = self._task_cache.get(key)
        if tasks is None:
            tags = None if selected else self.tags
            tasks = filter_tasks(cls.tasks, tags, self.exclude_tags)
            self._task_cache[key] = tasks
        return tasks


# --- declarations -------------------------------------------------------------------


@overload
def task(weight: F) -> F: ...
@overload
def task(weight: int = 1) -> Callable[[F], F]: ...
def task(weight: Any = 1) -> Any:
    """Mark a method (or nested TaskSet class) as a task; ``@task(3)`` picks it 3x as often."""

    def mark(func: F, w: int) -> F:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ConfigError(f"@task weight must be an integer >= 1, got {w!r}")
        func.nbs_task_weight = w  # type: ignore[attr-defined]
        return func

    if callable(weight):
        return mark(weight, 1)
    return lambda func: mark(func, weight)


def tag(*tags: str) -> Callable[[F], F]:
    """Tag a task (or TaskSet class) so a run can include or exclude it by tag."""
    for t in tags:
        if not isinstance(t, str) or not t:
            raise ConfigError(f"tags must be non-empty strings, got {t!r}")

    def mark(func: F) -> F:
        known: set[str] = set(getattr(func, "nbs_tags", ()))
        func.nbs_tags = known | set(tags)  # type: ignore[attr-defined]
        return func

    return mark


def _collect_tasks(bases: tuple[type, ...], namespace: dict[str, Any]) -> list[TaskLike]:
    """Return inherited tasks, then ``tasks = ...`` entries, then ``@task`` methods."""
    found: list[TaskLike] = []
    for base in bases:
        found += getattr(base, "tasks", None) or []
    declared = namespace.get("tasks")
    if declared is None and namespace.get("task_set") is not None:
        declared = [namespace["task_set"]]  # Locust 0.x: task_set = SomeTaskSet
    if isinstance(declared, dict):
        declared = list(declared.items())
    for item in declared or []:
        if isinstance(item, tuple):
            item, count = item
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigError(
                    f"task weight must be an integer >= 1, got {count!r} for {item!r}"
                )
            found += [item] * count
        else:
            found.append(item)
    for value in namespace.values():
        weight = getattr(value, "nbs_task_weight", None)
        if weight is not None:
            found += [value] * weight
    return found


def _legacy_wait(cls: type[Any], namespace: dict[str, Any]) -> None:
    """Turn Locust 0.x ``min_wait``/``max_wait`` (milliseconds) into a ``wait_time``."""
    if ("min_wait" in namespace or "max_wait" in namespace) and "wait_time" not in namespace:
        low, high = cls.min_wait, cls.max_wait
        if low is None or high is None:
            raise ConfigError(
                f"{cls.__name__} sets only one of min_wait/max_wait: set both, in milliseconds"
            )
        if high < low:  # e.g. min_wait = 5000 under Locust's inherited max_wait = 1000
            raise ConfigError(
                f"{cls.__name__}.min_wait is {low!r} ms but max_wait is {high!r} ms: "
                "set max_wait >= min_wait (both in milliseconds)"
            )
        cls.wait_time = between(low / 1000.0, high / 1000.0)


class _TaskHolderMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        namespace["tasks"] = _collect_tasks(bases, namespace)
        namespace.setdefault("abstract", False)
        cls = super().__new__(mcs, name, bases, namespace)
        _legacy_wait(cls, namespace)
        return cls


def filter_tasks(
    tasks: Iterable[TaskLike], tags: frozenset[str] | None, exclude: frozenset[str]
) -> list[TaskLike]:
    """Keep the tasks a tag selection allows; a TaskSet is kept if any of its tasks is."""
    kept: list[TaskLike] = []
    for item in tasks:
        own: set[str] = set(getattr(item, "nbs_tags", ()))
        if own & exclude:
            continue
        if isinstance(item, type) and issubclass(item, TaskSet):
            inner_tags = None if (tags is None or own & tags) else tags
            if filter_tasks(item.tasks, inner_tags, exclude):
                kept.append(item)
        elif tags is None or own & tags:
            kept.append(item)
    return kept


# --- running ------------------------------------------------------------------------

#: What a measured block lets through: the user API's own control flow.
_CONTROL_FLOW = (StopUser, RescheduleTask, InterruptTaskSet, _BackToParent)


class TaskSet(metaclass=_TaskHolderMeta):
    """A group of tasks a user runs; nest one in a user's ``tasks`` for sub-behaviour."""

    tasks: ClassVar[list[TaskLike]] = []
    abstract: ClassVar[bool] = True
    min_wait: ClassVar[float | None] = None
    max_wait: ClassVar[float | None] = None

    def __init__(self, parent: TaskSet | User) -> None:
        self.parent = parent
        self.user: User = parent if isinstance(parent, User) else parent.user
        tags = self.user.context.tags
        own: set[str] = set(getattr(type(self), "nbs_tags", ()))
        self._tag_selected: bool = getattr(parent, "_tag_selected", False) or bool(
            tags is not None and own & tags
        )
        self._tasks = self.user.context.tasks_of(type(self), self._tag_selected)
        self._task_started: float | None = None

    @property
    def client(self) -> Any:
        """The user's client (an HTTP session for ``HttpUser``)."""
        return self.user.client

    @property
    def environment(self) -> Any:
        """Locust's ``environment`` (host, events, parsed_options, runner, stats)."""
        return self.user.environment

    def on_start(self) -> None:
        """Run once when this task set starts; override it."""

    def on_stop(self) -> None:
        """Run once when this task set stops or its user stops; override it."""

    def wait_time(self) -> float:
        """Seconds to wait after a task: the user's ``wait_time`` unless overridden here."""
        return self.user.wait_time()

    def interrupt(self, reschedule: bool = True) -> None:
        """Leave this task set for its parent; with ``reschedule=False`` the parent waits first."""
        raise InterruptTaskSet(reschedule)

    def get_next_task(self) -> TaskLike:
        """Pick the next task at random, in proportion to the weights."""
        if not self._tasks:
            raise ConfigError(f"{type(self).__name__} has no tasks: add a @task method")
        return random.choice(self._tasks)

    def execute_task(self, task_: TaskLike) -> None:
        """Run one task: a nested TaskSet runs until interrupted, a function is called."""
        if isinstance(task_, type) and issubclass(task_, TaskSet):
            task_(self).run()
        else:
            task_(self)

    def wait(self) -> None:
        """Sleep for ``wait_time()`` seconds (cooperatively, in a worker)."""
        self.user._sleep(self.wait_time())

    def run(self) -> None:
        """Run tasks until interrupted or the user stops."""
        try:
            self.on_start()
            while True:
                self._run_one()
        except InterruptTaskSet as interrupt:
            self._stop_quietly()
            raise _BackToParent(interrupt.reschedule) from None
        except BaseException:  # StopUser, and the runtime's kill (GreenletExit)
            self._stop_quietly()
            raise

    def _run_one(self) -> None:
        next_task = self.get_next_task()
        self._task_started = self.user._task_started = time.monotonic()
        self.user._state = "running"
        self.user._current_task = next_task
        try:
            self.execute_task(next_task)
        except RescheduleTask:
            pass
        except _BackToParent as back:  # a nested task set called interrupt()
            if back.reschedule:
                return
        except (StopUser, InterruptTaskSet):
            raise
        except USER_ERRORS as exc:  # user code failed: count it, carry on
            self.user.context.recorder.record_exception(exc)
        self.wait()

    def _stop_quietly(self) -> None:
        try:
            self.on_stop()
        except USER_ERRORS as exc:
            self.user.context.recorder.record_exception(exc)


class SequentialTaskSet(TaskSet):
    """A task set that runs its tasks in declaration order, over and over."""

    abstract = True

    def __init__(self, parent: TaskSet | User) -> None:
        super().__init__(parent)
        self._position = 0

    def get_next_task(self) -> TaskLike:
        """Return the task after the previous one, wrapping around at the end."""
        if not self._tasks:
            raise ConfigError(f"{type(self).__name__} has no tasks: add a @task method")
        chosen = self._tasks[self._position % len(self._tasks)]
        self._position += 1
        return chosen


class _UserTasks(TaskSet):
    """Runs a user's own ``tasks``, calling each with the user rather than a task set."""

    abstract = True

    def __init__(self, user: User) -> None:
        super().__init__(user)
        self._tasks = user.context.tasks_of(type(user))

    def wait_time(self) -> float:
        return self.user.wait_time()

    def wait(self) -> None:
        self.user._sleep(self.wait_time(), top_level=True)

    def execute_task(self, task_: TaskLike) -> None:
        if isinstance(task_, type) and issubclass(task_, TaskSet):
            task_(self.user).run()
        else:
            task_(self.user)


class User(metaclass=_TaskHolderMeta):
    """A simulated user: subclass it, give it tasks and a ``wait_time``.

    Class attributes: ``host`` (overridden by the swarm's host when that is given),
    ``wait_time``, ``tasks``, ``weight`` (relative share of the users),
    ``fixed_count`` (exactly this many, taken before weights), ``abstract`` (a base class
    that is never spawned), ``park_after`` (a wait between tasks at least this many
    seconds long lets go of the user's greenlet, see :meth:`run`; None never does).
    """

    host: str | None = None
    tasks: ClassVar[list[TaskLike]] = []
    weight: ClassVar[int] = 1
    fixed_count: ClassVar[int] = 0
    abstract: ClassVar[bool] = True
    min_wait: ClassVar[float | None] = None
    max_wait: ClassVar[float | None] = None
    park_after: ClassVar[float | None] = 5.0
    #: True for users whose client needs a base URL (``HttpUser``, ``FastHttpUser``).
    needs_host: ClassVar[bool] = False

    def wait_time(self) -> float:
        """Seconds to wait after each task; assign ``between(...)`` and friends to change it."""
        return 0.0

    def __init__(self, context: UserContext) -> None:
        self.context = context
        self.host = resolve_host(type(self), context.host)
        self.client: Any = None
        self._state = "waiting"
        self._stop_requested = False
        self._task_started: float | None = None
        #: What the user runs or ran last (a task, on_start or on_stop): what a stop
        #: that cannot interrupt it names (see :func:`task_name`).
        self._current_task: Any = None
        self._nested: dict[type[TaskSet], TaskSet] = {}
        # Set by the runtime, which can resume a parked user (see run()); a user run on
        # its own always waits in place.
        self._parkable = False

    @property
    def environment(self) -> Any:
        """Locust's ``environment`` (host, events, parsed_options, runner, stats)."""
        environment = self.context.environment
        if environment is None:
            raise ConfigError(
                f"{type(self).__name__}.environment exists only in a running swarm "
                "(nbs.Swarm, notebookswarm run), not for a user built by hand"
            )
        return environment

    def measure(self, request_type: str, name: str) -> AbstractContextManager[Measurement]:
        """Time a block as one request of any protocol: ``with self.measure("sql", "top"):``.

        The request is recorded when the block ends: a success, or a failure carrying
        the exception's text (the exception does not go further, as with HTTP requests)
        or the text given to ``m.failure(...)``. Set ``m.response_length`` for bytes.
        """
        return measure(self.context.recorder, request_type, name, _CONTROL_FLOW)

    def on_start(self) -> None:
        """Run once when the user starts; override it (for example to log in)."""

    def on_stop(self) -> None:
        """Run once when the user stops; override it (for example to log out)."""

    def _sleep(self, seconds: float, top_level: bool = False) -> None:
        """Wait between tasks; a stop requested during a task takes effect here."""
        if self._stop_requested:
            raise StopUser()
        self._state = "waiting"
        park_after = self.park_after
        if top_level and self._parkable and park_after is not None and seconds >= park_after:
            raise _Park(seconds)
        time.sleep(seconds)
        if self._stop_requested:
            raise StopUser()

    def run(self) -> float | None:
        """Run ``on_start``, then tasks until stopped; ``on_stop`` runs on the way out.

        Returns None when the user has ended. Run by the runtime, a wait between top-level
        tasks of at least ``park_after`` seconds returns its length instead: the user is
        "parked", holding no greenlet while it waits, and the next ``run()`` goes on with
        the next task (no second ``on_start``). A parked user costs about a sixth of the
        memory of one sleeping in its greenlet (docs/performance.md).
        """
        resuming = self._state == "parked"
        if resuming and self._stop_requested:  # stopped on its way back from a wait
            self._finish()
            return None
        self._state = "running"
        try:
            if not resuming:
                self._current_task = type(self).on_start
                try:
                    self.on_start()
                except StopUser:
                    raise
                except USER_ERRORS as exc:  # a failing login is counted, the user goes on
                    self.context.recorder.record_exception(exc)
            while True:
                try:
                    _UserTasks(self).run()
                except _BackToParent:  # interrupt() at the top level: start over
                    continue
        except _Park as park:
            self._state = "parked"
            return park.seconds
        except StopUser:
            pass
        except BaseException:  # killed by the runtime (GreenletExit)
            self._finish()
            raise
        self._finish()
        return None

    def run_one_task(self) -> bool:
        """Run one task, as one arrival of the arrival-rate mode; no wait afterwards.

        The first call runs ``on_start`` first. A nested TaskSet task runs one task of
        that set (the set is kept per user, so a SequentialTaskSet goes on in order).
        Returns False once the user raised StopUser (its ``on_stop`` has run).
        """
        recorder = self.context.recorder
        if self._state == "waiting":
            self._state = "idle"
            self._current_task = type(self).on_start
            try:
                self.on_start()
            except StopUser:
                self._finish()
                return False
            except USER_ERRORS as exc:
                recorder.record_exception(exc)
        chosen = random.choice(self.context.tasks_of(type(self)))
        self._state = "running"
        self._current_task = chosen
        self._task_started = time.monotonic()
        try:
            if isinstance(chosen, type) and issubclass(chosen, TaskSet):
                nested = self._nested.get(chosen)
                if nested is None:
                    nested = self._nested[chosen] = chosen(self)
                nested.execute_task(nested.get_next_task())
            else:
                chosen(self)
        except (RescheduleTask, InterruptTaskSet, _BackToParent):
            pass
        except StopUser:
            self._finish()
            return False
        except USER_ERRORS as exc:  # user code failed: count it, carry on
            recorder.record_exception(exc)
        self._state = "idle"
        return True

    def _finish(self) -> None:
        """Run ``on_stop`` once, counting what it raises."""
        if self._state in ("stopping", "stopped"):
            return
        self._state = "stopping"
        self._current_task = type(self).on_stop
        try:
            self.on_stop()
        except USER_ERRORS as exc:
            self.context.recorder.record_exception(exc)
        self._state = "stopped"


def task_name(task_: Any) -> str:
    """Name a task (or on_start/on_stop) for people: ``Contestant.submit``."""
    return str(getattr(task_, "__qualname__", None) or getattr(task_, "__name__", None) or task_)


class Locust(User):
    """Locust 0.x's name for :class:`User`; waits 1 s between tasks unless told otherwise."""

    abstract = True
    min_wait = 1000
    max_wait = 1000


def resolve_host(cls: type[User], override: str | None) -> str | None:
    """Return the host a user class talks to: the swarm's host, else the class's own."""
    host = override or cls.host
    if host is not None:
        check_host(host)
    return host


def check_hosts(classes: Iterable[type[User]], override: str | None) -> None:
    """Raise a ConfigError if a class that sends requests (``HttpUser``...) has no host.

    Run before any process starts: otherwise every task of such a user fails alike.
    """
    for cls in classes:
        if resolve_host(cls, override) is None and cls.needs_host:
            raise ConfigError(
                f"{cls.__name__} has no host: pass host='http://...' to the swarm "
                "or set `host` on the class"
            )


_EXAMPLE = "pass something like 'http://127.0.0.1:8080'"


def check_host(host: object) -> str:
    """Return ``host`` if it is a usable http(s) base URL; raise a ConfigError that says why not.

    Refused: anything but a string, a URL that does not parse (``http://[::1``), a scheme
    other than http/https, no host name, and a port outside 1-65535.
    """
    if not isinstance(host, str):
        raise ConfigError(f"host {host!r} is not an http(s) URL: {_EXAMPLE}")
    try:
        parts = urlsplit(host)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed bracket
        raise ConfigError(f"host {host!r} is not a valid URL ({exc}): {_EXAMPLE}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"host {host!r} is not an http(s) URL: {_EXAMPLE}")
    if not parts.hostname:
        raise ConfigError(f"host {host!r} names no host before its port: {_EXAMPLE}")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = -1
    if port is not None and not 1 <= port <= 65535:
        given = parts.netloc.rpartition("]")[2].rpartition(":")[2]
        raise ConfigError(f"host {host!r} has port {given!r}: a port is a number from 1 to 65535")
    return host


def check_user_classes(classes: Iterable[Any]) -> list[type[User]]:
    """Return the classes if each is a concrete User with tasks; raise ConfigError if not."""
    out: list[type[User]] = []
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, User)):
            raise ConfigError(f"{cls!r} is not a User subclass: define `class X(nbs.HttpUser)`")
        if cls.abstract:
            raise ConfigError(f"{cls.__name__} is abstract: subclass it and run the subclass")
        if not filter_tasks(cls.tasks, None, frozenset()):
            raise ConfigError(
                f"user class {cls.__name__} has no tasks: decorate a method with @task "
                "or set tasks = [...]"
            )
        if isinstance(cls.weight, bool) or not isinstance(cls.weight, int) or cls.weight < 0:
            raise ConfigError(f"{cls.__name__}.weight must be an integer >= 0, got {cls.weight!r}")
        fixed = cls.fixed_count
        if isinstance(fixed, bool) or not isinstance(fixed, int) or fixed < 0:
            raise ConfigError(f"{cls.__name__}.fixed_count must be an integer >= 0, got {fixed!r}")
        park = cls.park_after
        if park is not None and (
            isinstance(park, bool) or not isinstance(park, int | float) or not park >= 0
        ):
            raise ConfigError(
                f"{cls.__name__}.park_after must be seconds >= 0 or None (never park), got {park!r}"
            )
        out.append(cls)
    if not out:
        raise ConfigError("no user classes given: pass at least one User subclass")
    return out
