"""Contestants of the demo contest site: log in, read problems, submit, watch the board."""

from __future__ import annotations

import random

from notebookswarm import FastHttpUser, between, task


class Contestant(FastHttpUser):
    """Reads problems most of the time, submits now and then, checks the leaderboard."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.name = f"contestant-{random.randrange(1_000_000)}"
        self.client.post("/login", json={"username": self.name, "password": "secret"})

    @task(5)
    def problems(self) -> None:
        self.client.get("/problems")

    @task(3)
    def problem(self) -> None:
        self.client.get(f"/problems/{random.randint(1, 12)}", name="/problems/<id>")

    @task(1)
    def submit(self) -> None:
        problem = random.randint(1, 12)
        self.client.post("/submit", json={"problem": problem, "code": "print(42)"})

    @task(1)
    def leaderboard(self) -> None:
        self.client.get("/leaderboard")
