"""What every HTTP client of a user shares: the default timeout, error texts, URL joining.

Both transports (:mod:`notebookswarm._http.fastclient` and requests' session in
:mod:`notebookswarm.users.http`) describe failures the same way, so the statistics of an
``HttpUser`` and a ``FastHttpUser`` read alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any

#: Seconds a request may take before it fails with a timeout. requests has no default,
#: and a user stuck forever on a stalled target would hide that stall from the stats.
DEFAULT_TIMEOUT = 60.0
#: The error of a request that was still waiting for its answer when its user was stopped
#: for good, past the runtime's ``stop_timeout``.
CUT_AT_STOP = "stopped: still running at stop_timeout"
#: A response head of this many lines or more is refused, as http.client (and so urllib3)
#: refuses it: at most 99 header fields, the empty line that ends them counted as the 100th.
MAX_HEADERS = 100


class InFlight:
    """The requests a client has sent and not finished: a stop that cuts them counts them.

    A client calls :meth:`begin` before it sends and :meth:`end` once the answer is read
    (or the request failed and is recorded). A request cut short by the runtime's kill
    (``GreenletExit``) never reaches :meth:`end`: the runtime then records it with
    :meth:`cut`, once, after the user's greenlet has ended.
    """

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open: list[tuple[str, str, int]] = []

    def begin(self, method: str, name: str, start_ns: int) -> tuple[str, str, int]:
        """Note a request about to be sent; return the token to pass to :meth:`end`."""
        entry = (method, name, start_ns)
        self.open.append(entry)
        return entry

    def end(self, entry: tuple[str, str, int]) -> None:
        """The request is finished (answered or failed) and recorded by its client."""
        entries = self.open
        if entries and entries[-1] is entry:
            entries.pop()
        elif entry in entries:  # not there: cut() counted it, user code caught the kill
            entries.remove(entry)

    def cut(self, recorder: Any, error: str = CUT_AT_STOP) -> int:
        """Record every open request as a failure with ``error``; return how many there were."""
        now = time.perf_counter_ns()
        entries, self.open = self.open, []
        for method, name, start in entries:
            recorder.record_request(method, name, max(0, now - start), 0, error)
        return len(entries)


def describe_exception(exc: BaseException) -> str:
    """Return "Type: message" of the innermost cause, e.g. the ConnectionRefusedError."""
    seen: set[int] = set()
    inner = exc
    while id(inner) not in seen:
        seen.add(id(inner))
        reason = getattr(inner, "reason", None)
        nxt = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
        if nxt is None and isinstance(reason, BaseException):
            nxt = reason
        if nxt is None and inner.args and isinstance(inner.args[0], BaseException):
            nxt = inner.args[0]
        if nxt is None:
            break
        inner = nxt
    return f"{type(inner).__name__}: {inner}"


def describe_status(status: int, reason: str | None = None) -> str | None:
    """Return "HTTP 503 Service Unavailable" for a 4xx/5xx status, else None."""
    if status < 400:
        return None
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    return f"HTTP {status} {reason}".rstrip()


def join_url(base_url: str, url: str) -> str:
    """Return ``url`` if absolute, else ``base_url`` and ``url`` joined by exactly one slash."""
    if "://" in url:
        return url
    if not url:
        return base_url
    if url.startswith("/"):
        return base_url.rstrip("/") + url
    return base_url.rstrip("/") + "/" + url


class CatchResponse:
    """The response of a ``catch_response=True`` request: mark it, then leave the block.

    Attribute access falls through to the real response (``status_code``, ``text``,
    ``json()``...). Unmarked, it counts as the status says. Leaving the block records it
    exactly once; an exception inside the block propagates, and the request is recorded
    as failed with that exception's text.
    """

    def __init__(self, response: Any, error: str | None, record: Callable[[str | None], None]):
        self._response = response
        self._error = error
        self._record = record
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def __enter__(self) -> CatchResponse:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        if exc is not None and isinstance(exc, Exception):
            self._error = f"{type(exc).__name__}: {exc}"
        self._done = True
        self._record(self._error)

    def success(self) -> None:
        """Count this request as a success, whatever its status."""
        self._error = None

    def failure(self, message: str | BaseException) -> None:
        """Count this request as a failure with ``message`` as its error."""
        if isinstance(message, BaseException):
            message = f"{type(message).__name__}: {message}"
        self._error = str(message)
