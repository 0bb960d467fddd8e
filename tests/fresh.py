"""Run Python code in a fresh interpreter, for what only a new process shows.

What importing a module pulls in (gevent, say), or how code behaves with nothing patched,
can only be seen in a process that has imported nothing yet. Worker-side behaviour is
tested in tests/patched/ instead, in one patched interpreter.
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["python_output"]


def python_output(code: str, timeout: float = 60) -> str:
    """Run ``code`` with this Python in a new process and return its output, stripped.

    A non-zero exit fails the test with the process's standard error.
    """
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
