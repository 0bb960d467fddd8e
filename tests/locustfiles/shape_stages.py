"""A LoadTestShape with stages, as in Locust's documentation."""

from locust import HttpUser, LoadTestShape, constant, task


class Visitor(HttpUser):
    wait_time = constant(0.01)

    @task
    def index(self):
        self.client.get("/")


class Admin(HttpUser):
    wait_time = constant(0.01)

    @task
    def admin(self):
        self.client.get("/admin")


class StagesShape(LoadTestShape):
    stages = [
        {"duration": 2, "users": 2, "spawn_rate": 10},
        {"duration": 4, "users": 4, "spawn_rate": 10, "user_classes": [Admin]},
        {"duration": 5, "users": 1, "spawn_rate": 5},
    ]

    def tick(self):
        run_time = self.get_run_time()
        for stage in self.stages:
            if run_time < stage["duration"]:
                if "user_classes" in stage:
                    return stage["users"], stage["spawn_rate"], stage["user_classes"]
                return stage["users"], stage["spawn_rate"]
        return None
