"""Record any protocol's request with a ``with`` block: :func:`measure` (``User.measure``).

::

    with self.measure("xmlrpc", "get_time") as m:
        m.response_length = len(self.proxy.get_time())

The block is timed with ``perf_counter_ns`` and recorded as one request under
``(request_type, name)`` when it ends: a success; or a failure whose error is the text of
the exception the block raised (which then goes no further, as a failed HTTP request
never raises into a task) or the text given to ``m.failure(...)``. ``StopUser``,
``RescheduleTask`` and ``InterruptTaskSet`` raised inside record the request as a success
and keep their meaning. ``request`` listeners hear about it like any other request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from notebookswarm.stats.recorder import Recorder


class Measurement:
    """One request being measured: set ``response_length``, or mark it with ``failure()``."""

    __slots__ = ("error", "name", "request_type", "response_length")

    def __init__(self, request_type: str, name: str) -> None:
        self.request_type = request_type
        self.name = name
        self.response_length = 0
        self.error: str | None = None

    def failure(self, reason: str | BaseException) -> None:
        """Count this request as failed with ``reason`` as its error."""
        if isinstance(reason, BaseException):
            reason = f"{type(reason).__name__}: {reason}"
        self.error = str(reason)

    def success(self) -> None:
        """Count this request as a success (undoing an earlier ``failure``)."""
        self.error = None


@contextmanager
def measure(
    recorder: Recorder,
    request_type: str,
    name: str,
    passthrough: tuple[type[BaseException], ...] = (),
) -> Iterator[Measurement]:
    """Time the block and record it as one request; see the module docstring.

    Exceptions of the ``passthrough`` types (the user API's control flow) are raised on.
    """
    measurement = Measurement(request_type, name)
    start = time.perf_counter_ns()
    try:
        yield measurement
    except passthrough:
        _record(recorder, measurement, start)
        raise
    except Exception as exc:
        measurement.failure(exc)
    _record(recorder, measurement, start)


def _record(recorder: Recorder, measurement: Measurement, start: int) -> None:
    recorder.record_request(
        measurement.request_type,
        measurement.name,
        time.perf_counter_ns() - start,
        int(measurement.response_length or 0),
        measurement.error,
    )
