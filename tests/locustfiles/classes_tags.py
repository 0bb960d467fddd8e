"""Two user classes, selected by name; tagged tasks; a lazy `import locust` at task time."""

from locust import HttpUser, constant, tag, task


class Reader(HttpUser):
    wait_time = constant(0.001)

    @tag("read")
    @task
    def read(self):
        self.client.get("/read")

    @tag("write")
    @task
    def write(self):
        self.client.post("/write")

    @task
    def untagged(self):
        import locust.runners  # resolved in the worker at task time too

        assert isinstance(self.environment.runner, locust.runners.WorkerRunner)
        self.client.get("/untagged")


class Writer(HttpUser):
    wait_time = constant(0.001)

    @task
    def write(self):
        self.client.post("/writer")
