"""Render the benchmark's numbers as the tables docs/performance.md shows, and the targets."""

from __future__ import annotations

import statistics
from typing import Any

import throughput

#: The issue's targets (ratios from one run on a 2-vCPU machine).
FAST_RATIO, FAST_AIM = 2.0, 3.0
HTTP_RATIO = 1.2
KB_PER_USER = 8.0
ONE_WORKER_USERS = 100_000
MASTER_WORKERS = 200


def _median(runs: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def throughput_table(part: dict[str, Any]) -> str:
    """Requests, CPU, requests per CPU-second, ratio to Locust, reported latencies."""
    runs: dict[str, list[dict[str, Any]]] = part["runs"]
    ratios: dict[str, dict[str, Any]] = part["ratios"]
    lines = [
        f"{part['users']} users (wrk: connections), no wait; per run a {part['window_s']:g} s "
        f"window after a {part['warmup_s']:g} s warm-up; {part['rounds']} interleaved round(s),"
        " medians; the ratio is taken round by round",
        "",
        "| generator | requests | CPU-s | req/CPU-s | × Locust (same client) | req/s | "
        "p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, results in runs.items():
        ratio = ratios.get(name)
        if ratio is not None:
            shown = f"{ratio['median']:.2f}× ({ratio['min']:.2f}–{ratio['max']:.2f})"
        elif name.startswith("locust"):
            shown = "1.00×"
        else:
            shown = "–"
        lines.append(
            f"| {throughput.LABELS[name]} | {_median(results, 'requests'):,.0f} | "
            f"{_median(results, 'cpu_s'):.2f} | {_median(results, 'rate'):,.0f} | {shown} | "
            f"{_median(results, 'rps'):,.0f} | {_median(results, 'p50_ms'):.2f} | "
            f"{_median(results, 'p99_ms'):.2f} |"
        )
    return "\n".join(lines)


def memory_table(part: dict[str, Any]) -> str:
    """RSS and RSS per user at each step: ours parked, ours in greenlets, Locust's."""
    sides = [
        {s["users"]: s for s in part.get(key, {}).get("steps", [])}
        for key in ("ours", "ours_unparked", "locust")
    ]
    lines = [
        "| waiting users | notebookswarm RSS MB | KB/user | notebookswarm, `park_after = None`"
        " RSS MB | KB/user | Locust RSS MB | KB/user |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for users in sorted(set().union(*sides)):
        cells = [f"{users:,}"]
        for side in sides:
            step = side.get(users)
            if step is None:
                cells += ["–", "–"]
            else:
                per = step.get("kb_per_user")
                cells += [f"{step['rss_bytes'] / 2**20:,.0f}", f"{per:.1f}" if per else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    if "stop_s" in part.get("ours", {}):
        top = max(sides[0]) if sides[0] else 0
        lines.append("")
        lines.append(f"notebookswarm stopped {top:,} users in {part['ours']['stop_s']:.1f} s.")
    return "\n".join(lines)


def master_table(part: dict[str, Any]) -> str:
    """The master's CPU at each number of simulated workers, and the controller's cost."""
    series = part["series"]
    first = series[0]
    lines = [
        f"{first['endpoints']} endpoints per report, 1 report + 1 heartbeat per worker per "
        f"second; master CPU over a {first['window_s']:g} s window; histogram buckets per "
        "endpoint per report as given",
        "",
        "| simulated workers | "
        + " | ".join(f"master CPU %, ~{s['buckets']} buckets" for s in series)
        + " |",
        "|---:|" + "---:|" * len(series),
    ]
    levels = sorted({step["workers"] for s in series for step in s["steps"]})
    for n in levels:
        cells = []
        for s in series:
            step = next((x for x in s["steps"] if x["workers"] == n), None)
            cells.append(f"{step['master_cpu_percent']:.0f}" if step else "–")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines.append("")
    for s in series:
        lines.append(
            f"~{s['buckets']} buckets: most workers measured under {s['limit_percent']:g}% of "
            f"a core: {s['max_workers_under_limit']}."
        )
    for s in series:
        ingest = s.get("ingest")
        if ingest:
            lines.append(
                f"Controller, per update frame (~{s['buckets']} buckets; "
                f"{ingest['endpoints']:.0f} endpoints merged from {ingest['workers']} workers, "
                f"{ingest['frame_bytes'] / 1024:,.0f} KB): decode {ingest['decode_ms']:.1f} ms, "
                f"RunData.ingest {ingest['ingest_ms']:.1f} ms."
            )
    return "\n".join(lines)


def startup_line(part: dict[str, Any]) -> str:
    """``Swarm.start()`` to the first request."""
    runs = ", ".join(f"{ms:.0f}" for ms in part["first_request_ms_all"])
    return (
        f"Swarm.start() to the first request with {part['workers']} local workers: "
        f"median {part['first_request_ms']:.0f} ms (runs: {runs} ms); building the swarm "
        f"(master and workers started and joined) took {part['ready_s']:.1f} s before that."
    )


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Each target of the issue: what it asks, what was measured, met or not (None: not run)."""
    parts = results["parts"]
    out: list[tuple[str, str, bool | None]] = []
    ratios = parts.get("throughput", {}).get("ratios", {})
    fast, http = ratios.get("ours-fast"), ratios.get("ours-http")
    out.append(
        (
            f"FastHttpUser ≥ {FAST_RATIO:g}× Locust FastHttpUser (aim {FAST_AIM:g}×)",
            f"{fast['median']:.2f}×" if fast else "not run",
            fast["median"] >= FAST_RATIO if fast else None,
        )
    )
    out.append(
        (
            f"HttpUser ≥ {HTTP_RATIO:g}× Locust HttpUser",
            f"{http['median']:.2f}×" if http else "not run",
            http["median"] >= HTTP_RATIO if http else None,
        )
    )
    steps = parts.get("memory", {}).get("ours", {}).get("steps", [])
    per_user = [s["kb_per_user"] for s in steps if s.get("kb_per_user")]
    worst = max(per_user) if per_user else None
    kept = parts.get("memory", {}).get("ours_unparked", {}).get("steps", [])
    kept_worst = max((s["kb_per_user"] for s in kept if s.get("kb_per_user")), default=None)
    aside = f"; {kept_worst:.1f} KB with `park_after = None`" if kept_worst else ""
    out.append(
        (
            f"≤ {KB_PER_USER:g} KB RSS per waiting user",
            f"{worst:.1f} KB (worst step{aside})" if worst else "not run",
            worst <= KB_PER_USER if worst else None,
        )
    )
    top = max((s["users"] for s in steps), default=0)
    out.append(
        (
            f"{ONE_WORKER_USERS:,} waiting users on one worker",
            f"{top:,} users" if steps else "not run",
            top >= ONE_WORKER_USERS if steps else None,
        )
    )
    master = parts.get("master")
    best = master["series"][0]["max_workers_under_limit"] if master else None
    out.append(
        (
            f"master: ≥ {MASTER_WORKERS} workers × 200 endpoints at 1 Hz under 50% of a core",
            f"{best} workers" if master else "not run",
            best >= MASTER_WORKERS if best is not None else None,
        )
    )
    return out


def render(results: dict[str, Any]) -> str:
    """Everything as markdown: the machine, each part's table, the targets."""
    m = results["machine"]
    parts = results["parts"]
    out = [
        f"# notebookswarm bench, {results['date']} ({results.get('preset', 'full')})",
        "",
        f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}; load average before/after {m['load_before']}/"
        f"{m.get('load_after')}",
        f"target: {results.get('target')}; Locust {results.get('locust') or 'not installed'}",
    ]
    if "throughput" in parts:
        out += [
            "",
            "## Requests per generator CPU-second",
            "",
            throughput_table(parts["throughput"]),
        ]
    if "memory" in parts:
        out += ["", "## Memory per waiting user", "", memory_table(parts["memory"])]
    if "master" in parts:
        out += ["", "## Master scale", "", master_table(parts["master"])]
    if "startup" in parts:
        out += ["", "## Start", "", startup_line(parts["startup"])]
    if results.get("preset") == "smoke":
        out += ["", "(a smoke run: too small to judge the targets)"]
        out.append(f"whole run: {results.get('elapsed_s', 0):.0f} s")
        return "\n".join(out)
    out += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for what, measured, met in targets(results):
        out.append(f"| {what} | {measured} | {'–' if met is None else 'yes' if met else 'no'} |")
    out.append("")
    out.append(f"whole run: {results.get('elapsed_s', 0):.0f} s")
    return "\n".join(out)
