"""gunicorn's configuration for the real stack (``-c python:notebookswarm._demo.gunicorn_conf``).

Only the hooks live here; everything else is on gunicorn's command line, where
:mod:`.stack` can show it. The master serves ``/metrics`` (every worker's, merged) on a
socket the stack hands it, from a thread of its own: a scrape never waits behind requests
for a worker, and never makes one busy.
"""

from __future__ import annotations

import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, multiprocess

from notebookswarm._demo.contest_metrics import exposition

#: The environment variable naming the inherited socket the master serves metrics on.
METRICS_FD_ENV = "NOTEBOOKSWARM_STACK_METRICS_FD"


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name
        body = exposition()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # base name
        pass


def when_ready(server: Any) -> None:
    """Serve the merged metrics from the master on the inherited socket."""
    fd = os.environ.get(METRICS_FD_ENV)
    if fd is None:
        return
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics, bind_and_activate=False)
    httpd.socket.close()
    httpd.socket = socket.socket(fileno=int(fd))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True, name="metrics").start()


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges, so the busy and pool gauges sum live workers only."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
