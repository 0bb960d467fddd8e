"""The options of ``notebookswarm run``: Locust's flags with Locust's names, and ours.

Settings are layered as Locust layers them, lowest first: config files (``~/.locust.conf``,
``locust.conf``, ``notebookswarm.conf``, then ``pyproject.toml``'s ``[tool.locust]`` and
``[tool.notebookswarm]`` tables; ``--config FILE`` adds one), environment variables
(``NOTEBOOKSWARM_<FLAG>``, or Locust's ``LOCUST_<FLAG>`` when ours is unset), then the
command line. `configargparse <https://github.com/bw2/ConfigArgParse>`_ does the layering.

Every Locust 2.x flag is either supported, accepted and ignored (web UI settings, which a
``locust.conf`` shared with the web UI may well hold; a note says so), or refused with a
message saying what to do instead: docs/cli.md lists them. To add a flag: 1. declare it in
:func:`build_parser` (its env var follows from its name); 2. carry it into the plan in
:func:`plan_from`; 3. add it to docs/cli.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tomllib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import configargparse  # type: ignore[import-untyped]

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.headless import OK, USAGE, HeadlessPlan, Outputs, run_headless
from notebookswarm.notebook.locustfiles import load_classes, locustfiles
from notebookswarm.notebook.shapes import parse_duration
from notebookswarm.notebook.swarm import SwarmConfig, default_runs_dir
from notebookswarm.notebook.thresholds import parse_thresholds
from notebookswarm.users.compat.loading import options_for_workers

CONFIG_FILES = ["~/.locust.conf", "locust.conf", "notebookswarm.conf", "pyproject.toml"]
TOML_TABLES = ("tool.locust", "tool.notebookswarm")  # the later wins
ENV_PREFIX = "NOTEBOOKSWARM_"
#: Locust's environment variables whose names do not follow from the flag's.
_LOCUST_ENV = {"CLASS_PICKER": "LOCUST_USERCLASS_PICKER", "MASTER": "LOCUST_MODE_MASTER"}
_LOCUST_ENV |= {"WORKER": "LOCUST_MODE_WORKER", "MASTER_HOST": "LOCUST_MASTER_NODE_HOST"}
_LOCUST_ENV |= {"MASTER_PORT": "LOCUST_MASTER_NODE_PORT"}

#: Locust flags accepted and ignored, with why (printed as a note when one is set).
IGNORED = {
    "web_host": "there is no web UI: the terminal shows the run",
    "web_port": "there is no web UI: the terminal shows the run",
    "web_login": "there is no web UI",
    "web_base_path": "there is no web UI",
    "tls_cert": "there is no web UI to serve over HTTPS",
    "tls_key": "there is no web UI to serve over HTTPS",
    "class_picker": "there is no web UI: name user classes as arguments",
    "autostart": "a run always starts at once",
    "autoquit": "a run always quits when it is over",
    "headful": "there is no web UI",
    "print_stats": "the live table is always printed (--only-summary turns it off)",
    "skip_log_setup": "logging is set up only by --loglevel and --logfile",
    "expect_workers_max_wait": "the run waits for every worker it starts (--workers)",
    "enable_rebalancing": "users are always rebalanced when workers come and go",
    "master_bind_host": "the run's master listens on 127.0.0.1 (see `notebookswarm master`)",
    "master_bind_port": "the run's master listens on 127.0.0.1 (see `notebookswarm master`)",
    "profile": "runs are not grouped; --save DIR keeps each one",
}
#: Locust flags refused, with the message (what to do instead).
REFUSED = {
    "--master": "run a master with `notebookswarm master` (docs/distributed.md)",
    "--worker": "run a worker with `notebookswarm worker --master tcp://HOST:PORT`",
    "--master-host": "workers join with `notebookswarm worker --master tcp://HOST:PORT`",
    "--master-port": "workers join with `notebookswarm worker --master tcp://HOST:PORT`",
    "--config-users": "per-class settings from JSON are not supported: set class attributes",
    "--show-task-ratio": "not supported: the run's stats show what each task requested",
    "--show-task-ratio-json": "not supported: the run's stats show what each task requested",
    "--equal-weights": "not supported: it would change the load; set weights in the file",
    "--hatch-rate": "renamed --spawn-rate (Locust 1.0)",
    "--legacy-ui": "there is no web UI",
    "--web-auth": "there is no web UI",
    "--slave": "renamed --worker in Locust; here: `notebookswarm worker`",
    "--expect-slaves": "renamed --expect-workers in Locust; here: --workers",
}


class ConfigFiles(configargparse.ConfigFileParser):  # type: ignore[misc]
    """Read ``key = value`` files, and TOML files' ``[tool.locust]``/``[tool.notebookswarm]``."""

    def get_syntax_description(self) -> str:
        """Say what a config file may hold (shown in --help)."""
        return "locust.conf style `key = value` lines, or [tool.notebookswarm] in pyproject.toml"

    def parse(self, stream: Any) -> OrderedDict[str, Any]:
        """Return the settings of one file, keys as flags without dashes."""
        if str(getattr(stream, "name", "")).endswith(".toml"):
            items = _toml_items(stream.read(), getattr(stream, "name", "TOML"))
        else:
            items = configargparse.DefaultConfigFileParser().parse(stream)
        return OrderedDict((str(k).replace("_", "-"), v) for k, v in items.items())


def _toml_items(text: str, name: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise configargparse.ConfigFileParserException(f"{name} is not TOML: {exc}") from None
    items: dict[str, Any] = {}
    for table in TOML_TABLES:
        section: Any = data
        for part in table.split("."):
            section = section.get(part, {}) if isinstance(section, dict) else {}
        for key, value in section.items():
            if isinstance(value, list):
                items[key] = [str(v) for v in value]
            elif isinstance(value, bool):
                items[key] = "true" if value else "false"
            else:
                items[key] = str(value)
    return items


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0s") else _duration(text)


def _refuse(message: str) -> type[argparse.Action]:
    class Refused(argparse.Action):
        def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
            raise argparse.ArgumentError(self, message)

    return Refused


def build_parser() -> configargparse.ArgumentParser:
    """Return the parser of ``notebookswarm run`` (config files and env vars included)."""
    p = configargparse.ArgumentParser(
        prog="notebookswarm run",
        description="Run a locustfile headless: a master and workers, a live table, "
        "Locust-format outputs, thresholds, an exit code.",
        default_config_files=CONFIG_FILES,
        config_file_parser_class=ConfigFiles,
        auto_env_var_prefix=ENV_PREFIX,
        add_config_file_help=False,
        add_env_var_help=False,
        epilog="Settings: config files < NOTEBOOKSWARM_*/LOCUST_* variables < flags. "
        "Exit codes: 0 passed, 1 failures (--exit-code-on-error), 2 usage, 3 threshold "
        "breached, 4 the swarm could not run. See docs/cli.md.",
    )
    _add_locust_flags(p.add_argument)
    _add_our_flags(p.add_argument_group("notebookswarm's own").add_argument)
    _add_ignored_and_refused(p)
    return p


def _add_locust_flags(add: Any) -> None:
    add(
        "-f",
        "--locustfile",
        default="locustfile.py",
        metavar="FILE",
        help="a .py file, a module, a folder of them, or a comma-separated list",
    )
    add("--config", is_config_file=True, metavar="FILE", help="read settings from this file")
    add("-H", "--host", metavar="URL", help="base URL of the system under test")
    add("-u", "--users", type=int, metavar="N", help="peak concurrent users (default 1)")
    add("-r", "--spawn-rate", type=float, metavar="R", help="users started a second (default 1)")
    add(
        "-t",
        "--run-time",
        type=_duration,
        metavar="TIME",
        help="30s, 5m, 1h30m (default: until Ctrl-C)",
    )
    add("-l", "--list", action="store_true", dest="list_commands", help="list user classes, exit")
    add("--headless", action="store_true", help="accepted: a run is always headless")
    add("-T", "--tags", nargs="*", metavar="TAG", help="run only tasks with one of these tags")
    add("-E", "--exclude-tags", nargs="*", metavar="TAG", help="skip tasks with these tags")
    add("--csv", dest="csv_prefix", metavar="PREFIX", help="write Locust's four CSV files")
    add("--csv-full-history", action="store_true", help="every endpoint in _stats_history.csv")
    add("--html", dest="html_file", metavar="FILE", help="write the HTML report ({u} {r} {t})")
    add("--json", action="store_true", help="print the final stats as Locust's JSON on stdout")
    add("--reset-stats", action="store_true", help="reset the stats once every user started")
    add("--only-summary", action="store_true", help="no live table, only the summary")
    add(
        "-L",
        "--loglevel",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
    )
    add("--logfile", metavar="FILE", help="log here instead of stderr")
    add(
        "--exit-code-on-error",
        type=int,
        default=1,
        metavar="N",
        help="exit code when requests failed or user code raised (default 1)",
    )
    add(
        "-s",
        "--stop-timeout",
        type=_seconds_or_zero,
        default=10.0,
        metavar="TIME",
        help="time users get to finish their task at the stop (default 10 s)",
    )
    add("--processes", type=int, metavar="N", help="Locust's name for --workers (-1: per core)")
    add("user_classes", nargs="*", metavar="UserClass", help="run only these user classes")


def _add_our_flags(add: Any) -> None:
    add("--workers", type=int, metavar="N", help="worker processes (default: usable CPUs)")
    add(
        "--join",
        metavar="tcp://HOST:PORT",
        help="run on a standalone master's workers (its control endpoint) instead of starting any",
    )
    add("--keys", metavar="DIR", help="CurveZMQ keys for --join beyond 127.0.0.1 (from keygen)")
    add(
        "--expect-workers",
        type=int,
        metavar="N",
        help="with --join: wait until N workers have joined before starting",
    )
    add("--rate", type=float, metavar="R", help="open model: task runs a second")
    add("--max-users", type=int, metavar="N", help="open model: the pool's size")
    add("--arrivals", choices=["constant", "poisson"], default="constant")
    add(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="e.g. 'p95_ms<500', 'GET /api:p99_ms<800' (repeatable)",
    )
    add(
        "--abort-on-threshold",
        action="store_true",
        help="stop early at a breached threshold (after --abort-grace)",
    )
    add("--abort-grace", type=_duration, default=10.0, metavar="TIME")
    add("--save", metavar="DIR", help="save the run (nbs.Run.load reads it)")
    add(
        "--single-user",
        action="store_true",
        help="debug: run one user of the (first) class, printing every request as it happens",
    )
    add(
        "--runs-dir",
        metavar="DIR",
        help="stream the run into a folder under DIR as it goes (default notebookswarm-runs; "
        "'' keeps it in memory only)",
    )
    add("--junit", metavar="FILE", help="write the threshold verdicts as JUnit XML")
    add(
        "--interval",
        type=_duration,
        default=2.0,
        metavar="TIME",
        help="how often the live table is drawn (default 2 s)",
    )


def _add_ignored_and_refused(p: configargparse.ArgumentParser) -> None:
    hidden = argparse.SUPPRESS
    for dest in IGNORED:
        flag = "--" + dest.replace("_", "-")
        if dest in (
            "autostart",
            "web_login",
            "class_picker",
            "headful",
            "print_stats",
            "skip_log_setup",
            "enable_rebalancing",
        ):
            p.add_argument(flag, action="store_true", help=hidden)
        elif flag == "--web-port":
            p.add_argument(flag, "-P", help=hidden)
        else:
            p.add_argument(flag, help=hidden)
    for flag, message in REFUSED.items():
        p.add_argument(flag, nargs="?", action=_refuse(message), help=hidden)


def environment(parser: configargparse.ArgumentParser, env: Mapping[str, str]) -> dict[str, str]:
    """Return ``env`` with each Locust variable copied to ours where ours is unset."""
    merged = dict(env)
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs:
            continue
        # The name configargparse derives from the first long flag: --spawn-rate -> SPAWN_RATE.
        stem = longs[0][2:].replace("-", "_").upper()
        locust = _LOCUST_ENV.get(stem, "LOCUST_" + stem)
        if ENV_PREFIX + stem not in merged and locust in env:
            merged[ENV_PREFIX + stem] = env[locust]
    return merged


def parse(argv: Sequence[str], env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Parse a run's settings from files, the environment and ``argv``.

    A locustfile's ``init_command_line_parser`` listeners add their own options first (so
    they show in ``--help``); ``args.custom_options`` names them.
    """
    parser = build_parser()
    variables = environment(parser, os.environ if env is None else env)
    before = {action.dest for action in parser._actions}
    _add_file_options(parser, argv, variables)
    args: argparse.Namespace = parser.parse_args(list(argv), env_vars=variables)
    args.custom_options = sorted({action.dest for action in parser._actions} - before)
    if not args.user_classes:
        names = variables.get(ENV_PREFIX + "USER_CLASSES") or variables.get("LOCUST_USER_CLASSES")
        args.user_classes = (names or "").split()
    if args.csv_full_history and not args.csv_prefix:
        parser.error("--csv-full-history needs --csv PREFIX")
    return args


def _add_file_options(
    parser: configargparse.ArgumentParser, argv: Sequence[str], variables: Mapping[str, str]
) -> None:
    """Let the one locustfile of ``-f`` add its options (loading it costs a file's import)."""
    quiet = [a for a in argv if a not in ("-h", "--help")]  # --help comes after the file's
    known, _ = parser.parse_known_args(quiet, env_vars=variables)
    try:
        files = locustfiles(known.locustfile)
    except ConfigError:
        return  # the real parse says what is wrong with -f
    if len(files) != 1:
        return
    from notebookswarm.users.compat.loading import add_custom_arguments, load_locustfile

    with contextlib.suppress(ConfigError):  # a broken file fails later, with its reason
        add_custom_arguments(parser, load_locustfile(files[0]))


def ignored_notes(args: argparse.Namespace) -> list[str]:
    """Return a note for each accepted-but-ignored Locust flag that was set."""
    return [
        f"note: --{dest.replace('_', '-')} is ignored: {why}"
        for dest, why in IGNORED.items()
        if getattr(args, dest, None) not in (None, False)
    ]


def plan_from(args: argparse.Namespace) -> HeadlessPlan:
    """Check the settings and load the user code; nothing is started yet."""
    from notebookswarm.cluster.capacity import default_workers

    thresholds = tuple(parse_thresholds(args.threshold))  # a bad one is refused first
    if args.rate is not None and args.users is not None:
        raise ConfigError("pass -u/--users (users that wait) or --rate (arrivals), not both")
    if args.rate is not None and args.max_users is None:
        raise ConfigError("--rate needs --max-users, the most users the pool may grow to")
    files = locustfiles(args.locustfile)
    users_from: tuple[Any, ...]
    names: tuple[str, ...] = ()
    if len(files) == 1:  # its source travels: module-level code runs in workers too
        users_from, names = (str(files[0]),), tuple(args.user_classes)
    else:
        users_from = tuple(load_classes(files, args.user_classes))
    workers = args.workers
    if workers is None and args.processes is not None and args.processes > 0:
        workers = args.processes
    outputs = Outputs(
        csv_prefix=args.csv_prefix,
        csv_full_history=args.csv_full_history,
        html=args.html_file,
        json=args.json,
        save=args.save,
        junit=args.junit,
    )
    return HeadlessPlan(
        users_from=users_from,
        user_classes=names,
        host=args.host,
        users=args.users if args.users is not None else 1,
        spawn_rate=args.spawn_rate if args.spawn_rate is not None else 1.0,
        run_time=args.run_time,
        rate=args.rate,
        max_users=args.max_users,
        arrivals=args.arrivals,
        workers=workers if workers is not None else default_workers(),
        join=args.join,
        keys=args.keys,
        expect_workers=args.expect_workers,
        config=SwarmConfig(
            runs_dir=default_runs_dir() if args.runs_dir is None else args.runs_dir or None,
            parsed_options=options_for_workers(args),
            stop_timeout=args.stop_timeout,
            tags=tuple(args.tags) if args.tags else None,
            exclude_tags=tuple(args.exclude_tags or ()),
        ),
        reset_stats=args.reset_stats,
        thresholds=thresholds,
        abort_on_threshold=args.abort_on_threshold,
        abort_grace=args.abort_grace,
        exit_code_on_error=args.exit_code_on_error,
        interval=args.interval,
        only_summary=args.only_summary,
        outputs=outputs,
    )


def main(argv: Sequence[str]) -> int:
    """Run ``notebookswarm run ARGV``; return the exit code (2: refused before starting)."""
    args = parse(argv)
    for note in ignored_notes(args):
        print(note, file=sys.stderr)
    logging.basicConfig(
        level=args.loglevel,
        filename=args.logfile,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.list_commands:
            for cls in load_classes(locustfiles(args.locustfile), args.user_classes):
                print(cls.__name__)
            return OK
        if args.single_user:
            return single_user(args)
        plan = plan_from(args)
    except ConfigError as exc:
        print(f"notebookswarm run: error: {exc}", file=sys.stderr)
        return USAGE
    return run_headless(plan)


def single_user(args: argparse.Namespace) -> int:
    """Run one user in a worker process of its own, its every request printed (gevent
    patches only that process); return its exit status."""
    import subprocess

    files = locustfiles(args.locustfile)
    if len(files) != 1:
        raise ConfigError("--single-user runs one locustfile: pass one -f FILE")
    command = [sys.executable, "-m", "notebookswarm.worker", "--single-user", "-f", str(files[0])]
    if args.host:
        command += ["--host", args.host]
    if args.user_classes:
        command += ["--user-class", args.user_classes[0]]
    if args.run_time is not None:
        command += ["--run-time", str(args.run_time)]
    return subprocess.run(command, check=False).returncode
