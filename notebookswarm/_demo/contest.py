"""The contest behind the demo site: problems, contestants, submissions, a scoreboard.

Pure data and JSON: it knows nothing of HTTP or of the simulated database. Each method
returns the response body of one endpoint, so the server can cache it as bytes. State
is bounded: per-problem counters and at most ``MAX_CONTESTANTS`` scoreboard entries,
however long a load test runs and however many user names it invents.
"""

from __future__ import annotations

import heapq
import json
import random
import zlib
from dataclasses import dataclass
from typing import Final

MAX_CONTESTANTS: Final = 2000
LEADERBOARD_ROWS: Final = 20
VERDICTS: Final = (
    "accepted",
    "wrong answer",
    "accepted",
    "time limit exceeded",
    "accepted",
    "runtime error",
    "accepted",
    "compilation error",
)

_TITLES: Final = (
    ("Sum of Two Numbers", 800, ["implementation"]),
    ("Balanced Brackets", 1000, ["strings", "stacks"]),
    ("Shortest Path on a Grid", 1300, ["graphs", "bfs"]),
    ("Knapsack with a Twist", 1500, ["dp"]),
    ("Counting Inversions", 1600, ["divide and conquer"]),
    ("Lazy Segment Tree", 1900, ["data structures"]),
    ("Minimum Spanning Forest", 1700, ["graphs", "dsu"]),
    ("Palindromic Substrings", 1800, ["strings", "hashing"]),
    ("Coin Change Queries", 2000, ["dp", "math"]),
    ("Convex Hull Trick", 2300, ["geometry", "dp"]),
    ("Max Flow in a Contest Network", 2400, ["flows"]),
    ("The Leaderboard Freeze", 2600, ["binary search", "greedy"]),
)
_FIRST: Final = ("swift", "quiet", "brave", "lucky", "clever", "sleepy", "rapid", "tiny")
_SECOND: Final = ("otter", "falcon", "panda", "lynx", "heron", "badger", "koala", "ibis")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class Problem:
    """One contest problem and how it has gone so far."""

    id: int
    title: str
    difficulty: int
    tags: list[str]
    attempts: int = 0
    solved: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "difficulty": self.difficulty,
            "tags": self.tags,
            "attempts": self.attempts,
            "solved": self.solved,
        }


@dataclass
class Contestant:
    """One scoreboard row: problems solved and penalty minutes."""

    name: str
    solved: int = 0
    penalty: int = 0


class Contest:
    """The contest's state and the JSON body of each endpoint."""

    def __init__(self, seed: int = 6) -> None:
        rng = random.Random(seed)
        self.problems = {
            i: Problem(i, title, difficulty, list(tags))
            for i, (title, difficulty, tags) in enumerate(_TITLES, start=1)
        }
        self.contestants: dict[str, Contestant] = {}
        for first in _FIRST:
            for second in _SECOND:
                solved = rng.randint(0, 8)
                name = f"{first}_{second}"
                self.contestants[name] = Contestant(name, solved, solved * rng.randint(9, 60))
        self.submissions = 0

    def problem_list(self) -> bytes:
        """``GET /problems``: every problem with its attempts and solves."""
        return _json({"problems": [p.summary() for p in self.problems.values()]})

    def problem_page(self, problem_id: int) -> bytes | None:
        """``GET /problems/<id>``: one problem with its statement, or None if unknown."""
        problem = self.problems.get(problem_id)
        if problem is None:
            return None
        page = problem.summary()
        page["time_limit_ms"] = 1000 + 500 * (problem.difficulty // 800)
        page["memory_limit_mb"] = 256
        page["statement"] = (
            f"{problem.title}. You are given n integers (1 <= n <= 2*10^5). "
            "Print the answer modulo 998244353. Read the input carefully: "
            "the first line holds n, the second line holds the numbers."
        )
        page["samples"] = [{"input": "3\n1 2 3\n", "output": "6\n"}]
        return _json(page)

    def login(self, username: str) -> bytes:
        """``POST /login``: a session for ``username``."""
        token = f"{zlib.crc32(username.encode()):08x}"
        return _json({"username": username, "token": token})

    def submit(self, username: str, problem_id: int, code: str) -> bytes | None:
        """``POST /submit``: judge ``code`` (deterministically) and score it; None if the
        problem is unknown."""
        problem = self.problems.get(problem_id)
        if problem is None:
            return None
        self.submissions += 1
        verdict = VERDICTS[zlib.crc32(f"{problem_id}:{code}".encode()) % len(VERDICTS)]
        problem.attempts += 1
        if verdict == "accepted":
            problem.solved += 1
            row = self.contestants.get(username)
            if row is None and len(self.contestants) < MAX_CONTESTANTS:
                row = self.contestants[username] = Contestant(username)
            if row is not None:
                row.solved += 1
                row.penalty += 10 + self.submissions % 50
        return _json(
            {
                "submission": self.submissions,
                "problem": problem_id,
                "username": username,
                "verdict": verdict,
            }
        )

    def leaderboard(self) -> bytes:
        """``GET /leaderboard``: the top rows by problems solved, then penalty."""
        top = heapq.nsmallest(
            LEADERBOARD_ROWS, self.contestants.values(), key=lambda c: (-c.solved, c.penalty)
        )
        rows = [
            {"rank": rank, "name": c.name, "solved": c.solved, "penalty": c.penalty}
            for rank, c in enumerate(top, start=1)
        ]
        return _json({"contestants": len(self.contestants), "rows": rows})
