"""Start masters and workers as subprocesses of this process (the notebook side).

Nothing here imports gevent: a worker is a new interpreter running
``python -m notebookswarm.worker``, which patches itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.master import check_bind
from notebookswarm.errors import NotebookSwarmError


def reap(process: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """Terminate a process if it still runs, kill it if it will not go; return its status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    code = process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return code


@dataclass
class MasterProcess:
    """A master running as a subprocess, with its endpoints."""

    process: subprocess.Popen[bytes]
    worker_endpoint: str
    control_endpoint: str

    def stop(self, timeout: float = 5.0) -> int:
        """Terminate the master (it tells its workers to quit) and return its status."""
        return reap(self.process, timeout)


def master_command(
    config: MasterConfig,
    bind: str = "127.0.0.1",
    worker_port: int = 0,
    control_port: int = 0,
    keys: Path | None = None,
) -> list[str]:
    """Return the command line that starts a master with these settings."""
    cmd = [
        sys.executable,
        "-m",
        "notebookswarm.master",
        "--bind",
        bind,
        "--worker-port",
        str(worker_port),
        "--control-port",
        str(control_port),
        "--config",  # every field, whole: nothing is lost in a translation to flags
        config.to_json(),
    ]
    if keys is not None:
        cmd += ["--keys", str(keys)]
    return cmd


def start_master(
    config: MasterConfig | None = None,
    bind: str = "127.0.0.1",
    worker_port: int = 0,
    control_port: int = 0,
    keys: Path | None = None,
    timeout: float = 30.0,
) -> MasterProcess:
    """Start a master subprocess and return it once it listens, with its endpoints."""
    config = config or MasterConfig()
    check_bind(bind, keys)
    cmd = master_command(config, bind, worker_port, control_port, keys)
    # Own sessions: interrupting a kernel signals its whole process group, and a swarm must
    # survive that (its processes end by the timeouts when their controller is gone).
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout is not None
    line = process.stdout.readline()  # the master prints its endpoints first thing
    if not line:
        code = process.wait(timeout)
        process.stdout.close()
        raise NotebookSwarmError(f"the master exited with status {code} before listening")
    info = json.loads(line)
    return MasterProcess(process, info["worker"], info["control"])


def start_worker(
    master_endpoint: str, keys: Path | None = None, connect_timeout: float = 30.0
) -> subprocess.Popen[bytes]:
    """Start a worker process that joins the master at ``master_endpoint``."""
    cmd = [
        sys.executable,
        "-m",
        "notebookswarm.worker",
        "--master",
        master_endpoint,
        "--connect-timeout",
        str(connect_timeout),
    ]
    if keys is not None:
        cmd += ["--keys", str(keys)]
    return subprocess.Popen(cmd, start_new_session=True)
