"""notebookswarm against Locust and wrk, side by side in one run: ``make bench``.

    .venv/bin/python bench/run_bench.py --setup          # what make bench runs
    .venv/bin/python bench/run_bench.py --parts throughput,memory
    .venv/bin/python bench/run_bench.py --smoke          # tiny numbers, no nginx/wrk/Locust

Parts (each bounded in time, loopback only; see the module of each for its method):

- ``throughput`` (throughput.py): requests per generator CPU-second, wrk / Locust / ours;
- ``memory`` (memory.py): RSS per waiting user, ours and Locust's;
- ``master`` (master_scale.py): simulated workers a master serves under half a core,
  and the controller's cost per update frame;
- ``startup`` (startup.py): ``Swarm.start()`` to the first request, two local workers.

It prints the tables and the issue's targets, and writes every number to a JSON file
(``bench/results/``, gitignored). docs/performance.md holds a run of it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_http_clients
import psutil
import report
import setup_tools
import throughput
from procs import pin, reap

HERE = Path(__file__).resolve().parent
PARTS = ("throughput", "memory", "master", "startup")


@dataclass
class Preset:
    """How big each part is."""

    users: int = 50
    warmup: float = 2.0
    window: float = 8.0
    rounds: int = 3
    generators: tuple[str, ...] = tuple(throughput.GENERATORS)
    memory_ours: tuple[int, ...] = (1, 10_000, 50_000, 100_000)
    memory_locust: tuple[int, ...] = (1, 10_000, 50_000)
    memory_unparked: tuple[int, ...] = (1, 10_000, 50_000)
    memory_rate: float = 10_000.0
    memory_timeout: float = 120.0
    master_levels: tuple[int, ...] = (25, 50, 100, 150, 200, 300, 400, 600)
    master_endpoints: int = 200
    #: Distinct histogram buckets per endpoint in one report: a busy worker (~25 requests
    #: per endpoint per second) and a light one (~5).
    master_buckets: tuple[int, ...] = (20, 5)
    master_window: float = 5.0
    master_settle: float = 2.0
    startup_repeats: int = 3
    nginx: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


SMOKE = Preset(
    users=4,
    warmup=0.3,
    window=1.0,
    rounds=1,
    generators=("ours-fast", "ours-http"),
    memory_ours=(1, 300),
    memory_locust=(),
    memory_unparked=(1, 300),
    memory_rate=1000.0,
    memory_timeout=20.0,
    master_levels=(2, 4),
    master_endpoints=10,
    master_buckets=(3,),
    master_window=1.0,
    master_settle=0.3,
    startup_repeats=1,
    nginx=False,
)


def machine() -> dict[str, Any]:
    """Describe the machine: cores, CPU model, memory, OS, Python."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_before": [round(x, 2) for x in load],
    }


# --- running the parts --------------------------------------------------------------


def run_throughput(preset: Preset, port: int, locust_python: Path | None) -> dict[str, Any]:
    """Interleaved rounds of every generator; per-run numbers and per-round ratios."""
    settings = throughput.Settings(
        generators=preset.generators,
        users=preset.users,
        warmup=preset.warmup,
        window=preset.window,
        rounds=preset.rounds,
        locust_python=locust_python,
    )
    runs: dict[str, list[dict[str, Any]]] = {g: [] for g in settings.generators}
    for r in range(settings.rounds):
        for name in settings.generators:
            result = throughput.measure(name, settings, port)
            runs[name].append(result)
            print(
                f"  round {r + 1}/{settings.rounds} {name:<12} {result['requests']:>8} req "
                f"{result['cpu_s']:6.2f} CPU-s {result['rate']:>9,.0f} req/CPU-s",
                flush=True,
            )
    return {
        "users": settings.users,
        "warmup_s": settings.warmup,
        "window_s": settings.window,
        "rounds": settings.rounds,
        "runs": runs,
        "ratios": ratios(runs),
    }


def ratios(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per generator, its rate over Locust's with the same client kind, round by round."""
    out: dict[str, dict[str, Any]] = {}
    for name, results in runs.items():
        reference = f"locust-{throughput.GENERATORS[name][1]}"
        if reference == name or reference not in runs:
            continue
        per_round = [
            mine["rate"] / theirs["rate"]
            for mine, theirs in zip(results, runs[reference], strict=False)
            if theirs["rate"] > 0
        ]
        if per_round:
            out[name] = {
                "vs": reference,
                "median": statistics.median(per_round),
                "min": min(per_round),
                "max": max(per_round),
            }
    return out


def run_memory(preset: Preset, url: str, locust_python: Path | None) -> dict[str, Any]:
    """RSS per waiting user, ours and (with a Locust venv) Locust's."""
    import memory

    out: dict[str, Any] = {}
    if preset.memory_ours:
        out["ours"] = memory.ours(
            url, preset.memory_ours, preset.memory_rate, preset.memory_timeout
        )
    if preset.memory_unparked:
        out["ours_unparked"] = memory.ours(
            url, preset.memory_unparked, preset.memory_rate, preset.memory_timeout, parked=False
        )
    if preset.memory_locust and locust_python is not None:
        out["locust"] = memory.locust(
            locust_python, url, preset.memory_locust, preset.memory_rate, preset.memory_timeout
        )
    return out


def run_master(preset: Preset) -> dict[str, Any]:
    """Simulated workers against a real master, one series per histogram density."""
    import master_scale

    series = [
        master_scale.run(
            preset.master_levels,
            endpoints=preset.master_endpoints,
            buckets=buckets,
            window=preset.master_window,
            settle=preset.master_settle,
            keep_frames_at=min(200, preset.master_levels[-1]),
        )
        for buckets in preset.master_buckets
    ]
    return {"series": series}


def run_startup(preset: Preset) -> dict[str, Any]:
    """``Swarm.start()`` to the first request with two local workers."""
    import startup

    return startup.run(repeats=preset.startup_repeats, workers=2)


def run_parts(preset: Preset, parts: list[str], locust_python: Path | None) -> dict[str, Any]:
    """Start the target, run the parts asked for, stop the target; return every number."""
    results: dict[str, Any] = {"machine": machine(), "date": _now(), "parts": {}}
    with tempfile.TemporaryDirectory(prefix="nbs-bench-target-") as tmp:
        target, port, label = bench_http_clients.start_target(Path(tmp), want_nginx=preset.nginx)
        if not preset.nginx:
            label = "the fallback gevent server of bench_http_clients.py (no nginx)"
        results["target"] = label
        try:
            pin([target.pid], throughput.TARGET_CPU)
            url = f"http://127.0.0.1:{port}"
            for part in parts:
                print(f"bench: {part}", flush=True)
                began = time.monotonic()
                if part == "throughput":
                    got = run_throughput(preset, port, locust_python)
                elif part == "memory":
                    got = run_memory(preset, url, locust_python)
                elif part == "master":
                    got = run_master(preset)
                else:
                    got = run_startup(preset)
                got["elapsed_s"] = time.monotonic() - began
                results["parts"][part] = got
        finally:
            reap(target)
    results["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", action="store_true", help="install nginx, wrk and Locust")
    parser.add_argument("--smoke", action="store_true", help="tiny numbers, no external tools")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument("--locust-python", type=Path, help="python of a venv with Locust")
    parser.add_argument("--locust-version", default=setup_tools.DEFAULT_LOCUST)
    parser.add_argument(
        "--generators", help=f"throughput generators, from {','.join(throughput.GENERATORS)}"
    )
    parser.add_argument("--rounds", type=int, help="throughput rounds (default 3)")
    parser.add_argument("--window", type=float, help="throughput window, s (default 8)")
    parser.add_argument("--json", type=Path, help="where to write the numbers")
    args = parser.parse_args(argv)

    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}: choose from {list(PARTS)}")
    preset = SMOKE if args.smoke else Preset()
    if args.generators:
        chosen = tuple(g for g in args.generators.split(",") if g)
        if set(chosen) - set(throughput.GENERATORS):
            parser.error(f"unknown generator(s) in {args.generators!r}")
        preset.generators = chosen
    if args.rounds:
        preset.rounds = args.rounds
    if args.window:
        preset.window = args.window
    locust_python = args.locust_python
    if args.setup and not args.smoke:
        setup_tools.ensure_tools()
        locust_python = setup_tools.ensure_locust(args.locust_version)
    if locust_python is None and not args.smoke:
        default = setup_tools.locust_python()
        locust_python = default if default.exists() else None
    if locust_python is None:
        preset.generators = tuple(g for g in preset.generators if not g.startswith("locust"))
    if setup_tools.find_nginx() is None:
        preset.nginx = False
    if not preset.nginx or shutil.which("wrk") is None:  # wrk only against nginx
        preset.generators = tuple(g for g in preset.generators if g != "wrk")

    began = time.monotonic()
    results = run_parts(preset, parts, locust_python)
    results["elapsed_s"] = time.monotonic() - began
    results["preset"] = "smoke" if args.smoke else "full"
    if locust_python is not None:
        results["locust"] = setup_tools.installed_locust(locust_python)
    path = args.json or HERE / "results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str))
    print()
    print(report.render(results))
    print(f"\nnumbers: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
