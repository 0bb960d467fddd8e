"""The stack's processes, sockets and files, owned in one place so one call ends them all.

:class:`Owned` starts the watchdog first, then is handed the PostgreSQL cluster, the
site's listening socket and gunicorn as :func:`.stack.start_stack` makes them; ``close``
ends them in reverse order and removes the directory, whether the start finished or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any, Final

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from notebookswarm._demo.contest_app import SETTINGS_ENV, AppSettings
from notebookswarm._demo.gunicorn_conf import METRICS_FD_ENV
from notebookswarm._demo.pg import Cluster, StackError, stop_group
from notebookswarm.errors import ConfigError

_APP: Final = "notebookswarm._demo.contest_app:create_app()"


@dataclasses.dataclass(frozen=True)
class StackSettings:
    """The app's switches: workers and threads per worker, the pool per worker, the cache.

    ``judge_ms`` is how long ``POST /submit`` holds its connection and its worker while
    the judge runs (``pg_sleep`` in the submission's transaction), as a site that grades
    inline does: the I/O wait that makes too few workers a bottleneck.
    """

    workers: int = 2
    threads: int = 1
    pool_size: int = 4
    pool_timeout: float = 10.0
    cache: bool = False
    cache_ttl: float = 5.0
    judge_ms: float = 20.0

    def check(self) -> None:
        """Raise ``ConfigError`` naming the first bad value."""
        for name in ("workers", "threads", "pool_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}={value!r}: give a whole number of at least 1")
        if self.workers * self.pool_size > 180:
            raise ConfigError(
                f"workers={self.workers} × pool_size={self.pool_size} connections exceed the "
                "180 the stack's PostgreSQL allows: lower one of them"
            )
        for name in ("pool_timeout", "cache_ttl", "judge_ms"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name}={value!r}: give a number of seconds ≥ 0")


class Owned:
    """Every process, socket and file of one stack; what ``stop`` and the finalizer end.

    It holds no reference to its :class:`Stack`, so the stack can be garbage collected.
    """

    def __init__(self, parent: str | None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="nbs-stack-", dir=parent))
        self.cluster: Cluster | None = None
        self.app: subprocess.Popen[bytes] | None = None
        self.listener: socket.socket | None = None
        self.metrics_listener: socket.socket | None = None  # the master's /metrics
        self.db: psycopg.Connection[Any] | None = None
        self.db_lock = threading.Lock()
        self.watchdog: subprocess.Popen[bytes] | None = None
        self._pipe: IO[str] | None = None
        self._closed = False
        read, write = os.pipe()
        try:
            # Its working directory is the stack's, like every process of the stack: a
            # look at the processes' cwd finds them all (the tests do).
            self.watchdog = subprocess.Popen(
                [sys.executable, "-m", "notebookswarm._demo.watchdog", str(self.directory)],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.directory,
                start_new_session=True,
            )
        except BaseException:
            os.close(write)
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        finally:
            os.close(read)
        self._pipe = os.fdopen(write, "w", buffering=1)

    def tell(self, line: str) -> None:
        """Send the watchdog one line (a dead watchdog is not a reason to fail)."""
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.write(line + "\n")

    def start_app(self, settings: StackSettings, dsn: str, timeout: float) -> None:
        """Start gunicorn on the stack's listening socket; return once every worker serves."""
        assert self.listener is not None
        metrics_dir = self.directory / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir()
        (self.directory / "gunicorn").mkdir(exist_ok=True)
        app = AppSettings(dsn, settings.pool_size, settings.pool_timeout, settings.cache,
                          settings.cache_ttl, settings.judge_ms, settings.threads)  # fmt: skip
        fd = self.listener.fileno()
        assert self.metrics_listener is not None
        metrics_fd = self.metrics_listener.fileno()
        argv = [sys.executable, "-m", "gunicorn", "-c", "python:notebookswarm._demo.gunicorn_conf",
                "--bind", f"fd://{fd}", "--workers", str(settings.workers),
                "--threads", str(settings.threads), "--timeout", "60", "--graceful-timeout", "2",
                "--worker-tmp-dir", str(self.directory / "gunicorn"), "--no-control-socket",
                "--log-level", "warning", "--error-logfile", "-", _APP]  # fmt: skip
        env = {
            **os.environ,
            SETTINGS_ENV: app.to_json(),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            METRICS_FD_ENV: str(metrics_fd),
        }
        log = self.directory / "gunicorn.log"
        with log.open("ab") as out:
            self.app = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.directory, env=env, pass_fds=(fd, metrics_fd), start_new_session=True,
            )  # fmt: skip
        self.tell(f"group {self.app.pid} {int(signal.SIGINT)}")
        _wait_for_workers(self.app, self.metrics_url, settings.workers * settings.threads,
                          log, timeout)  # fmt: skip

    @property
    def metrics_url(self) -> str:
        assert self.metrics_listener is not None
        return f"http://127.0.0.1:{self.metrics_listener.getsockname()[1]}/metrics"

    def stop_app(self) -> None:
        """End gunicorn and its workers (SIGINT: its quick shutdown)."""
        app, self.app = self.app, None
        if app is not None:
            stop_group(app, signal.SIGINT, timeout=10.0)
            self.tell(f"forget {app.pid}")

    def close(self) -> None:
        """End every process, close every socket, remove the directory; safe to repeat."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop_app()
            with self.db_lock:
                if self.db is not None:
                    self.db.close()
                    self.db = None
            if self.cluster is not None:
                self.cluster.stop()
            for sock in (self.listener, self.metrics_listener):
                if sock is not None:
                    sock.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.tell("done")
            if self._pipe is not None:
                with contextlib.suppress(OSError):
                    self._pipe.close()
            if self.watchdog is not None:
                try:
                    self.watchdog.wait(10.0)
                except subprocess.TimeoutExpired:
                    self.watchdog.kill()
                    self.watchdog.wait()


def _wait_for_workers(
    app: subprocess.Popen[bytes], url: str, slots: int, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    seen = -1.0
    while True:
        if app.poll() is not None:
            text = log.read_text(errors="replace").splitlines()[-15:]
            raise StackError(f"gunicorn exited with {app.returncode}:\n" + "\n".join(text))
        with contextlib.suppress(OSError, ValueError):
            with urllib.request.urlopen(url, timeout=2.0) as answer:
                families = text_string_to_metric_families(answer.read().decode())
            seen = sum(s.value for f in families if f.name == "app_workers" for s in f.samples)
            if seen >= slots:
                return
        if time.monotonic() > deadline:
            raise StackError(f"gunicorn served {seen:g} of {slots} request slots after {timeout} s")
        time.sleep(0.05)  # workers boot on their own; the deadline bounds the polling
