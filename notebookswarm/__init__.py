"""notebookswarm: interactive load testing from Jupyter.

General layout (imports only go down; docs/architecture.md is the map, `make lint` checks it):

    cli · testing · demo · analysis · worker · master    entry points and public faces
    notebook (controller side) │ engine (worker side, the only gevent) │ _demo
    cluster (protocol, master, dispatch, launch) │ users (the user API)
    _http (the wire under the user clients)
    stats (histograms, per-endpoint statistics)
    _checks · errors

This module imports its names lazily, so ``import notebookswarm`` is quick and never
imports gevent: a Jupyter kernel must not be monkey-patched, and the worker entry point
must be able to patch before anything heavy is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from notebookswarm._version import __version__

_EXPORTS = {
    "ConfigError": "notebookswarm.errors",
    "FastHttpUser": "notebookswarm.users.fasthttp",
    "HttpLocust": "notebookswarm.users.http",
    "HttpSession": "notebookswarm.users.http",
    "HttpUser": "notebookswarm.users.http",
    "InterruptTaskSet": "notebookswarm.users.core",
    "Locust": "notebookswarm.users.core",
    "NotebookSwarmError": "notebookswarm.errors",
    "RescheduleTask": "notebookswarm.users.core",
    "Run": "notebookswarm.notebook.run",
    "SequentialTaskSet": "notebookswarm.users.core",
    "StopUser": "notebookswarm.users.core",
    "Swarm": "notebookswarm.notebook.swarm",
    "SwarmConfig": "notebookswarm.notebook.swarm",
    "TaskSet": "notebookswarm.users.core",
    "User": "notebookswarm.users.core",
    "between": "notebookswarm.users.wait_time",
    "constant": "notebookswarm.users.wait_time",
    "constant_pacing": "notebookswarm.users.wait_time",
    "constant_throughput": "notebookswarm.users.wait_time",
    "tag": "notebookswarm.users.core",
    "task": "notebookswarm.users.core",
}

__all__ = [
    "ConfigError",
    "FastHttpUser",
    "HttpLocust",
    "HttpSession",
    "HttpUser",
    "InterruptTaskSet",
    "Locust",
    "NotebookSwarmError",
    "RescheduleTask",
    "Run",
    "SequentialTaskSet",
    "StopUser",
    "Swarm",
    "SwarmConfig",
    "TaskSet",
    "User",
    "__version__",
    "between",
    "constant",
    "constant_pacing",
    "constant_throughput",
    "tag",
    "task",
]

if TYPE_CHECKING:
    from notebookswarm.errors import ConfigError, NotebookSwarmError
    from notebookswarm.notebook.run import Run
    from notebookswarm.notebook.swarm import Swarm, SwarmConfig
    from notebookswarm.users.core import (
        InterruptTaskSet,
        Locust,
        RescheduleTask,
        SequentialTaskSet,
        StopUser,
        TaskSet,
        User,
        tag,
        task,
    )
    from notebookswarm.users.fasthttp import FastHttpUser
    from notebookswarm.users.http import HttpLocust, HttpSession, HttpUser
    from notebookswarm.users.wait_time import (
        between,
        constant,
        constant_pacing,
        constant_throughput,
    )


#: Submodules reachable as attributes (``nbs.demo.start_target()``), imported on first use.
_SUBMODULES = frozenset({"analysis", "demo"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"notebookswarm.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'notebookswarm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
