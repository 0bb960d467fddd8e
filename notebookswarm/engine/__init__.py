"""The worker side, the only code that imports gevent: runtime, ramp, arrivals, the worker node."""
