"""``FastHttpUser.rest()``: a JSON request whose checks count as the request's failure."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from notebookswarm._http.common import CatchResponse


class RestResponseContextManager(CatchResponse):
    """What :func:`rest` yields: a ``catch_response`` response with ``js``, the parsed JSON."""

    js: Any


@contextmanager
def rest(
    client: Any, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> Iterator[Any]:
    """Send a JSON request and yield the response with ``js`` parsed; see ``FastHttpUser.rest``.

    The request counts as failed when it failed, when its body is not JSON, when the
    block fails an ``assert`` (the assertion's text is the error) or raises; nothing
    raised in the block goes further, as in Locust.
    """
    if headers is None:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
    with client.request(method, url, catch_response=True, headers=headers, **kwargs) as resp:
        resp.js = None
        error = getattr(resp, "error", None)
        if error is not None:
            resp.failure(str(error))
        elif resp.text:
            try:
                resp.js = json.loads(resp.text)
            except ValueError as exc:
                resp.failure(
                    f"Could not parse response as JSON. {resp.text[:250]}, "
                    f"response code {resp.status_code}, error {exc}"
                )
        try:
            yield resp
        except AssertionError as exc:
            text = str(exc.args[0]) if exc.args else "Assertion failed"
            if text.endswith(","):
                text = f"{text[:-1]}, response was {(resp.text or '')[:200]}"
            resp.failure(text)
        except Exception as exc:
            lines = traceback.format_exception(exc)
            resp.failure("".join(lines[-3:]).strip())
