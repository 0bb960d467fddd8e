"""A throwaway PostgreSQL cluster: Debian's binaries, a temporary directory, a free port.

``initdb`` refuses to run as root, and CI runs as root: then the cluster belongs to the
``postgres`` system user (``nobody`` where there is none), and the stack's directory is
handed to that user. The postmaster runs in the foreground in its own session, so one
``killpg`` ends it and every backend it forked.

Settings trade durability for speed (``fsync=off``): the data lives only as long as the
stack. Parallel query is off so that one request is one backend, and JIT is off so that
a plan's cost does not change when LLVM decides to compile it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg

from notebookswarm.errors import NotebookSwarmError

#: Where Debian installs each major version's server binaries.
PG_ROOT: Final = Path("/usr/lib/postgresql")
#: The database and its superuser role.
DATABASE: Final = "contest"

_SETTINGS: Final = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "logging_collector": "off",
    # Calls and time per statement, updated as each one ends: the database's own account
    # of where its time goes, without the second of lag of the pg_stat_* counters.
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",
    "pg_stat_statements.track_utility": "off",
}


class StackError(NotebookSwarmError):
    """The demo stack could not start or answer; the message says which part and why."""


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account PostgreSQL runs as (``None`` ids: the current user)."""

    name: str
    uid: int | None
    gid: int | None

    @classmethod
    def choose(cls) -> RunAs:
        """Return the account to run as: ours, or ``postgres``/``nobody`` when we are root."""
        if os.geteuid() != 0:
            return cls(pwd.getpwuid(os.geteuid()).pw_name, None, None)
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return cls(name, entry.pw_uid, entry.pw_gid)
        raise StackError("running as root and no 'postgres' or 'nobody' user to run initdb as")

    def give(self, path: Path) -> None:
        """Hand ``path`` to this account so the server can write there."""
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)

    @property
    def extra_groups(self) -> list[int] | None:
        """Supplementary groups for the child: none of root's when switching user."""
        return None if self.uid is None else []


def find_bin() -> Path:
    """Return the newest installed PostgreSQL's ``bin`` directory, or say how to install one."""
    found = [d for d in PG_ROOT.glob("*/bin") if (d / "initdb").exists()]
    if not found:
        raise StackError(
            f"no PostgreSQL server under {PG_ROOT}/*/bin: run `make db-deps` "
            "(or `apt-get install postgresql`)"
        )
    return max(found, key=lambda d: _version_key(d.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Cluster:
    """One PostgreSQL server in ``directory``; :meth:`start` returns once it accepts queries."""

    def __init__(self, directory: Path, run_as: RunAs, port: int) -> None:
        self.directory = directory
        self.run_as = run_as
        self.port = port
        self.data = directory / "pgdata"
        self.sockets = directory / "pgrun"
        self.log = directory / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        """A libpq connection string for the contest database over TCP on 127.0.0.1."""
        return f"host=127.0.0.1 port={self.port} user={DATABASE} dbname={DATABASE}"

    def _run(self, argv: list[str], what: str) -> None:
        with self.log.open("ab") as log:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self._env(),
                start_new_session=True,
                check=False,
                timeout=120,
                user=self.run_as.uid,
                group=self.run_as.gid,
                extra_groups=self.run_as.extra_groups,
            )
        if done.returncode != 0:
            raise StackError(f"{what} failed (exit {done.returncode}):\n{_tail(self.log)}")

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": "/"}

    def start(self, started: Callable[[int], None], timeout: float = 60.0) -> None:
        """Create the cluster, start its server and report the server's process group."""
        pg_bin = find_bin()
        self.sockets.mkdir()
        self.run_as.give(self.sockets)
        self._run(
            [str(pg_bin / "initdb"), "-D", str(self.data), "-U", DATABASE, "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            "initdb",
        )  # fmt: skip
        argv = [str(pg_bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.sockets)]  # fmt: skip
        for name, value in _SETTINGS.items():
            argv += ["-c", f"{name}={value}"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self._env(),
                start_new_session=True,
                user=self.run_as.uid,
                group=self.run_as.gid,
                extra_groups=self.run_as.extra_groups,
            )
        started(self.process.pid)
        self._wait_ready(timeout)
        self._run(
            [str(pg_bin / "createdb"), "-h", str(self.sockets), "-p", str(self.port),
             "-U", DATABASE, DATABASE],
            "createdb",
        )  # fmt: skip

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise StackError(
                    f"postgres exited with {self.process.returncode} while starting on port "
                    f"{self.port}:\n{_tail(self.log)}"
                )
            try:
                with psycopg.connect(
                    f"host={self.sockets} port={self.port} user={DATABASE} dbname=postgres",
                    connect_timeout=2,
                ):
                    return
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    raise StackError(f"postgres did not accept connections: {error}") from error
            time.sleep(0.05)  # polling a server that is still starting; the deadline bounds it

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down fast (rolling back open transactions), then make sure."""
        process, self.process = self.process, None
        if process is None:
            return
        # SIGINT is PostgreSQL's fast shutdown: backends end, shared memory is released.
        stop_group(process, signal.SIGINT, timeout)


def stop_group(process: subprocess.Popen[bytes], first: int, timeout: float) -> None:
    """Signal a child that leads its own session, wait for it, and kill its group's rest."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, first)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
