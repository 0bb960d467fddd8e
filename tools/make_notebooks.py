"""Write notebooks/02, 03 and 04 from the cells below (outputs stay empty in git).

Run with `.venv/bin/python tools/make_notebooks.py` after editing the cells; CI executes
the notebooks themselves (tests/test_notebooks.py).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent.parent / "notebooks"


def notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    for kind, text in cells:
        text = text.strip("\n")
        nb.cells.append(
            nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
        )
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids keep regenerated notebooks diff-free
    return nb


BOTTLENECK = [
    (
        "md",
        """
# Find the bottleneck

A programming-contest site broke at its weekly peak: database latency rose, every app
worker blocked waiting for a connection, and the site fell over. This notebook replays
that story against notebookswarm's embedded demo site, whose database has a pool of 8
connections at 20 ms a query — so it cannot serve more than about 8 / 0.020 = 400
requests a second.

1. describe contestants in Python,
2. raise the load step by step and find the knee,
3. read the server's own metrics to see *why*,
4. tune (a bigger pool), run again, and prove the fix.
""",
    ),
    (
        "code",
        """
import notebookswarm as nbs
from notebookswarm.analysis import capacity, compare, degradation

target = nbs.demo.start_target(pool_size=8, query_ms=20)
target
""",
    ),
    ("md", "Contestants log in, read problems, submit now and then, and watch the leaderboard."),
    (
        "code",
        """
import random

class Contestant(nbs.FastHttpUser):
    wait_time = nbs.between(0.5, 1.5)

    def on_start(self):
        self.client.post("/login", json={"username": f"c{random.randrange(10**6)}"})

    @nbs.task(5)
    def problems(self):
        self.client.get("/problems")

    @nbs.task(3)
    def problem(self):
        self.client.get(f"/problems/{random.randint(1, 12)}", name="/problems/<id>")

    @nbs.task(1)
    def submit(self):
        self.client.post("/submit", json={"problem": random.randint(1, 12), "code": "print(42)"})

    @nbs.task(1)
    def leaderboard(self):
        self.client.get("/leaderboard")

swarm = nbs.Swarm(Contestant, host=target.url, workers=2)
swarm.dashboard()
""",
    ),
    (
        "md",
        """
## Step load: 100 to 700 users, 100 more every 4 seconds

`step_load` returns at once (the dashboard above follows it live); `wait("done")` blocks
until the last step is over.
""",
    ),
    (
        "code",
        """
swarm.step_load(start=100, step=100, every="4s", until=700)
swarm.wait("done")
before = swarm.result()
cap = capacity(before, think_time=1.0)
cap.table[["users", "throughput", "p50_ms", "p95_ms", "p99_ms", "failure_ratio", "littles_law_ok"]]
""",
    ),
    (
        "code",
        """
print(f"knee: about {int(cap.knee['users'])} users at {cap.throughput:.0f} requests/s")
cap.figure()
""",
    ),
    (
        "md",
        """
Throughput stops growing near 400 requests/s while latency climbs. Which endpoint
degraded first, and what does the server say?
""",
    ),
    ("code", "degradation(before)"),
    (
        "code",
        """
m = target.metrics()
print(f"requests waited {m['pool_wait_ms_mean']:.0f} ms on average for one of "
      f"{m['pool_size']} database connections; the query itself takes about 20 ms")
{k: m[k] for k in ("pool_size", "pool_acquired", "pool_wait_ms_mean", "pool_timeouts")}
""",
    ),
    (
        "md",
        """
Requests queued for a database connection: the pool is the bottleneck. Tune it — double
the pool — and run the same steps again.
""",
    ),
    (
        "code",
        """
target.configure(pool_size=16)
target.reset_metrics()
swarm.reset_stats()
swarm.step_load(start=100, step=100, every="4s", until=700)
swarm.wait("done")
after = swarm.result()
capacity(after, think_time=1.0).table[["users", "throughput", "p95_ms"]]
""",
    ),
    (
        "code",
        """
comparison = compare(before, after)
comparison.table[["method", "name", "rps_before", "rps_after", "p95_ms_before", "p95_ms_after",
                  "p95_ms_change"]]
""",
    ),
    ("code", "comparison.figure"),
    ("md", "Did it help? Write the proof down: one self-contained report that works offline."),
    (
        "code",
        """
after.to_html("after-tuning.html", title="The contest site after doubling the pool")
swarm.close()
target.stop()
""",
    ),
]

ANALYSIS = [
    (
        "md",
        """
# Analysis with pandas

Every number a swarm measures is a pandas DataFrame: cumulative `stats`, per-second
`history`, `errors`, `exceptions`, `workers`, and exact `percentiles` over any window.
""",
    ),
    (
        "code",
        """
import random
import notebookswarm as nbs

target = nbs.demo.start_target(pool_size=8, query_ms=10)

class Reader(nbs.HttpUser):
    wait_time = nbs.between(0.05, 0.2)

    @nbs.task(8)
    def problem(self):
        self.client.get(f"/problems/{random.randint(1, 14)}", name="/problems/<id>")

    @nbs.task(2)
    def bad_submit(self):
        self.client.post("/submit", json={"problem": "two", "code": "x"})   # a 400

    @nbs.task(1)
    def buggy(self):
        raise ValueError("a bug in the user code")

swarm = nbs.Swarm(Reader, host=target.url, workers=2)
run = swarm.run(users=40, spawn_rate=40, duration="12s")
run.stats
""",
    ),
    ("md", "Per-second history, tidy: one row per second and endpoint, plus `Aggregated`."),
    (
        "code",
        """
history = run.history
aggregated = history[history["name"] == "Aggregated"].set_index("time")
aggregated[["requests", "rps", "p95_ms", "users"]].tail()
""",
    ),
    (
        "code",
        """
(history[history["name"] != "Aggregated"]
 .set_index("time")
 .groupby("name")
 .resample("4s")["requests"].sum()
 .unstack(0))
""",
    ),
    (
        "md",
        """
Exact percentiles over any window, from the stored histograms (within 1%): the first
half of the run against the second.
""",
    ),
    (
        "code",
        """
times = history["time"]
middle = times.min() + (times.max() - times.min()) / 2
first = run.percentiles([0.5, 0.95, 0.99], end=middle)
second = run.percentiles([0.5, 0.95, 0.99], start=middle)
import pandas as pd
pd.concat({"first half": first, "second half": second}, axis=1)
""",
    ),
    ("md", "Failures grouped by endpoint and error, and exceptions raised by user code."),
    ("code", "run.errors"),
    (
        "code",
        """
exceptions = run.exceptions
print(exceptions.loc[0, "traceback"])
exceptions[["error", "count"]]
""",
    ),
    ("md", "Save a run (Parquet plus JSON metadata) and load it back: identical DataFrames."),
    (
        "code",
        """
import pandas.testing as pdt

run.save("runs/analysis")
loaded = nbs.Run.load("runs/analysis")
for name in ("stats", "history", "errors", "exceptions", "workers"):
    pdt.assert_frame_equal(getattr(run, name), getattr(loaded, name))
loaded.percentiles([0.99], by=None)
""",
    ),
    (
        "code",
        """
swarm.close()
target.stop()
""",
    ),
]

OPEN_MODEL = [
    (
        "md",
        """
# The open model: honest latencies when the server stalls

Users that wait for each response (the *closed* model) stop sending while the server
stalls, so a stall hardly shows in their percentiles — *coordinated omission*. In the
*open* model, work arrives on a schedule whatever the server does: `start(rate=...)`
runs that many task iterations a second across the swarm, each by a free user of a pool.
Every request is measured twice: from when it was sent, and from when its arrival was
due (`corrected`). Late starts and dropped arrivals are counted, never hidden.
""",
    ),
    (
        "code",
        """
import notebookswarm as nbs

target = nbs.demo.start_target(pool_size=50, query_ms=2)   # fast: only the stall hurts

class Reader(nbs.FastHttpUser):
    @nbs.task
    def problems(self):
        self.client.get("/problems")

swarm = nbs.Swarm(Reader, host=target.url, workers=2)
swarm.dashboard()
""",
    ),
    ("md", "200 arrivals a second for 10 s, with the server frozen for one second midway."),
    (
        "code",
        """
swarm.start(rate=200, max_users=10)
swarm.wait("spawned")
swarm.wait("4s")
target.stall(1.0)
swarm.wait("6s")
swarm.stop()
open_model = swarm.result()
{"arrivals, late, dropped": open_model.history[["arrivals", "late", "dropped"]].sum().tolist()}
""",
    ),
    (
        "code",
        """
import pandas as pd

pd.concat({
    "from the send": open_model.percentiles([0.5, 0.95, 0.99], by=None),
    "from the intended start": open_model.percentiles([0.5, 0.95, 0.99], by=None, corrected=True),
}, axis=1)
""",
    ),
    (
        "md",
        """
The same stall with users that wait for responses (about 200 requests a second too):
they simply stop asking while the server is frozen, and their p95 never sees it.
""",
    ),
    (
        "code",
        """
class Paced(Reader):
    wait_time = nbs.constant_pacing(0.1)

closed_swarm = nbs.Swarm(Paced, host=target.url, workers=2)
closed_swarm.start(users=20, spawn_rate=100)
closed_swarm.wait("spawned")
closed_swarm.wait("4s")
target.stall(1.0)
closed_swarm.wait("6s")
closed_swarm.stop()
closed = closed_swarm.result()
closed_swarm.close()
pd.DataFrame({
    "closed model": closed.percentiles([0.5, 0.95, 0.99], by=None).iloc[0],
    "open model, corrected": open_model.percentiles([0.5, 0.95, 0.99], by=None,
                                                    corrected=True).iloc[0],
})
""",
    ),
    (
        "code",
        """
history = open_model.history
import plotly.express as px

aggregated = history[history["name"] == "Aggregated"]
px.line(aggregated, x="time", y=["p99_ms", "p99_corrected_ms"], log_y=True,
        title="p99 per second (ms): from the send, and from the intended start")
""",
    ),
    (
        "md",
        """
## Turn the rate up and down live

`set_rate` reaches every worker within a second; the dashboard's rate slider does the
same. A shape plans it: stages ramp linearly, evaluated ten times a second.
""",
    ),
    (
        "code",
        """
swarm.start(rate=100, max_users=50)
swarm.wait("3s")
swarm.set_rate(300)
swarm.wait("3s")
swarm.shape([("4s", 500), ("4s", 100)], kind="rate", max_users=100)
swarm.wait("done")
per_second = swarm.history
per_second[per_second["name"] == "Aggregated"][["time", "arrivals", "requests", "late"]].tail(12)
""",
    ),
    (
        "code",
        """
swarm.close()
target.stop()
""",
    ),
]


def main() -> None:
    HERE.mkdir(exist_ok=True)
    nbformat.write(notebook(BOTTLENECK), HERE / "02-find-the-bottleneck.ipynb")
    nbformat.write(notebook(ANALYSIS), HERE / "03-analysis-with-pandas.ipynb")
    nbformat.write(notebook(OPEN_MODEL), HERE / "04-open-model.ipynb")


if __name__ == "__main__":
    main()
