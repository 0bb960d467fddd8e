"""Command line: ``python -m notebookswarm demo|keygen DIR`` (or ``notebookswarm ...``)."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from notebookswarm.cluster.protocol import Update
from notebookswarm.errors import NotebookSwarmError


def demo(args: argparse.Namespace) -> int:
    """Find the demo contest site's bottleneck: step load, knee, report, saved run."""
    from notebookswarm._demo.target import start_target
    from notebookswarm.notebook.analysis import capacity
    from notebookswarm.notebook.attribution import attribute
    from notebookswarm.notebook.swarm import Swarm
    from notebookswarm.notebook.watch import Watcher

    users_file = str(resources.files("notebookswarm.examples").joinpath("contest.py"))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with start_target(pool_size=args.pool_size, query_ms=args.query_ms) as target:
        expected = args.pool_size / (args.query_ms / 1000.0)
        print(
            f"demo contest site on {target.url}: a database pool of {args.pool_size} "
            f"connections, {args.query_ms:g} ms per query -> at most ~{expected:.0f} req/s"
        )
        with (
            Swarm(users_file, host=target.url, workers=args.workers) as swarm,
            Watcher() as watcher,
        ):
            print(
                f"{len(swarm.workers)} workers joined; stepping from {args.start} to "
                f"{args.until} users, {args.step} more every {args.every:g} s"
            )
            watcher.watch(target.metrics_url, name="demo")  # the site's own side, each second
            swarm.on_frame(lambda frame: _progress(frame, target))
            swarm.step_load(start=args.start, step=args.step, every=args.every, until=args.until)
            swarm.wait("done")
            run = swarm.result()
        server = watcher.frame()
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
    why = attribute(server, run.meta["steps"], cap.table, knee, run.history)
    print(f"why: {why.sentence}")
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


def main(argv: list[str] | None = None) -> int:
    """Run the notebookswarm command line."""
    parser = argparse.ArgumentParser(prog="notebookswarm")
    sub = parser.add_subparsers(dest="command", required=True)
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
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except NotebookSwarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
