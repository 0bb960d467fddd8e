"""Locust's client signatures over ours: ``HttpSession(base_url, request_event, user)``,
``FastHttpSession(environment, base_url, user)`` and ``FastHttpUser.rest()``.

A session a locustfile builds itself records where its user records (the user's
recorder, which also tells ``request`` listeners); given only a ``request_event``, it
fires that event for every request, as Locust's sessions do.
"""

from __future__ import annotations

from typing import Any

from notebookswarm._http.common import DEFAULT_TIMEOUT, CatchResponse
from notebookswarm.users.compat.events import RequestHook
from notebookswarm.users.compat.exception import CatchResponseError, LocustError
from notebookswarm.users.http import HttpSession as _OurHttpSession
from notebookswarm.users.rest import RestResponseContextManager, rest

__all__ = [
    "HttpSession",
    "ResponseContextManager",
    "RestResponseContextManager",
    "fast_http_session",
    "recorder_for",
    "rest",
]

#: Locust's name for the object a ``catch_response=True`` request returns.
ResponseContextManager = CatchResponse


class _EventRecorder:
    """Records by firing a ``request`` event (Locust's ``request_event=`` argument)."""

    def __init__(self, event: Any) -> None:
        self.event = event

    def record_request(
        self, method: str, name: str, latency_ns: int, nbytes: int, error: str | None
    ) -> None:
        self.event.fire(
            request_type=method,
            name=name,
            response_time=latency_ns / 1e6,
            response_length=nbytes,
            exception=None if error is None else CatchResponseError(error),
            context={},
            response=None,
        )

    def record_exception(self, exc: BaseException) -> None:
        raise exc


def recorder_for(request_event: Any, user: Any) -> Any:
    """Return where a session built by user code should record."""
    context = getattr(user, "context", None)
    recorder = getattr(context, "recorder", None)
    if recorder is not None:
        return recorder  # the worker's recorder: it fires request listeners itself
    if isinstance(request_event, RequestHook) or callable(getattr(request_event, "fire", None)):
        return _EventRecorder(request_event)
    raise LocustError(
        "HttpSession needs user=self (inside a User) or request_event=environment.events.request"
    )


class HttpSession(_OurHttpSession):
    """``locust.clients.HttpSession``: ``HttpSession(base_url, request_event, user)``."""

    def __init__(
        self,
        base_url: str,
        request_event: Any = None,
        user: Any = None,
        *args: Any,
        pool_manager: Any = None,
        **kwargs: Any,
    ) -> None:
        transport = getattr(type(user), "transport", "lean") if user is not None else "lean"
        super().__init__(base_url, recorder_for(request_event, user), transport=transport)
        self.request_event = request_event
        self.user = user


def fast_http_session(
    environment: Any, base_url: str, user: Any = None, insecure: bool = True, **kwargs: Any
) -> Any:
    """``locust.contrib.fasthttp.FastHttpSession(environment, base_url, user, ...)``."""
    from notebookswarm._http.fastclient import FastHttpSession

    recorder = recorder_for(getattr(getattr(environment, "events", None), "request", None), user)
    return FastHttpSession(
        base_url,
        recorder,
        network_timeout=float(kwargs.get("network_timeout", DEFAULT_TIMEOUT)),
        connection_timeout=float(kwargs.get("connection_timeout", DEFAULT_TIMEOUT)),
        insecure=insecure,
    )
