"""The package's public surface and its promise never to import gevent on the notebook side."""

from __future__ import annotations

import notebookswarm

from fresh import python_output

NOTEBOOK_SIDE = [
    "notebookswarm",
    "notebookswarm.users.core",
    "notebookswarm.users.http",
    "notebookswarm.users.fasthttp",
    "notebookswarm.stats.requests",
    "notebookswarm.stats.histogram",
    "notebookswarm.notebook.frames",
    "notebookswarm._local",
    "notebookswarm.users.loader",
    "notebookswarm.cluster.protocol",
    "notebookswarm.cluster.dispatch",
    "notebookswarm.testing",
    "notebookswarm.cli",
    "notebookswarm.notebook.swarm",
    "notebookswarm.notebook.run",
    "notebookswarm.notebook.rundata",
    "notebookswarm.cluster.control",
    "notebookswarm.cluster.launch",
    "notebookswarm.users.code",
    "notebookswarm.cluster.master",
    "notebookswarm.cluster.master_state",
    "notebookswarm.cluster.keys",
    "notebookswarm._http.cookies",
    "notebookswarm.demo",
    "notebookswarm.analysis",
    "notebookswarm.notebook.report",
    "notebookswarm.notebook.shapes",
    "notebookswarm._checks",
    "notebookswarm.notebook.dashboard",
    "notebookswarm.notebook.dashboard_model",
]


def test_public_names_are_pinned() -> None:
    """The names exported from notebookswarm are exactly these (change with care)."""
    assert notebookswarm.__all__ == [
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
    for name in notebookswarm.__all__:
        assert getattr(notebookswarm, name) is not None


def test_notebook_side_never_imports_gevent() -> None:
    """Importing notebookswarm, every notebook-side module and every public name leaves
    gevent unimported."""
    code = (
        "import importlib, sys\n"
        f"for m in {NOTEBOOK_SIDE!r}: importlib.import_module(m)\n"
        "import notebookswarm\n"
        "for n in notebookswarm.__all__: getattr(notebookswarm, n)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'greenlet')))\n"
    )
    assert python_output(code) == "[]"
