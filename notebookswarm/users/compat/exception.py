"""``locust.exception``: Locust's exception names, most of them ours under another roof."""

from __future__ import annotations

from notebookswarm.errors import NotebookSwarmError
from notebookswarm.users.core import InterruptTaskSet, RescheduleTask, StopUser

__all__ = [
    "CatchResponseError",
    "InterruptTaskSet",
    "LocustError",
    "MissingWaitTimeError",
    "RPCError",
    "RescheduleTask",
    "RescheduleTaskImmediately",
    "ResponseError",
    "StopTest",
    "StopUser",
]


class LocustError(NotebookSwarmError):
    """Locust's base error; raised for misuse of the compatibility layer."""


class ResponseError(Exception):
    """A request counted as failed."""


class CatchResponseError(ResponseError):
    """What a failed request hands to ``request`` listeners as ``exception`` (its text)."""


class MissingWaitTimeError(LocustError):
    """Kept for locustfiles that catch it; notebookswarm's default wait is 0 s."""


class RPCError(Exception):
    """Kept for locustfiles that catch it; notebookswarm's transport never raises it."""


class StopTest(Exception):
    """Kept for locustfiles that import it; call ``environment.runner.quit()`` instead."""


class RescheduleTaskImmediately(RescheduleTask):
    """End the task now and start the next one (our RescheduleTask, which also waits)."""
