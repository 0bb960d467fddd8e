"""Make ``import locust`` (and its submodules) mean notebookswarm while user code loads.

:func:`locust_names` puts modules named ``locust``, ``locust.env``, ... into
``sys.modules`` and a finder at the front of ``sys.meta_path`` that refuses every other
``locust.*`` name with a message saying what to use instead. This wins over a real
Locust installed beside us. In a notebook kernel or the CLI the names are there only
while a file executes (the real ``locust``, if it was imported, comes back afterwards);
in a worker, ``keep=True`` leaves them for the process's life, because a task may import
``locust`` when it first runs.

Each load gets its own top-level ``locust`` module whose ``events`` is that load's
:class:`~notebookswarm.users.compat.events.Events`, so loading a file twice in one
kernel does not register its listeners twice. The other modules hold classes only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from notebookswarm._version import __version__
from notebookswarm.users import core, http, wait_time
from notebookswarm.users.compat import clients, environment, events, exception, shape
from notebookswarm.users.fasthttp import FastHttpUser

_DOCS = "docs/locust.md lists what is supported"
#: What to say about Locust names notebookswarm does not offer.
_HINTS = {
    "main": "run files with `notebookswarm run -f FILE`",
    "web": "notebookswarm has no web UI: use a notebook (nbs.Swarm) or `notebookswarm run`",
    "argument_parser": "add your own options with @events.init_command_line_parser",
    "log": "use the logging module",
    "rpc": "workers talk to the master over notebookswarm's own protocol",
    "dispatch": "notebookswarm dispatches users itself",
    "input_events": "steer a run from a notebook cell instead",
    "html": "use `notebookswarm run --html FILE` or run.to_html()",
    "debug": "use `notebookswarm run --single-user` or nbs.debug_user(...)",
    "util": "import what you need from the standard library",
    "user.inspectuser": "print(MyUser.tasks) shows a class's tasks",
    "env.Environment.create_local_runner": "nbs.Swarm('FILE') runs a file from Python",
}


class UnsupportedLocustName(ImportError):
    """A ``locust`` name notebookswarm does not provide; the message says what to use."""


def _refusal(name: str) -> UnsupportedLocustName:
    short = name.removeprefix("locust.")
    hint = _HINTS.get(short) or _HINTS.get(short.split(".")[0]) or _DOCS
    return UnsupportedLocustName(
        f"{name} is not part of notebookswarm's Locust compatibility layer: {hint}", name=name
    )


class _LocustModule(types.ModuleType):
    """A module of the layer: a missing public name raises an error saying what to use."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        # An ImportError (not AttributeError) so `from locust import X` keeps our message.
        raise _refusal(f"{self.__name__}.{attr}")


class _Refuser(importlib.abc.MetaPathFinder):
    """Refuses ``locust.*`` names the layer does not provide, before any other finder."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "locust" or fullname.startswith("locust."):
            raise _refusal(fullname)
        return None


def _module(name: str, doc: str, package: bool = False, **names: Any) -> _LocustModule:
    module = _LocustModule(name, doc)
    if package:
        module.__path__ = []
    names["__all__"] = sorted(n for n in names if not n.startswith("_"))
    for attr, value in names.items():
        setattr(module, attr, value)
    return module


_WAIT: dict[str, Any] = {
    "between": wait_time.between,
    "constant": wait_time.constant,
    "constant_pacing": wait_time.constant_pacing,
    "constant_throughput": wait_time.constant_throughput,
}
_TASKS: dict[str, Any] = {
    "TaskSet": core.TaskSet,
    "SequentialTaskSet": core.SequentialTaskSet,
    "task": core.task,
    "tag": core.tag,
}


def build_modules(env: environment.Environment) -> dict[str, types.ModuleType]:
    """Return the ``locust`` modules for one load, ``events`` being ``env.events``."""
    m: dict[str, types.ModuleType] = {}
    _add_user_modules(m)
    m["locust.exception"] = _module(
        "locust.exception",
        "Exceptions.",
        **{n: getattr(exception, n) for n in exception.__all__},
    )
    m["locust.event"] = _module(
        "locust.event",
        "Event hooks.",
        EventHook=events.EventHook,
        DeprecatedEventHook=events.DeprecatedEventHook,
        Events=events.Events,
    )
    m["locust.env"] = _module("locust.env", "The environment.", Environment=environment.Environment)
    m["locust.runners"] = _module(
        "locust.runners",
        "Runners, for isinstance checks, and run states.",
        **{n: getattr(environment, n) for n in dir(environment) if n.startswith("STATE_")},
        Runner=environment.Runner,
        LocalRunner=environment.LocalRunner,
        MasterRunner=environment.MasterRunner,
        WorkerRunner=environment.WorkerRunner,
    )
    m["locust.shape"] = _module("locust.shape", "Load shapes.", LoadTestShape=shape.LoadTestShape)
    m["locust.clients"] = _module(
        "locust.clients",
        "HTTP clients.",
        HttpSession=clients.HttpSession,
        ResponseContextManager=clients.ResponseContextManager,
    )
    m["locust.contrib.fasthttp"] = _module(
        "locust.contrib.fasthttp",
        "The fast HTTP client.",
        FastHttpUser=FastHttpUser,
        FastHttpSession=clients.fast_http_session,
        RestResponseContextManager=clients.RestResponseContextManager,
        ResponseContextManager=clients.ResponseContextManager,
    )
    m["locust.contrib"] = _module(
        "locust.contrib",
        "Contributed clients.",
        package=True,
        fasthttp=m["locust.contrib.fasthttp"],
    )
    m["locust.stats"] = _module(
        "locust.stats",
        "Settings Locust keeps here; setting them changes nothing in notebookswarm.",
        CSV_STATS_INTERVAL_SEC=1,
        CONSOLE_STATS_INTERVAL_SEC=2,
        HISTORY_STATS_INTERVAL_SEC=5,
        CSV_STATS_FLUSH_INTERVAL_SEC=10,
        PERCENTILES_TO_REPORT=[0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0],
        PERCENTILES_TO_CHART=[0.5, 0.95],
        StatsEntry=environment.StatsEntry,
    )
    m["locust"] = _top(env, m)
    return m


def _add_user_modules(m: dict[str, types.ModuleType]) -> None:
    """Add ``locust.user`` and its submodules (users, tasks, wait times) to ``m``."""
    m["locust.user.wait_time"] = _module("locust.user.wait_time", "Wait times.", **_WAIT)
    m["locust.user.task"] = _module("locust.user.task", "Task sets.", **_TASKS)
    m["locust.user.users"] = _module(
        "locust.user.users", "Users.", User=core.User, HttpUser=http.HttpUser
    )
    m["locust.user"] = _module(
        "locust.user",
        "Users and tasks.",
        package=True,
        User=core.User,
        HttpUser=http.HttpUser,
        wait_time=m["locust.user.wait_time"],
        task=m["locust.user.task"],
        users=m["locust.user.users"],
        **{k: v for k, v in _TASKS.items() if k != "task"},
    )


def _top(env: environment.Environment, m: dict[str, types.ModuleType]) -> types.ModuleType:
    from notebookswarm.users.compat.single import run_single_user

    return _module(
        "locust",
        "notebookswarm's Locust compatibility layer.",
        package=True,
        __version__=f"notebookswarm-{__version__}",
        User=core.User,
        HttpUser=http.HttpUser,
        FastHttpUser=FastHttpUser,
        Locust=core.Locust,
        HttpLocust=http.HttpLocust,
        LoadTestShape=shape.LoadTestShape,
        events=env.events,
        run_single_user=run_single_user,
        **_TASKS,
        **_WAIT,
        **{n.split(".", 1)[1].split(".")[0]: mod for n, mod in m.items() if n.count(".") == 1},
    )


def _ours(module: object) -> bool:
    return isinstance(module, _LocustModule)


@contextmanager
def locust_names(env: environment.Environment, *, keep: bool = False) -> Iterator[types.ModuleType]:
    """Resolve ``locust`` names to the layer inside the block (for good if ``keep``)."""
    modules = build_modules(env)
    saved = {n: sys.modules.pop(n) for n in _locust_entries() if not _ours(sys.modules[n])}
    for name in _locust_entries():
        del sys.modules[name]  # an earlier load's modules
    sys.modules.update(modules)
    finder = next((f for f in sys.meta_path if isinstance(f, _Refuser)), None)
    if finder is None:
        finder = _Refuser()
        sys.meta_path.insert(0, finder)
    try:
        yield modules["locust"]
    finally:
        if not keep:
            sys.meta_path.remove(finder)
            for name in _locust_entries():
                del sys.modules[name]
            sys.modules.update(saved)


def _locust_entries() -> list[str]:
    return [n for n in list(sys.modules) if n == "locust" or n.startswith("locust.")]
