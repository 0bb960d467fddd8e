"""``FastHttpUser``: a user whose client is a lean HTTP/1.1 client on gevent sockets.

Use it instead of ``HttpUser`` when the load generator's CPU is the limit: on loopback
it sends many times more requests per CPU-second than the ``requests``-based client
(``bench/bench_http_clients.py`` measures it). Same ``name=``, ``catch_response=True``,
timing and failure rules as ``HttpUser``; see :mod:`notebookswarm._http.fastclient` for what
the client does and leaves out.

Importing this module does not import gevent; creating a user (in a worker, after the
monkey-patch) does.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from notebookswarm._http.common import DEFAULT_TIMEOUT
from notebookswarm.users.core import User, UserContext
from notebookswarm.users.http import require_host
from notebookswarm.users.rest import RestResponseContextManager, rest

if TYPE_CHECKING:
    from notebookswarm._http.fastclient import FastHttpSession

__all__ = ["FastHttpUser", "RestResponseContextManager"]


class FastHttpUser(User):
    """A user whose ``self.client`` is a :class:`~notebookswarm._http.fastclient.FastHttpSession`.

    Class attributes: ``network_timeout`` (seconds a send or a read may take) and
    ``connection_timeout`` (seconds to connect), both ``DEFAULT_TIMEOUT`` by default;
    ``insecure = True`` to accept any https certificate (a self-signed test system).
    """

    abstract = True
    needs_host = True
    network_timeout: ClassVar[float] = DEFAULT_TIMEOUT
    connection_timeout: ClassVar[float] = DEFAULT_TIMEOUT
    insecure: ClassVar[bool] = False

    def __init__(self, context: UserContext) -> None:
        super().__init__(context)
        # Imported here so that `import notebookswarm` never pulls in gevent.
        from notebookswarm._http.fastclient import FastHttpSession

        self.client: FastHttpSession = FastHttpSession(
            require_host(self),
            context.recorder,
            network_timeout=self.network_timeout,
            connection_timeout=self.connection_timeout,
            insecure=self.insecure,
        )

    def rest(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> AbstractContextManager[RestResponseContextManager]:
        """Send a JSON request; ``with self.rest("GET", "/x") as r:`` gives ``r.js`` parsed.

        A failed request, a body that is not JSON, a failed ``assert`` in the block (its
        text is the error) or any exception in it counts the request as failed; nothing
        raised in the block goes further. JSON headers are sent unless ``headers`` is given.
        """
        return rest(self.client, method, url, headers, **kwargs)
