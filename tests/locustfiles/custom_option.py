"""A locustfile with its own command-line option, as Locust's documentation shows it."""

import json
import os

from locust import HttpUser, constant, events, task
from locust.runners import MasterRunner


@events.init_command_line_parser.add_listener
def options(parser):
    parser.add_argument("--page", default="/", help="the page each user reads")


@events.test_stop.add_listener
def write(environment, **kwargs):
    if isinstance(environment.runner, MasterRunner):
        with open(os.environ["NBS_TOTALS_FILE"], "w") as out:
            json.dump({"page": environment.parsed_options.page}, out)


class Reader(HttpUser):
    wait_time = constant(0.05)

    @task
    def read(self):
        self.client.get(self.environment.parsed_options.page)
