"""FastHttpUser with rest(), as Locust's documentation shows it."""

from locust import FastHttpUser, constant, task


class RestUser(FastHttpUser):
    wait_time = constant(0.001)

    @task
    def good(self):
        with self.rest("GET", "/api/ok") as resp:
            assert resp.js["status"] == "ok", "bad status,"

    @task
    def wrong_value(self):
        with self.rest("GET", "/api/other") as resp:
            if resp.js["status"] != "ok":
                resp.failure(f"unexpected status {resp.js['status']}")

    @task
    def not_json(self):
        with self.rest("POST", "/api/text", json={"a": 1}):
            pass
