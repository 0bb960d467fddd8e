"""Command line: ``notebookswarm run|master|worker|demo|keygen ...`` (``python -m notebookswarm``).

- ``run``: a locustfile headless, with Locust's flags (see ``notebook/run_options.py``);
- ``master`` and ``worker``: the processes of a cluster, for containers: the flags of
  ``python -m notebookswarm.master`` / ``.worker``, each also settable as an environment
  variable ``NOTEBOOKSWARM_<FLAG>`` (``--worker-port`` is ``NOTEBOOKSWARM_WORKER_PORT``);
- ``demo`` and ``keygen``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from notebookswarm.cluster.protocol import Update
from notebookswarm.errors import NotebookSwarmError


def demo(args: argparse.Namespace) -> int:
    """Find the demo contest site's bottleneck: step load, knee, report, saved run."""
    from notebookswarm._demo.target import start_target
    from notebookswarm.notebook.analysis import capacity
    from notebookswarm.notebook.swarm import Swarm

    users_file = str(resources.files("notebookswarm.examples").joinpath("contest.py"))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with start_target(pool_size=args.pool_size, query_ms=args.query_ms) as target:
        expected = args.pool_size / (args.query_ms / 1000.0)
        print(
            f"demo contest site on {target.url}: a database pool of {args.pool_size} "
            f"connections, {args.query_ms:g} ms per query -> at most ~{expected:.0f} req/s"
        )
        with Swarm(users_file, host=target.url, workers=args.workers) as swarm:
            print(
                f"{len(swarm.workers)} workers joined; stepping from {args.start} to "
                f"{args.until} users, {args.step} more every {args.every:g} s"
            )
            swarm.watch(target.metrics_url, name="demo")  # the site's own side, each second
            swarm.on_frame(lambda frame: _progress(frame, target))
            swarm.step_load(start=args.start, step=args.step, every=args.every, until=args.until)
            swarm.wait("done")
            run = swarm.result()
    cap = capacity(run, think_time=1.0)
    columns = [
        "users",
        "throughput",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "failure_ratio",
        "littles_law_ok",
    ]
    print()
    print(cap.table[columns].to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    knee = cap.knee
    print(
        f"\nknee: about {int(knee['users'])} users at {cap.throughput:.0f} req/s "
        f"(the pool allows ~{expected:.0f}); past it, latency climbs while throughput stays"
    )
    if cap.server is not None:
        print(f"why: {cap.server.sentence}")
    report = run.to_html(out / "report.html", title="notebookswarm demo: the contest site")
    saved = run.save(out / "run")
    print(
        f"wrote {report} (open it in a browser) and the run in {saved}/ "
        "(nbs.Run.load to read it back)"
    )
    print(
        "next: `make lab` and open notebooks/02-find-the-bottleneck.ipynb to tune the pool "
        "and prove the fix"
    )
    return 0


def _progress(frame: Update, target: Any) -> None:
    if not frame.reports:
        return
    from notebookswarm.stats.requests import RequestStats

    total = RequestStats.from_wire(frame.stats).total()
    span = frame.span or 1.0
    p95 = total.latency.percentile(0.95) / 1e6
    try:
        waiting = target.metrics().get("pool_waiters", 0)
    except Exception:
        waiting = "?"
    print(
        f"  users {frame.users:4d}  {total.requests / span:7.1f} req/s  p95 {p95:8.1f} ms"
        f"  failures {total.failures:3d}  requests waiting for the database {waiting}",
        flush=True,
    )


def keygen(args: argparse.Namespace) -> int:
    """Write CurveZMQ keys for a master and its workers."""
    from notebookswarm.cluster.keys import keygen as write_keys

    folder = write_keys(args.directory)
    print(f"wrote {folder}/master.key_secret (keep it on the master), {folder}/master.key and")
    print(
        f"{folder}/worker.key_secret (copy both to each worker); "
        f"the master trusts the keys in {folder}/trusted/"
    )
    return 0


@dataclass(frozen=True)
class Flag:
    """One flag of a process's command line, as the pass-through parser declares it."""

    names: tuple[str, ...]
    kind: str = "value"  # "value", "switch" (store_true), "list" (nargs *), "append"
    help: str = ""


#: The flags of ``python -m notebookswarm.master`` (tests/test_cli_run.py keeps them equal).
MASTER_FLAGS = (
    Flag(("--bind",), help="address to listen on (127.0.0.1; beyond it --keys is required)"),
    Flag(("--worker-port",), help="port workers join (0 picks a free one)"),
    Flag(("--control-port",), help="port controllers connect to (0 picks a free one)"),
    Flag(("--keys",), help="CurveZMQ key folder (from `notebookswarm keygen`)"),
    Flag(("--config",), help="every MasterConfig field as JSON"),
    Flag(("--standalone",), "switch", "a service: keep running with no controller"),
    Flag(("--heartbeat-interval",)),
    Flag(("--heartbeat-timeout",)),
    Flag(("--master-timeout",)),
    Flag(("--controller-timeout",)),
    Flag(("--report-interval",)),
)
#: The flags of ``python -m notebookswarm.worker`` (tests/test_cli_run.py keeps them equal).
WORKER_FLAGS = (
    Flag(("--master",), help="join the master at this endpoint, e.g. tcp://10.0.0.5:5557"),
    Flag(("--keys",), help="CurveZMQ key folder (from `notebookswarm keygen`)"),
    Flag(("--connect-timeout",)),
    Flag(("--standalone",), "switch", "run one swarm in this process"),
    Flag(("--locustfile", "-f"), help="Python file with user classes (standalone)"),
    Flag(("--user-class",), "append", "run only this class (repeatable)"),
    Flag(("--host",)),
    Flag(("--users", "-u")),
    Flag(("--spawn-rate", "-r")),
    Flag(("--run-time", "-t")),
    Flag(("--report-interval",)),
    Flag(("--stop-timeout",)),
    Flag(("--tags",), "list"),
    Flag(("--exclude-tags",), "list"),
    Flag(("--single-user",), "switch", "run one user, printing every request"),
)


def passthrough_argv(prog: str, flags: Sequence[Flag], argv: Sequence[str]) -> list[str]:
    """Return ``argv`` with the ``NOTEBOOKSWARM_<FLAG>`` variables folded in, for a process
    whose own parser then reads it (flags win over the environment, as everywhere)."""
    import configargparse  # type: ignore[import-untyped]

    parser = configargparse.ArgumentParser(
        prog=prog, auto_env_var_prefix="NOTEBOOKSWARM_", add_env_var_help=True
    )
    kinds: dict[str, dict[str, Any]] = {"list": {"nargs": "*"}, "append": {"action": "append"}}
    kinds["switch"] = {"action": "store_true", "default": None}
    for flag in flags:
        parser.add_argument(*flag.names, help=flag.help or None, **kinds.get(flag.kind, {}))
    args = parser.parse_args(list(argv))
    out: list[str] = []
    for flag in flags:
        value = getattr(args, flag.names[0].lstrip("-").replace("-", "_"))
        if value is None or value is False:
            continue
        if flag.kind == "switch":
            out.append(flag.names[0])
        elif flag.kind == "list":
            out += [flag.names[0], *value]
        elif flag.kind == "append":
            out += [part for item in value for part in (flag.names[0], item)]
        else:
            out += [flag.names[0], str(value)]
    return out


def master(argv: Sequence[str]) -> int:
    """Run a master (``python -m notebookswarm.master``), flags also from the environment."""
    args = passthrough_argv("notebookswarm master", MASTER_FLAGS, argv)
    from notebookswarm.cluster.master import main as master_main

    return master_main(args)


def worker(argv: Sequence[str]) -> int:
    """Become a worker (``python -m notebookswarm.worker``), flags also from the environment.

    The process is replaced (exec), so the worker monkey-patches first thing, as it must,
    in a fresh interpreter that has imported nothing else.
    """
    args = passthrough_argv("notebookswarm worker", WORKER_FLAGS, argv)
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, "-m", "notebookswarm.worker", *args]
    os.execv(sys.executable, command)
    return 0  # not reached: exec does not return


def run(argv: Sequence[str]) -> int:
    """Run a locustfile headless (``notebookswarm run --help``)."""
    from notebookswarm.notebook.run_options import main as run_main

    return run_main(argv)


#: Commands with parsers of their own: the rest of the command line is theirs.
PASSTHROUGH = {"run": run, "master": master, "worker": worker}
_PASSTHROUGH_HELP = {
    "run": "run a locustfile headless, with Locust's flags (run --help)",
    "master": "run a master for remote workers (flags or NOTEBOOKSWARM_* variables)",
    "worker": "run a worker that joins a master (flags or NOTEBOOKSWARM_* variables)",
}


def main(argv: list[str] | None = None) -> int:
    """Run the notebookswarm command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in PASSTHROUGH:
        return PASSTHROUGH[args[0]](args[1:])
    from notebookswarm._version import __version__

    parser = argparse.ArgumentParser(prog="notebookswarm")
    parser.add_argument("-V", "--version", action="version", version=f"notebookswarm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in _PASSTHROUGH_HELP.items():
        sub.add_parser(name, help=help_text, add_help=False)
    p_demo = sub.add_parser("demo", help="run the example users against a local target")
    p_demo.add_argument("--pool-size", type=int, default=8)
    p_demo.add_argument("--query-ms", type=float, default=20.0)
    p_demo.add_argument("--start", type=int, default=50)
    p_demo.add_argument("--step", type=int, default=50)
    p_demo.add_argument("--every", type=float, default=5.0)
    p_demo.add_argument("--until", type=int, default=600)
    p_demo.add_argument("--workers", type=int, default=2)
    p_demo.add_argument("--output", default="demo-output")
    p_demo.set_defaults(run=demo)
    p_keys = sub.add_parser("keygen", help="write CurveZMQ keys for a master and its workers")
    p_keys.add_argument("directory")
    p_keys.set_defaults(run=keygen)
    parsed = parser.parse_args(args)
    try:
        return int(parsed.run(parsed))
    except NotebookSwarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
