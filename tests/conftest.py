"""Shared fixtures: a counting HTTP target on 127.0.0.1 and a place for user files."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from httptarget import Target

from notebookswarm.testing import CountingServer, descendants


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
    deadline = time.monotonic() + 5
    while (left := descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"stray processes: {sorted(left)}"


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
