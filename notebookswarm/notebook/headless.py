"""A swarm driven from a terminal or a CI job: ``notebookswarm run``.

:func:`run_headless` is the whole run: start a master and workers (a :class:`Swarm`), start
the users, show a live table, stop after the run time (or at the first Ctrl-C, or when a
threshold is breached and ``abort_on_threshold`` says so), stop gracefully so every request
is counted, write the outputs, judge the thresholds and return the exit code:

=====  ==============================================================================
code   meaning
=====  ==============================================================================
0      the run completed, no failures, every threshold held
1      requests failed or user code raised (Locust's ``--exit-code-on-error``, default 1)
2      bad usage or configuration: nothing was started
3      a threshold was breached (it wins over 1)
4      the swarm could not run (the master or a worker would not start)
130    interrupted twice: stopped at once, outputs not written
=====  ==============================================================================

The first SIGINT (or SIGTERM) stops gracefully and still writes every output; a second
quits at once, and closing the swarm reaps every process it started.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import pandas as pd

from notebookswarm.errors import ConfigError, NotebookSwarmError
from notebookswarm.notebook import console
from notebookswarm.notebook.frames import AGGREGATED
from notebookswarm.notebook.junit import write_junit
from notebookswarm.notebook.run import Run
from notebookswarm.notebook.swarm import Swarm, SwarmConfig
from notebookswarm.notebook.thresholds import Threshold, breached, evaluate

OK, FAILURES, USAGE, BREACHED, BROKEN, INTERRUPTED = 0, 1, 2, 3, 4, 130
log = logging.getLogger("notebookswarm.run")


@dataclass(frozen=True)
class Outputs:
    """Where the results go; None leaves an output out."""

    csv_prefix: str | None = None
    csv_full_history: bool = False
    html: str | None = None
    json: bool = False
    save: str | None = None
    junit: str | None = None


@dataclass(frozen=True)
class HeadlessPlan:
    """Everything one headless run needs, checked and parsed before any process starts.

    ``users_from`` is what :class:`Swarm` takes: one ``.py`` path (its source travels, so
    its module-level code runs in the workers too) or user classes loaded here.
    """

    users_from: tuple[Any, ...]
    user_classes: tuple[str, ...] = ()  # of the one file in users_from; () runs them all
    host: str | None = None
    users: int = 1
    spawn_rate: float = 1.0
    run_time: float | None = None  # None: until Ctrl-C (or the shape's end)
    rate: float | None = None  # the open model: task runs a second ...
    max_users: int | None = None  # ... by a pool of at most this many users
    arrivals: str = "constant"
    shape: Any = None  # a load shape (see Swarm.shape); else the locustfile's LoadTestShape
    workers: int = 1
    join: str | None = None  # a standalone master's control endpoint: run on its workers
    keys: str | None = None
    expect_workers: int | None = None  # with join: wait for this many workers
    config: SwarmConfig = field(default_factory=SwarmConfig)
    reset_stats: bool = False
    thresholds: tuple[Threshold, ...] = ()
    abort_on_threshold: bool = False
    abort_grace: float = 10.0
    exit_code_on_error: int = 1
    interval: float = 2.0
    only_summary: bool = False
    outputs: Outputs = field(default_factory=Outputs)


class Interrupts:
    """SIGINT and SIGTERM: the first asks for a graceful stop, a second quits at once."""

    def __init__(self, say: TextIO) -> None:
        self.requested = threading.Event()
        self.quit_now = False
        #: True while the swarm closes: a second signal then waits for it (it reaps).
        self.closing = False
        self._say = say
        self._count = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (call from the main thread)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Give the signals back to whoever had them."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._count += 1
        if self._count == 1:
            self.requested.set()
            self._say.write("\nstopping gracefully; press Ctrl-C again to quit at once\n")
            self._say.flush()
            return
        # Ignore any further signal, and never interrupt closing: closing the swarm is
        # what reaps every process it started.
        self.quit_now = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if not self.closing:
            raise KeyboardInterrupt


def run_headless(plan: HeadlessPlan, stdout: TextIO | None = None) -> int:
    """Run the plan to the end and return the exit code (see the module docstring)."""
    stdout = stdout or sys.stdout
    human = sys.stderr if plan.outputs.json else stdout  # --json keeps stdout for the JSON
    interrupts = Interrupts(human)
    interrupts.install()
    try:
        # Interrupted while it starts, a swarm closes itself (and so reaps what it started).
        swarm = Swarm(
            *plan.users_from,
            host=plan.host,
            workers=(plan.expect_workers or "auto") if plan.join else plan.workers,
            config=plan.config,
            user_classes=list(plan.user_classes) or None,
            master=plan.join,
            keys=plan.keys,
        )
        try:
            human.write(f"{len(swarm.workers)} workers joined; {_describe(plan, swarm)}\n")
            if plan.thresholds:
                human.write(f"thresholds: {threshold_summary(plan.thresholds)}\n")
            aborted = _drive(swarm, plan, interrupts, human)
            _stop(swarm, human)
            run = swarm.result()
            environment = swarm.environment
        finally:
            interrupts.closing = True
            swarm.close()
            interrupts.closing = False
        if interrupts.quit_now:
            raise KeyboardInterrupt
        code = _finish(run, plan, aborted, stdout, human)
        chosen = getattr(environment, "process_exit_code", None)
        return code if chosen is None else int(chosen)  # a listener's choice, as in Locust
    except KeyboardInterrupt:
        human.write("\ninterrupted twice: every process stopped, no output written\n")
        return INTERRUPTED
    except ConfigError as exc:
        human.write(f"error: {exc}\n")
        return USAGE
    except NotebookSwarmError as exc:
        human.write(f"error: the swarm could not run: {exc}\n")
        return BROKEN
    finally:
        interrupts.restore()


def _describe(plan: HeadlessPlan, swarm: Swarm) -> str:
    if plan.shape is not None:
        what = "following the load shape"
    elif swarm.file_shape() is not None:
        what = "following the locustfile's LoadTestShape (-u and -r are ignored, as in Locust)"
    elif plan.rate is not None:
        what = f"{plan.rate:g} task runs/s by at most {plan.max_users} users"
    else:
        what = f"{plan.users} users at {plan.spawn_rate:g}/s"
    until = f"for {plan.run_time:g} s" if plan.run_time else "until Ctrl-C"
    return f"{what} {until}"


def _start(swarm: Swarm, plan: HeadlessPlan) -> None:
    if plan.shape is not None:
        swarm.shape(plan.shape, spawn_rate=plan.spawn_rate)
    elif swarm.file_shape() is not None:
        swarm.start()  # the locustfile's LoadTestShape drives the run
    elif plan.rate is not None:
        swarm.start(rate=plan.rate, max_users=plan.max_users, arrivals=plan.arrivals)
    else:
        swarm.start(plan.users, plan.spawn_rate)


def _drive(swarm: Swarm, plan: HeadlessPlan, interrupts: Interrupts, human: TextIO) -> str:
    """Run until the run time, a stop request, the shape's end or a breach; say which."""
    _start(swarm, plan)
    began = time.monotonic()
    live = console.LiveTable(human)
    reset_pending = plan.reset_stats
    rates = Rates()
    rates.update(swarm.stats, began)
    reason = ""
    while not reason:
        left = None if plan.run_time is None else plan.run_time - (time.monotonic() - began)
        wait = plan.interval if left is None else max(0.0, min(plan.interval, left))
        if interrupts.requested.wait(wait):
            reason = "interrupted"
        elif left is not None and left <= plan.interval:
            reason = "run time over"
        elif swarm.state in ("stopped", "failed"):
            reason = f"the swarm {swarm.state}"  # a shape ended, or a listener called quit()
        if not reason and plan.join is None:
            swarm.raise_if_failed()  # a worker of ours died: exit 4 now, not at -t
        if reset_pending and swarm.state == "running":
            swarm.reset_stats()  # as Locust's --reset-stats: once every user has started
            reset_pending = False
            human.write("all users started: statistics reset\n")
        stats = swarm.stats
        rps = rates.update(stats, time.monotonic())
        if not plan.only_summary:
            status = console.status_line(
                time.monotonic() - began,
                swarm.state,
                swarm.user_count,
                console.aggregated(stats),
                rps.get(("", AGGREGATED), 0.0),
            )
            live.show(status, stats, rps)
        if not reason and _should_abort(plan, stats, time.monotonic() - began):
            reason = "threshold breached"
    live.release()
    human.write(f"stopping: {reason}\n")
    return reason


Counts = dict[tuple[str, str], int]


class Rates:
    """Current requests a second per endpoint, from cumulative counts seen over time.

    Counts arrive once per report period (a second), so the rate is taken over the last
    ``window`` seconds of samples rather than since the previous one, which may hold none.
    """

    def __init__(self, window: float = 3.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, Counts]] = deque()

    def update(self, stats: pd.DataFrame, now: float) -> dict[tuple[str, str], float]:
        """Add the counts of a stats DataFrame seen at ``now``; return the rates."""
        counts = {
            (str(r["method"]), str(r["name"])): int(r["requests"]) for r in stats.to_dict("records")
        }
        self._samples.append((now, counts))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()
        then, before = self._samples[0]
        if now <= then:
            return {}
        return {key: max(0, n - before.get(key, 0)) / (now - then) for key, n in counts.items()}


def _should_abort(plan: HeadlessPlan, stats: pd.DataFrame, elapsed: float) -> bool:
    """Say whether a threshold is breached by what was measured, once the grace is over."""
    if not plan.abort_on_threshold or not plan.thresholds or elapsed < plan.abort_grace:
        return False
    verdicts = evaluate(plan.thresholds, stats)
    measured = verdicts[verdicts["observed"].notna()]  # an endpoint not yet reached is no breach
    return bool((~measured["passed"]).any())


def _stop(swarm: Swarm, human: TextIO) -> None:
    try:
        swarm.stop()
    except TimeoutError as exc:
        human.write(f"warning: {exc}; the results hold what arrived\n")


def _finish(run: Run, plan: HeadlessPlan, aborted: str, stdout: TextIO, human: TextIO) -> int:
    """Print the summary, write every output, judge the run; return the exit code."""
    stats = run.stats
    human.write("\n" + "\n".join(console.table_lines(stats)) + "\n")
    errors = run.errors
    if len(errors):
        human.write("\nfailures:\n")
        for row in errors.head(20).to_dict("records"):
            human.write(f"  {row['count']:>8}  {row['method']} {row['name']}: {row['error']}\n")
    for path in write_outputs(run, plan):
        human.write(f"wrote {path}\n")
    verdicts = evaluate(plan.thresholds, stats) if plan.thresholds else None
    if plan.outputs.junit and verdicts is not None:
        human.write(f"wrote {write_junit(verdicts, plan.outputs.junit)}\n")
    if plan.outputs.json:
        stdout.write(json.dumps(run.to_locust_json(), indent=4) + "\n")
        stdout.flush()
    code = OK
    total = console.aggregated(stats)
    if int(total.get("failures", 0)) or len(run.exceptions):
        code = plan.exit_code_on_error
        human.write(
            f"{total.get('failures', 0)} requests failed, {len(run.exceptions)} kinds of "
            f"exception in user code: exit code {code} (--exit-code-on-error)\n"
        )
    if verdicts is not None:
        lines = breached(verdicts)
        held = len(verdicts) - len(lines)
        human.write(f"thresholds: {held} of {len(verdicts)} held\n")
        for line in lines:
            human.write(f"  breached: {line}\n")
        if lines:
            code = BREACHED
    if aborted == "threshold breached":
        code = BREACHED
    human.flush()
    return code


def write_outputs(run: Run, plan: HeadlessPlan) -> list[Path]:
    """Write the CSV files, the HTML report and the saved run the plan asks for."""
    out = plan.outputs
    written: list[Path] = []
    if out.csv_prefix:
        folder = run.to_csv(out.csv_prefix, style="locust", full_history=out.csv_full_history)
        written.append(folder / f"{Path(out.csv_prefix).name}_stats.csv")
    if out.html:
        written.append(run.to_html(_html_name(out.html, plan)))
    if out.save:
        written.append(run.save(out.save))
    return written


def _html_name(template: str, plan: HeadlessPlan) -> str:
    """Fill Locust's ``{u}``, ``{r}`` and ``{t}`` (users, spawn rate, run time in s)."""
    run_time = "" if plan.run_time is None else f"{plan.run_time:g}"
    return (
        template.replace("{u}", str(plan.users))
        .replace("{r}", f"{plan.spawn_rate:g}")
        .replace("{t}", run_time)
    )


def threshold_summary(thresholds: Sequence[Threshold]) -> str:
    """Say which thresholds the run will be judged by, one expression after another."""
    return ", ".join(t.text for t in thresholds)
