"""report_to_master / worker_report across two workers: every report's data reaches the
controller once, the final flush included, and a test_stop listener sees the exact total —
headless, and from a notebook kernel where the listener runs in the kernel itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notebookswarm.testing import CountingServer

from kernel import kernel

LOCUSTFILE = Path(__file__).resolve().parents[1] / "locustfiles" / "worker_totals.py"

pytestmark = pytest.mark.usefixtures("no_strays")


def test_headless_worker_report_totals_equal_the_target(
    tmp_path: Path, target: CountingServer
) -> None:
    """`notebookswarm run` with two workers: the test_stop listener's worker_report totals
    equal what the target received, exactly."""
    totals = tmp_path / "totals.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTEBOOKSWARM_", "LOCUST_"))}
    env["NBS_TOTALS_FILE"] = str(totals)
    env["NOTEBOOKSWARM_RUNS_DIR"] = ""
    done = subprocess.run(
        [sys.executable, "-m", "notebookswarm", "run", "-f", str(LOCUSTFILE), "-H", target.url,
         "-u", "4", "-r", "50", "-t", "3s", "--workers", "2", "--only-summary"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(totals.read_text())
    assert seen["requests"] == target.count() > 0
    assert seen["reports"] >= 2 * 2  # two workers, at least two reports each


def test_a_locustfile_in_a_kernel_runs_its_test_stop_listener_in_the_kernel(
    tmp_path: Path, target: CountingServer
) -> None:
    """nbs.Swarm("locustfile.py") in a real kernel: the file runs unchanged on two workers,
    and its test_stop listener runs in the kernel with totals equal to the target's."""
    totals = tmp_path / "totals.json"
    with kernel() as k:
        pid = int(
            k.run(
                f"""
                import os
                os.environ["NBS_TOTALS_FILE"] = {str(totals)!r}
                import notebookswarm as nbs
                swarm = nbs.Swarm({str(LOCUSTFILE)!r}, host={target.url!r}, workers=2)
                swarm.start(users=4, spawn_rate=50)
                swarm.wait("spawned", timeout=30)
                swarm.wait(2)
                swarm.stop()
                swarm.close()
                import sys
                assert "locust" not in sys.modules and "gevent" not in sys.modules
                print(os.getpid())
                """
            )
        )
    seen = json.loads(totals.read_text())
    assert seen["pid"] == pid  # the listener ran in the kernel
    assert seen["requests"] == target.count() > 0


CUSTOM = Path(__file__).resolve().parents[1] / "locustfiles" / "custom_option.py"


def test_a_locustfile_option_shows_in_help_and_reaches_workers_and_listeners(
    tmp_path: Path, target: CountingServer
) -> None:
    """An init_command_line_parser option is in `run --help`; its value set on the command
    line is environment.parsed_options in the workers (the page read) and the controller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTEBOOKSWARM_", "LOCUST_"))}
    command = [sys.executable, "-m", "notebookswarm", "run", "-f", str(CUSTOM)]
    shown = subprocess.run(
        [*command, "--help"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert "--page" in shown.stdout
    totals = tmp_path / "totals.json"
    env.update(NBS_TOTALS_FILE=str(totals), NOTEBOOKSWARM_RUNS_DIR="")
    done = subprocess.run(
        [*command, "-H", target.url, "-u", "2", "-r", "50", "-t", "2s", "--workers", "1",
         "--only-summary", "--page", "/special"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(target.counts()) == {("GET", "/special")}
    assert json.loads(totals.read_text()) == {"page": "/special"}


EXIT_CODE = """
from locust import HttpUser, constant, events, task


@events.quitting.add_listener
def judge(environment, **kwargs):
    environment.process_exit_code = 7


class Reader(HttpUser):
    wait_time = constant(0.1)

    @task
    def read(self):
        self.client.get("/")
"""


def test_a_listener_chooses_the_exit_code(tmp_path: Path, target: CountingServer) -> None:
    """environment.process_exit_code set by a listener is the run's exit code, as in Locust."""
    path = tmp_path / "locustfile.py"
    path.write_text(EXIT_CODE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTEBOOKSWARM_", "LOCUST_"))}
    env["NOTEBOOKSWARM_RUNS_DIR"] = ""
    done = subprocess.run(
        [sys.executable, "-m", "notebookswarm", "run", "-f", str(path), "-H", target.url,
         "-u", "1", "-t", "1s", "--workers", "1", "--only-summary"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 7, done.stderr
