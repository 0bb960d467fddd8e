"""Shared fixtures: a counting HTTP target on 127.0.0.1 and a place for user files."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from notebookswarm.testing import CountingServer, descendants, wait_until

from httptarget import Target


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


# tests/patched/ holds worker-side tests: they run in their own gevent-patched interpreter
# (python tests/patched/run.py, part of `make unit`), never in this unpatched one.
collect_ignore = [] if _gevent_patched() else ["patched"]


@pytest.fixture(autouse=True, scope="session")
def runs_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Swarms (and the kernels and CLIs the tests start) stream their runs to a temporary
    folder, not into the checkout's notebookswarm-runs/."""
    before = os.environ.get("NOTEBOOKSWARM_RUNS_DIR")
    os.environ["NOTEBOOKSWARM_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    yield
    if before is None:
        del os.environ["NOTEBOOKSWARM_RUNS_DIR"]
    else:
        os.environ["NOTEBOOKSWARM_RUNS_DIR"] = before


@pytest.fixture
def target() -> Iterator[CountingServer]:
    """A local HTTP target that counts requests per (method, path)."""
    with CountingServer(keep_log=True) as server:
        yield server


@pytest.fixture
def users_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write user code (dedented) to a file and return its path."""

    def write(source: str, name: str = "users.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def no_strays() -> Iterator[None]:
    """Every process the test starts is gone within 5 s of its end."""
    before = descendants()
    yield
    try:
        wait_until(lambda: not descendants() - before, timeout=5, message="no stray process")
    except AssertionError:
        raise AssertionError(f"stray processes: {sorted(descendants() - before)}") from None


@pytest.fixture
def server() -> Iterator[Target]:
    """A keep-alive HTTP/1.1 target on threads here (see tests/httptarget.py)."""
    target = Target()
    thread = threading.Thread(target=target.serve_forever, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        target.release.set()
        target.shutdown()
        target.server_close()
        thread.join(timeout=10)
