"""Run one user verbosely: every request printed as it happens (``--single-user``).

``python -m notebookswarm.worker --single-user -f FILE [--user-class NAME] [--host URL]
[--run-time S]`` runs one user of the class (the file's first class when none is named)
for ``--run-time`` seconds and prints, on stdout, one line per request — time, method,
name, status, latency, size, error — and every exception from user code with its
traceback, then a summary. The user's own prints go to the same stdout, in order.
:func:`notebookswarm.users.compat.single.debug_user` runs this from a notebook cell.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Any

import gevent

from notebookswarm.engine.locust_events import WorkerEvents
from notebookswarm.engine.runtime import Runtime, RuntimeConfig
from notebookswarm.errors import ConfigError
from notebookswarm.stats.requests import StatsRecorder
from notebookswarm.users.compat.loading import load_locustfile


def request_line(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    exception: Any = None,
    response: Any = None,
    **_: Any,
) -> str:
    """Return the line printed for one request."""
    status = getattr(response, "status_code", None)
    shown = "-" if status is None else str(status)
    clock = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
    line = (
        f"{clock}  {request_type:<6} {name:<30} {shown:>4}  "
        f"{response_time:9.1f} ms  {response_length:>8} B"
    )
    return line + (f"  FAILED {exception}" if exception is not None else "")


def run_single_user(args: argparse.Namespace) -> int:
    """Run one user of ``args.locustfile`` for ``args.run_time`` seconds, printing as it goes."""

    def say(text: str) -> None:
        print(text, flush=True)

    try:
        loaded = load_locustfile(args.locustfile, args.user_class or None, keep=True)
        cls = loaded.classes[0]
        recorder = StatsRecorder()
        runtime = Runtime([cls], recorder, RuntimeConfig(host=args.host, stop_timeout=5.0))
    except ConfigError as exc:
        say(f"notebookswarm: {exc}")
        return 2
    events = WorkerEvents(loaded.environment, "single-user", recorder)
    hooks = loaded.environment.events
    hooks.request.add_listener(lambda **kw: say(request_line(**kw)))
    hooks.user_error.add_listener(
        lambda exception, **_: say("exception in user code:\n" + _traceback(exception))
    )
    events.attach(runtime)
    say(f"running one {cls.__name__} for {args.run_time:g} s")
    events.starting()
    runtime.set_targets({cls.__name__: 1}, 1.0)
    gevent.sleep(args.run_time)
    runtime.stop()
    events.stopping()
    events.quitting()
    total = recorder.current.total()
    exceptions = sum(r.count for r in recorder.current.exceptions.values())
    say(f"{total.requests} requests, {total.failures} failed, {exceptions} exceptions in user code")
    sys.stdout.flush()
    return 0


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()
