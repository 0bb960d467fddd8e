"""Command line: ``python -m notebookswarm demo|keygen DIR`` (or ``notebookswarm ...``)."""

from __future__ import annotations

import argparse
import sys
from importlib import resources

from notebookswarm import protocol
from notebookswarm.errors import NotebookSwarmError
from notebookswarm.frames import stats_frame
from notebookswarm.local import LocalResult, run_local
from notebookswarm.testing import CountingServer


def _progress(message: protocol.Message, result: LocalResult) -> None:
    if not isinstance(message, protocol.Heartbeat) or not result.reports:
        return
    last = result.reports[-1]
    total = result.stats.total()
    seconds = last.end - last.start
    from notebookswarm.stats import RequestStats

    interval = RequestStats.from_wire(last.stats).total()
    rps = interval.requests / seconds if seconds > 0 else 0.0
    p95 = total.latency.percentile(0.95) / 1e6
    print(
        f"  {result.duration:5.1f} s  users {sum(message.users.values()):4d}  "
        f"requests {total.requests:6d}  failures {total.failures:4d}  "
        f"rps {rps:7.1f}  p95 {p95:7.2f} ms  worker CPU {message.cpu_percent:5.1f}%",
        flush=True,
    )


def demo(args: argparse.Namespace) -> int:
    """Run the seed example's users against a local target and print what they measured."""
    users_file = resources.files("notebookswarm.examples").joinpath("website.py")
    with CountingServer() as target:
        target.route("/", body=b"<h1>home</h1>" * 20)
        target.route("/about/", body=b"<p>about us</p>" * 50)
        print(f"demo target listening on {target.url}")
        print(
            f"running {args.users} WebsiteUser users (spawn rate {args.spawn_rate}/s) "
            f"for {args.run_time:g} s in a worker process..."
        )
        result = run_local(
            str(users_file),
            host=target.url,
            users=args.users,
            spawn_rate=args.spawn_rate,
            run_time=args.run_time,
            on_message=_progress,
        )
        received = target.count()
    frame = stats_frame(result.stats, result.duration)
    print()
    columns = [
        "method",
        "name",
        "requests",
        "failures",
        "rps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "max_ms",
    ]
    print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    counted = result.stats.total().requests
    print(f"\nthe target received {received} requests; notebookswarm counted {counted}")
    return 0 if received == counted else 1


def keygen(args: argparse.Namespace) -> int:
    """Write CurveZMQ keys for a master and its workers."""
    from notebookswarm.keys import keygen as write_keys

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
    p_demo.add_argument("--users", type=int, default=300)
    p_demo.add_argument("--spawn-rate", type=float, default=60.0)
    p_demo.add_argument("--run-time", type=float, default=10.0)
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
