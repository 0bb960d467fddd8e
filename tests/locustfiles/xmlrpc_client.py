"""A custom XML-RPC client, as in Locust's documentation, and the same with measure()."""

import time
from xmlrpc.client import Fault, ServerProxy

from locust import User, constant, task


class XmlRpcClient(ServerProxy):
    """Wraps every call in a request event, like Locust's documented example."""

    def __init__(self, host, request_event):
        super().__init__(host)
        self._request_event = request_event

    def __getattr__(self, name):
        func = ServerProxy.__getattr__(self, name)

        def wrapper(*args, **kwargs):
            request_meta = {
                "request_type": "xmlrpc",
                "name": name,
                "start_time": time.time(),
                "response_length": 0,
                "response": None,
                "context": {},
                "exception": None,
            }
            start_perf_counter = time.perf_counter()
            try:
                request_meta["response"] = func(*args, **kwargs)
            except Fault as e:
                request_meta["exception"] = e
            request_meta["response_time"] = (time.perf_counter() - start_perf_counter) * 1000
            self._request_event.fire(**request_meta)
            return request_meta["response"]

        return wrapper


class XmlRpcUser(User):
    abstract = True

    def __init__(self, environment):
        super().__init__(environment)
        self.client = XmlRpcClient(self.host, request_event=environment.events.request)


class EventUser(XmlRpcUser):
    wait_time = constant(0.001)

    @task(3)
    def get_time(self):
        self.client.get_time()

    @task
    def get_random_number(self):
        self.client.get_random_number(0, 100)

    @task
    def broken(self):
        self.client.broken()


class MeasureUser(User):
    wait_time = constant(0.001)

    def on_start(self):
        self.proxy = ServerProxy(self.host)

    @task
    def get_time(self):
        with self.measure("xmlrpc", "measured_time") as m:
            m.response_length = len(str(self.proxy.get_time()))

    @task
    def broken(self):
        with self.measure("xmlrpc", "measured_broken"):
            self.proxy.broken()
