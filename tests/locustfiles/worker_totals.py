"""report_to_master / worker_report as Locust's documentation shows them: every worker sends
what it counted with each report; the controller adds it up and says so at test_stop."""

import json
import os

from locust import HttpUser, constant, events, task
from locust.runners import MasterRunner

SENT = {"requests": 0}
TOTALS = {"requests": 0, "reports": 0}


@events.request.add_listener
def count(request_type, name, response_time, response_length, exception, **kwargs):
    SENT["requests"] += 1


@events.report_to_master.add_listener
def send(client_id, data):
    data["requests"] = SENT["requests"]
    SENT["requests"] = 0


@events.worker_report.add_listener
def receive(client_id, data):
    TOTALS["requests"] += data.get("requests", 0)
    TOTALS["reports"] += 1


@events.test_stop.add_listener
def write(environment, **kwargs):
    if isinstance(environment.runner, MasterRunner):
        with open(os.environ["NBS_TOTALS_FILE"], "w") as out:
            json.dump({**TOTALS, "pid": os.getpid()}, out)


class Reader(HttpUser):
    wait_time = constant(0.01)

    @task
    def index(self):
        self.client.get("/")
