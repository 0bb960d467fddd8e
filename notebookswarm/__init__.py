"""notebookswarm: interactive load testing from Jupyter.

General layout (imports only go down; see docs/architecture.md):

0  errors                                                   no internal imports
1  histogram · stats · ramp · wait_time · user · protocol · dispatch      pure
2  http (requests) · fasthttp (gevent, imported lazily by FastHttpUser)
2  master_state (sans-I/O) · control (controller socket) · code (packaging user code)
3  runtime and worker (the only monkey-patch) · master process · launch · local runner ·
   frames · rundata · run · swarm (the notebook controller)
4  cli · demo · testing

This module imports its names lazily, so ``import notebookswarm`` is quick and never
imports gevent: a Jupyter kernel must not be monkey-patched, and the worker entry point
must be able to patch before anything heavy is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigError": "notebookswarm.errors",
    "FastHttpUser": "notebookswarm.fasthttp",
    "HttpLocust": "notebookswarm.http",
    "HttpSession": "notebookswarm.http",
    "HttpUser": "notebookswarm.http",
    "InterruptTaskSet": "notebookswarm.user",
    "Locust": "notebookswarm.user",
    "NotebookSwarmError": "notebookswarm.errors",
    "RescheduleTask": "notebookswarm.user",
    "Run": "notebookswarm.run",
    "SequentialTaskSet": "notebookswarm.user",
    "StopUser": "notebookswarm.user",
    "Swarm": "notebookswarm.swarm",
    "SwarmConfig": "notebookswarm.swarm",
    "TaskSet": "notebookswarm.user",
    "User": "notebookswarm.user",
    "between": "notebookswarm.wait_time",
    "constant": "notebookswarm.wait_time",
    "constant_pacing": "notebookswarm.wait_time",
    "constant_throughput": "notebookswarm.wait_time",
    "tag": "notebookswarm.user",
    "task": "notebookswarm.user",
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
    from notebookswarm.fasthttp import FastHttpUser
    from notebookswarm.http import HttpLocust, HttpSession, HttpUser
    from notebookswarm.run import Run
    from notebookswarm.swarm import Swarm, SwarmConfig
    from notebookswarm.user import (
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
    from notebookswarm.wait_time import between, constant, constant_pacing, constant_throughput


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
