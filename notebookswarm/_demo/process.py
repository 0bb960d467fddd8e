"""The demo server's process: listen, announce the URL, stop on a signal or an orphaning.

``start_target`` runs ``python -m notebookswarm._demo --settings JSON --parent PID``,
which prints one JSON line (``{"url": ..., "port": ..., "pid": ...}``) once it listens
and nothing more on stdout. ``python -m notebookswarm.demo`` calls :func:`serve` in its
own process with a line for people instead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from gevent.pywsgi import WSGIServer

from notebookswarm._demo.server import Site
from notebookswarm._demo.settings import Settings
from notebookswarm.errors import ConfigError

#: Seconds between two looks at whether the parent process is still there.
ORPHAN_CHECK_S = 0.2


class _Server(WSGIServer):  # type: ignore[misc]  # gevent ships no type hints
    """gevent's WSGI server with Nagle's algorithm off on every connection.

    pywsgi sends a response's head and body in two writes; with Nagle on, the body
    waits for the client's delayed ACK of the head: 40 ms per keep-alive response.
    """

    def handle(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


def url_for(host: str, port: int) -> str:
    """Return the base URL of a server listening on ``host:port``."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(
    settings: Settings,
    host: str,
    port: int,
    announce: Callable[[str, int], None],
    parent: int | None = None,
) -> int:
    """Serve the demo site until SIGTERM or SIGINT (or the parent's death); return a status.

    ``announce(url, port)`` is called once the socket listens; OSError if it cannot.
    With ``parent``, the process exits as soon as that process is gone, so it never
    outlives its notebook.
    """
    site = Site(settings)
    # log=None: no access log; with thousands of requests a second it would cost more
    # than the answers. Errors still go to stderr.
    server = _Server((host, port), site, log=None)
    server.start()
    stop = Event()
    # Before the announcement: a stop() right after start_target() must find them.
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    bound_port: int = server.server_port
    announce(url_for(host, bound_port), bound_port)
    watchdog = gevent.spawn(_exit_when_orphaned, parent) if parent is not None else None
    stop.wait()
    if watchdog is not None:
        watchdog.kill()
    server.stop(timeout=1)  # requests still held by a stall are cut after a second
    return 0


def _exit_when_orphaned(parent: int) -> None:
    """Exit at once when the process that started this one has gone (we were re-parented)."""
    while True:
        gevent.sleep(ORPHAN_CHECK_S)
        if os.getppid() != parent:
            os._exit(3)


def _say(**message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the demo server for ``start_target``: one JSON line on stdout, then nothing.

    The line is ``{"url", "port", "pid"}`` once it listens, or ``{"error"}`` if it
    cannot start: the notebook shows that message, as a kernel's subprocess stderr is
    not shown in the notebook.
    """
    p = argparse.ArgumentParser(prog="python -m notebookswarm._demo")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--settings", default="{}", help="settings as a JSON object")
    p.add_argument("--parent", type=int, help="exit when this process is gone")
    args = p.parse_args(argv)
    try:
        settings = Settings().updated(json.loads(args.settings))
        return serve(
            settings,
            args.host,
            args.port,
            lambda url, port: _say(url=url, port=port, pid=os.getpid()),
            args.parent,
        )
    except (ConfigError, ValueError, AttributeError) as exc:
        _say(error=f"bad settings: {exc}")
    except OSError as exc:
        _say(error=f"cannot listen on {args.host}:{args.port}: {exc}")
    return 2
