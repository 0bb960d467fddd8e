"""The fault soak: a real swarm against a counting target, faults on a schedule, and after
each one an exact account of every request the target received.

A standalone master and 4 workers run as processes; the controller (a Swarm streaming its
run to disk) runs in a process of its own (tests/soak_controller.py) so it can be
SIGKILLed like a crashed kernel. Each user asks for ``/w/<its worker's pid>``, so the target
counts per worker and the statistics count per worker. The target sits behind a TCP proxy
that can refuse connections. After every fault the swarm is stopped gracefully and, per
worker path ``p``::

    answered(p) <= target(p) <= requests(p) + lost(p)

``answered`` is the requests that got an HTTP answer (they certainly reached the target: none
counted twice); ``lost(p)`` is what the target saw beyond the statistics, allowed only for a
worker the master reported lost (``LostInterval``) or a run whose controller was killed,
and printed with its count. ``python tests/faultsoak.py --cycles N`` runs it from the
command line (``make soak``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.launch import reap, start_master, start_worker
from notebookswarm.notebook.run import Run
from notebookswarm.testing import CountingServer, Route, wait_until

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from tcpproxy import Proxy  # noqa: E402


@dataclass
class Account:
    """One fault and what the numbers said after it."""

    fault: str
    target: int
    recorded: int
    answered: int
    lost: int
    lost_why: str
    ok: bool


@dataclass
class Soak:
    """The processes of one fault soak and the bookkeeping of its runs."""

    folder: Path
    workers: int = 4
    users: int = 12
    wait: float = 0.1
    target: CountingServer = field(init=False)
    proxy: Proxy = field(init=False)
    accounts: list[Account] = field(default_factory=list)
    memory: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)  # requests of ended runs, per path
    finished_unanswered: dict[str, int] = field(default_factory=dict)
    excused: dict[str, str] = field(default_factory=dict)  # path -> why it may miss some
    folders: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.target = CountingServer()
        self.proxy = Proxy(("127.0.0.1", self.target.port))
        config = MasterConfig(standalone=True, controller_timeout=4.0, heartbeat_timeout=5.0)
        self.master = start_master(config)
        self.procs = [start_worker(self.master.worker_endpoint) for _ in range(self.workers)]
        self.controller: subprocess.Popen[str] | None = None
        self.began = time.monotonic()

    # --- the controller process ------------------------------------------------------

    def start_controller(self) -> None:
        cmd = [sys.executable, str(HERE / "soak_controller.py"), "--master"]
        cmd += [self.master.control_endpoint, "--host", f"http://127.0.0.1:{self.proxy.port}"]
        cmd += ["--runs", str(self.folder / "runs"), "--workers", str(self.workers)]
        cmd += ["--users-file", str(self.folder / "users.py"), "--wait", str(self.wait)]
        self.controller = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=self.folder
        )
        self.command(f"start {self.users}")

    def command(self, line: str) -> dict[str, Any]:
        assert self.controller is not None and self.controller.stdin and self.controller.stdout
        self.controller.stdin.write(line + "\n")
        self.controller.stdin.flush()
        while True:
            text = self.controller.stdout.readline()
            if not text:
                raise AssertionError(f"the controller ended on {line!r}")
            answer: dict[str, Any] = json.loads(text)
            if "folder" in answer:
                self.folders.append(Path(answer["folder"]))
                continue
            return answer

    # --- faults ----------------------------------------------------------------------

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill_worker(self) -> str:
        victim = self.live_workers()[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        self.excused[f"/w/{victim.pid}"] = "worker SIGKILLed"
        self.procs.append(start_worker(self.master.worker_endpoint))
        time.sleep(8.0)  # the master finds it silent, the new one joins and gets users
        return f"worker {victim.pid} SIGKILLed and replaced"

    def pause_worker(self) -> str:
        victim = self.live_workers()[-1]
        victim.send_signal(signal.SIGSTOP)
        time.sleep(8.0)
        victim.send_signal(signal.SIGCONT)
        self.excused.setdefault(f"/w/{victim.pid}", "worker SIGSTOPped past its heartbeat")
        time.sleep(3.0)
        return f"worker {victim.pid} SIGSTOPped 8 s"

    def refuse(self) -> str:
        self.proxy.cut()
        time.sleep(5.0)
        self.proxy.restore()
        time.sleep(2.0)
        return "target refused connections 5 s"

    def stall(self) -> str:
        self.target.default = Route(delay=10.0)
        time.sleep(10.0)
        self.target.default = Route()
        time.sleep(2.0)
        return "target stalled 10 s"

    def errors(self) -> str:
        self.target.default = Route(status=500)
        deadline = self.target.count() + 500
        wait_until(lambda: self.target.count() >= deadline, 30, message="500 answers")
        self.target.default = Route()
        return "a burst of 500 errors"

    def sigkill_controller(self) -> float:
        """SIGKILL the controller process (a crashed kernel); return when, epoch seconds."""
        controller, self.controller = self.controller, None
        assert controller is not None
        controller.send_signal(signal.SIGKILL)
        killed_at = time.time()
        controller.wait(10)
        for pipe in (controller.stdin, controller.stdout):
            if pipe is not None:
                pipe.close()
        return killed_at

    def kill_controller(self) -> str:
        killed_at = self.sigkill_controller()
        folder = self.folders[-1]
        run = Run.load(folder)
        assert run.complete is False, "a killed controller's run must load as incomplete"
        last = run.history["time"].max().timestamp()
        assert killed_at - last < 5.0, f"the run stops {killed_at - last:.1f} s before the kill"
        for name, n in zip(run.stats["name"], run.stats["requests"], strict=True):
            if name != "Aggregated":
                self.finished[str(name)] = self.finished.get(str(name), 0) + int(n)
        errors = run.errors[~run.errors["error"].str.startswith("HTTP ")]
        for name, n in errors.groupby("name")["count"].sum().items():
            self.finished_unanswered[str(name)] = self.finished_unanswered.get(str(name), 0) + n
        for path in self.target.counts():
            self.excused.setdefault(path[1], "controller SIGKILLed")
        # The master stops the swarm its controller left; then a new controller attaches.
        time.sleep(6.0)
        self.start_controller()
        return f"controller SIGKILLed, run recovered ({killed_at - last:.1f} s before the kill)"

    # --- checks ----------------------------------------------------------------------

    def check(self, fault: str) -> Account:
        """Stop gracefully, account for every request, start again."""
        got = self.command("stop")
        self.sample_memory()
        lost_workers = {w["worker"] for w in got["lost"]}
        recorded, unanswered = dict(self.finished), dict(self.finished_unanswered)
        for name, n in got["requests"].items():
            recorded[name] = recorded.get(name, 0) + n
        for name, n in got["unanswered"].items():
            unanswered[name] = unanswered.get(name, 0) + n
        seen = {path: n for (method, path), n in self.target.counts().items()}
        problems, lost, why = [], 0, set()
        for path in set(seen) | set(recorded):
            t, r = seen.get(path, 0), recorded.get(path, 0)
            answered = r - unanswered.get(path, 0)
            if answered > t:
                problems.append(f"{path}: {answered} answered, target saw {t}")
            if t > r:
                if path not in self.excused:
                    problems.append(f"{path}: target saw {t}, statistics {r}, nothing lost")
                lost += t - r
                why.add(self.excused.get(path, "?"))
        account = Account(
            fault,
            sum(seen.values()),
            sum(recorded.values()),
            sum(recorded.values()) - sum(unanswered.values()),
            lost,
            ", ".join(sorted(why)) + (f" ({len(lost_workers)} lost intervals)" if lost else ""),
            not problems,
        )
        self.accounts.append(account)
        assert not problems, f"after {fault}: {problems}"
        self.command(f"start {self.users}")
        return account

    def sample_memory(self) -> None:
        now = time.monotonic() - self.began
        pids = {"master": self.master.process.pid}
        if self.controller is not None:
            pids["controller"] = self.controller.pid
        for i, proc in enumerate(self.live_workers()):
            pids[f"worker{i}"] = proc.pid
        for name, pid in pids.items():
            try:
                rss = psutil.Process(pid).memory_info().rss / 2**20
            except psutil.Error:
                continue
            self.memory.setdefault(name, []).append((now, rss))

    def slopes(self, warmup: float) -> dict[str, float]:
        """MB per minute after ``warmup`` seconds, least squares, per process."""
        out = {}
        for name, points in self.memory.items():
            late = [(t, m) for t, m in points if t >= warmup]
            if len(late) >= 3:
                mt = sum(t for t, _ in late) / len(late)
                mm = sum(m for _, m in late) / len(late)
                var = sum((t - mt) ** 2 for t, _ in late)
                out[name] = 60.0 * sum((t - mt) * (m - mm) for t, m in late) / var if var else 0.0
        return out

    def table(self) -> str:
        head = "| fault | target saw | recorded | answered | lost (target's count) | ok |\n"
        head += "|---|---|---|---|---|---|\n"
        return head + "".join(
            f"| {a.fault} | {a.target} | {a.recorded} | {a.answered} | "
            f"{a.lost} {a.lost_why} | {'yes' if a.ok else 'NO'} |\n"
            for a in self.accounts
        )

    def close(self) -> None:
        if self.controller is not None:
            try:
                self.command("save")
                self.command("quit")
            except (AssertionError, OSError, ValueError):
                pass
            reap(self.controller, 15)  # type: ignore[arg-type]
            for pipe in (self.controller.stdin, self.controller.stdout):
                if pipe is not None:
                    pipe.close()
        for proc in self.procs:
            reap(proc)
        self.master.stop()
        self.proxy.close()
        self.target.close()


SCHEDULE: list[Callable[[Soak], str]] = [
    Soak.kill_worker,
    Soak.pause_worker,
    Soak.refuse,
    Soak.stall,
    Soak.errors,
    Soak.kill_controller,
]


def run(folder: Path, cycles: int = 1, steady: float = 3.0, show: bool = True) -> Soak:
    """Run the schedule ``cycles`` times with ``steady`` seconds of plain load around faults."""
    soak = Soak(folder)
    try:
        soak.start_controller()
        soak.check("warm-up")
        for _ in range(cycles):
            for fault in SCHEDULE:
                time.sleep(steady)
                soak.check(fault(soak))
        soak.command("stop")
        saved = soak.command("save")
        assert Run.load(saved["saved"]).complete
    finally:
        soak.close()
        if show:
            print("\n" + soak.table(), flush=True)
            slopes = soak.slopes(warmup=min(60.0, time.monotonic() - soak.began) / 2)
            print("memory slope after warm-up, MB/min: " + json.dumps(slopes), flush=True)
    return soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--cycles", type=int, default=12)
    parser.add_argument("--steady", type=float, default=45.0)
    parser.add_argument("--folder", default="soak-output")
    args = parser.parse_args()
    folder = Path(args.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    soak = run(folder, args.cycles, args.steady)
    slopes = soak.slopes(warmup=300.0)
    growing = {k: v for k, v in slopes.items() if v > 1.0}
    if growing:
        raise SystemExit(f"memory still grows after warm-up (MB/min): {growing}")


if __name__ == "__main__":
    main()
