"""The package's public surface and its promise never to import gevent on the notebook side."""

from __future__ import annotations

import subprocess
import sys

import notebookswarm

NOTEBOOK_SIDE = [
    "notebookswarm",
    "notebookswarm.user",
    "notebookswarm.http",
    "notebookswarm.fasthttp",
    "notebookswarm.stats",
    "notebookswarm.histogram",
    "notebookswarm.frames",
    "notebookswarm.local",
    "notebookswarm.loader",
    "notebookswarm.protocol",
    "notebookswarm.dispatch",
    "notebookswarm.testing",
    "notebookswarm.cli",
    "notebookswarm.swarm",
    "notebookswarm.run",
    "notebookswarm.rundata",
    "notebookswarm.control",
    "notebookswarm.launch",
    "notebookswarm.code",
    "notebookswarm.master",
    "notebookswarm.master_state",
    "notebookswarm.keys",
    "notebookswarm.cookies",
    "notebookswarm.demo",
    "notebookswarm.analysis",
    "notebookswarm.report",
    "notebookswarm.shapes",
    "notebookswarm.config",
    "notebookswarm.dashboard",
    "notebookswarm.dashboard_model",
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
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
