"""Worker-side tests: this folder runs in one gevent-patched interpreter (``run.py``).

Here user code, the HTTP clients and the engine run as they do in a worker: on greenlets,
with the standard library patched, so the test servers of ``tests/conftest.py`` serve on
greenlets of the same hub. Run it with ``python tests/patched/run.py [pytest args]``;
plain ``pytest tests/patched`` stops with that advice instead of running unpatched.
"""

from __future__ import annotations

import sys

import pytest


def _patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


if not _patched():
    raise pytest.UsageError(
        "tests/patched needs a gevent-patched interpreter: python tests/patched/run.py"
    )
