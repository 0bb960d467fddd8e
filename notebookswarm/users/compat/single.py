"""Debug one user from a terminal or a notebook cell: every request, as it happens.

:func:`debug_user` starts a worker process in single-user mode
(:mod:`notebookswarm.engine.single_user`) and copies its lines to this process's stdout
as they arrive, so a cell shows them live without importing gevent. Locust's
``run_single_user(MyUser)`` does the same for a class defined in a file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from notebookswarm.errors import ConfigError


def debug_user(
    locustfile: str | Path,
    user_class: str | None = None,
    *,
    host: str | None = None,
    run_time: float = 10.0,
    tags: Sequence[str] | None = None,
    exclude_tags: Sequence[str] | None = None,
    write: Callable[[str], Any] | None = None,
) -> int:
    """Run one user of ``locustfile`` for ``run_time`` seconds, printing every request.

    ``user_class`` picks the class (default: the file's first). Each line goes to
    ``write`` (default: print to stdout) as soon as the worker prints it. Returns the
    worker's exit status (0: ran; 2: the file or the class could not be used).
    """
    if not Path(locustfile).is_file():
        raise ConfigError(f"user file {str(locustfile)!r} does not exist: pass a .py file")
    cmd = [sys.executable, "-u", "-m", "notebookswarm.worker", "--single-user"]
    cmd += ["--locustfile", str(locustfile), "--run-time", str(float(run_time))]
    if user_class:
        cmd += ["--user-class", user_class]
    if host:
        cmd += ["--host", host]
    if tags:
        cmd += ["--tags", *tags]
    if exclude_tags:
        cmd += ["--exclude-tags", *exclude_tags]
    emit = write or (lambda line: print(line, end="", flush=True))
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            emit(line)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:  # interrupted: end the worker, never leave it behind
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def run_single_user(
    user_class: type[Any], *, host: str | None = None, run_time: float = 10.0
) -> int:
    """Locust's ``run_single_user``: debug one user of a class defined in a file."""
    module = sys.modules.get(user_class.__module__)
    path = getattr(module, "__file__", None)
    if not path or not Path(path).is_file():
        raise ConfigError(
            f"{user_class.__name__} is not defined in a file: debug_user() runs a file's class"
        )
    return debug_user(path, user_class.__name__, host=host, run_time=run_time)
