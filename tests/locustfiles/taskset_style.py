"""A locustfile in the style of Locust's documentation: TaskSets, interrupt(), events."""

from locust import HttpUser, TaskSet, between, events, tag, task
from locust.runners import MasterRunner, WorkerRunner

SEEN = {"requests": 0}


@events.request.add_listener
def on_request(request_type, name, response_time, response_length, exception, **kwargs):
    SEEN["requests"] += 1


@events.report_to_master.add_listener
def on_report_to_master(client_id, data):
    data["requests"] = SEEN["requests"]
    SEEN["requests"] = 0


@events.init.add_listener
def on_init(environment, **kwargs):
    environment.side = "master" if isinstance(environment.runner, MasterRunner) else "worker"
    assert isinstance(environment.runner, MasterRunner | WorkerRunner)


def index(user):
    user.client.get("/")


def about(user):
    user.client.get("/about/")


class ForumSection(TaskSet):
    @task(3)
    def view_thread(self):
        self.client.get("/forum/thread")

    @task(1)
    def stop(self):
        self.client.get("/forum/leave")
        self.interrupt()


class UserBehavior(TaskSet):
    tasks = {index: 2, about: 1, ForumSection: 1}

    @tag("profile")
    @task
    def profile(self):
        assert self.environment.events is events
        self.client.get("/profile")


class WebsiteUser(HttpUser):
    tasks = [UserBehavior]
    wait_time = between(0.001, 0.002)
