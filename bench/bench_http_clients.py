"""Compare HTTP clients by requests per generator CPU-second, against nginx on loopback.

    .venv/bin/python bench/bench_http_clients.py                 # defaults: 50 users
    .venv/bin/python bench/bench_http_clients.py --users 50 --rounds 3 --scale 2
    .venv/bin/python bench/bench_http_clients.py --locust-python /tmp/locust-venv/bin/python

The target is nginx with one worker serving a 3-byte body on 127.0.0.1 (Debian's
``nginx``/``nginx-light``; without it, a raw gevent server in its own process). Each
client runs in a fresh, monkey-patched generator process: ``--users`` greenlets, each
with its own client, send GETs back to back until the process has sent its fixed
number of requests. The generator reports its own CPU time (user + sys from
``getrusage``) over the timed loop only, so the target's CPU is never counted. With two
or more cores the target and the generator are pinned to different ones.

Clients (the ``ours:`` ones record every request into a real ``StatsRecorder``):

- ``ours:requests``   notebookswarm.users.http.HttpSession (requests.Session, the lean adapter)
- ``ours:requests-urllib3``  the same with requests' own adapter (``transport="urllib3"``)
- ``ours:fast``       notebookswarm._http.fastclient.FastHttpSession (the FastHttpUser client)
- ``ours:ghc``        geventhttpclient.HTTPClient with the same naming/recording/status
                      rules, the candidate the lean client was chosen over
- ``raw:ghc``         geventhttpclient.HTTPClient, read the body, nothing recorded
- ``raw:ghc-agent``   geventhttpclient.UserAgent (what Locust's FastHttpUser wraps)
- ``locust:fast`` / ``locust:http``  Locust's own sessions, with ``--locust-python``
                      (an interpreter of a separate venv that has locust installed)

Bounded: a fixed request count per client, a wall-clock cap per run, loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
BODY = b"ok\n"
#: Requests per run for each client, before --scale; slow clients get fewer.
BASE_COUNTS = {
    "ours:requests": 20_000,
    "ours:requests-urllib3": 20_000,
    "ours:fast": 100_000,
    "ours:ghc": 60_000,
    "raw:ghc": 60_000,
    "raw:ghc-agent": 40_000,
    "locust:fast": 50_000,
    "locust:http": 20_000,
}
DEFAULT_CLIENTS = ("ours:requests", "ours:fast", "ours:ghc", "raw:ghc", "raw:ghc-agent")
RUN_CAP_S = 120.0


# --- the target ---------------------------------------------------------------------

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
        location = /nginx_status {{ stub_status; }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"target not listening on {port} after {deadline_s}s")


def start_target(tmp: Path, want_nginx: bool) -> tuple[subprocess.Popen[bytes], int, str]:
    """Start nginx (or the fallback server) on a free port; return it, the port, a label."""
    port = free_port()
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if want_nginx and nginx:
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
        proc = subprocess.Popen(
            [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        label = "nginx, 1 worker"
    else:
        proc = subprocess.Popen([sys.executable, str(HERE), "--serve", str(port)])
        label = "gevent raw-socket server (nginx not found)"
    wait_listening(port, proc)
    return proc, port, label


def pin(pid: int, cpu: int) -> None:
    """Pin a process and its children (nginx workers) to one CPU, where possible."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return
    pids = [pid]
    try:
        out = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout
        pids += [int(p) for p in out.split()]
    except OSError:
        pass
    for p in pids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(p, {cpu})


#: Path of the request counter, on nginx (stub_status) and on the fallback server alike.
STATUS_PATH = "/nginx_status"


def serve(port: int) -> None:
    """The fallback target: a minimal keep-alive HTTP/1.1 server on gevent.

    Like the nginx target it answers ``STATUS_PATH`` in stub_status's format, so the
    harness counts requests at the target the same way on both.
    """
    from gevent.server import StreamServer

    def answer(body: bytes) -> bytes:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n"
        return head % len(body) + body

    reply = answer(BODY)
    handled = [0]
    status = b"GET " + STATUS_PATH.encode() + b" "

    def handle(sock: Any, _address: Any) -> None:
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf += chunk
            while (end := buf.find(b"\r\n\r\n")) >= 0:
                head, buf = buf[:end], buf[end + 4 :]  # the benchmark sends GETs only
                handled[0] += 1
                if head.startswith(status):
                    n = handled[0]
                    text = f"Active connections: 0\nserver accepts handled requests\n {n} {n} {n}\n"
                    sock.sendall(answer(text.encode()))
                else:
                    sock.sendall(reply)

    StreamServer(("127.0.0.1", port), handle, backlog=4096).serve_forever()


# --- the generator (a separate process per run) -------------------------------------


def make_sender(kind: str, url: str) -> tuple[Any, Any]:
    """Return (factory of one user's send-one-request callable, recorder or None)."""
    if kind.startswith("locust:"):
        return make_locust_sender(kind, url)
    from notebookswarm.stats.requests import StatsRecorder

    recorder = StatsRecorder()
    if kind in ("ours:requests", "ours:requests-urllib3"):
        from notebookswarm.users.http import HttpSession

        transport = "urllib3" if kind.endswith("urllib3") else "lean"

        def requests_user() -> Any:
            session = HttpSession(url, recorder, transport=transport)
            return lambda: session.get("/")

        return requests_user, recorder
    if kind == "ours:fast":
        from notebookswarm._http.fastclient import FastHttpSession

        def fast_user() -> Any:
            session = FastHttpSession(url, recorder)
            return lambda: session.get("/")

        return fast_user, recorder
    if kind == "ours:ghc":
        return ghc_with_semantics(url, recorder), recorder
    if kind == "raw:ghc":
        from geventhttpclient import HTTPClient
        from geventhttpclient.url import URL

        def raw_user() -> Any:
            client = HTTPClient.from_url(URL(url), concurrency=1, network_timeout=60)

            def send() -> None:
                response = client.get("/")
                response.read()
                response.release()

            return send

        return raw_user, None
    if kind == "raw:ghc-agent":
        from geventhttpclient.useragent import UserAgent

        def agent_user() -> Any:
            agent = UserAgent(concurrency=1, network_timeout=60, max_retries=0)
            target = url.rstrip("/") + "/"
            return lambda: agent.urlopen(target).content

        return agent_user, None
    raise SystemExit(f"unknown client {kind!r}")


def ghc_with_semantics(url: str, recorder: Any) -> Any:
    """geventhttpclient.HTTPClient wrapped with our join/record/status rules (no cookies)."""
    from geventhttpclient import HTTPClient
    from geventhttpclient.url import URL

    from notebookswarm._http.common import describe_exception, describe_status, join_url

    def ghc_user() -> Any:
        clients: dict[tuple[str, int | None], Any] = {}

        def get(path: str) -> None:
            full = URL(join_url(url, path))
            key = (full.host, full.port)
            client = clients.get(key)
            if client is None:
                client = clients[key] = HTTPClient.from_url(full, concurrency=1, network_timeout=60)
            start = time.perf_counter_ns()
            try:
                response = client.get(full.request_uri)
                content = response.read()
                response.release()
                error = describe_status(response.status_code, response.status_message)
            except OSError as exc:
                content, error = b"", describe_exception(exc)
            latency = time.perf_counter_ns() - start
            recorder.record_request("GET", path, latency, len(content), error)

        return lambda: get("/")

    return ghc_user


def make_locust_sender(kind: str, url: str) -> tuple[Any, Any]:
    """Locust's sessions with its stats listener attached (run under locust's venv)."""
    from locust.env import Environment  # type: ignore[import-not-found]  # its own venv

    env = Environment()
    if not env.events.request._handlers:
        env.events.request.add_listener(
            lambda request_type, name, response_time, response_length, exception=None, **_: (
                env.stats.log_request(request_type, name, response_time, response_length)
                if exception is None
                else env.stats.log_error(request_type, name, exception)
            )
        )
    if kind == "locust:fast":
        from locust.contrib.fasthttp import FastHttpSession, FastHttpUser  # type: ignore[import-not-found]  # its own venv

        def locust_fast_user() -> Any:
            session = FastHttpSession(  # what FastHttpUser.__init__ passes, by default
                base_url=url,
                request_event=env.events.request,
                user=None,
                network_timeout=FastHttpUser.network_timeout,
                connection_timeout=FastHttpUser.connection_timeout,
                max_redirects=FastHttpUser.max_redirects,
                max_retries=FastHttpUser.max_retries,
                insecure=FastHttpUser.insecure,
                concurrency=FastHttpUser.concurrency,
            )
            return lambda: session.get("/")

        return locust_fast_user, None
    from locust.clients import HttpSession  # type: ignore[import-not-found]  # its own venv

    def locust_http_user() -> Any:
        session = HttpSession(base_url=url, request_event=env.events.request, user=None)
        return lambda: session.get("/")

    return locust_http_user, None


def generate(kind: str, url: str, users: int, count: int) -> dict[str, Any]:
    """Run ``count`` requests from ``users`` greenlets; return counts and CPU seconds."""
    from gevent import monkey

    monkey.patch_all()
    import resource

    import gevent
    from gevent.event import Event

    user_factory, recorder = make_sender(kind, url)
    senders = [user_factory() for _ in range(users)]
    for send in senders:  # connect outside the timed loop
        send()
    if recorder is not None:
        recorder.take()
    go = Event()
    remaining = [count]
    deadline = time.monotonic() + RUN_CAP_S

    def loop(send: Any) -> None:
        go.wait()
        while remaining[0] > 0:
            remaining[0] -= 1
            send()
            if time.monotonic() > deadline:  # safety cap; rarely hit
                break

    greenlets = [gevent.spawn(loop, s) for s in senders]
    gevent.sleep(0)
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    go.set()
    gevent.joinall(greenlets)
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = count - max(remaining[0], 0)
    result: dict[str, Any] = {"requests": done, "cpu_s": cpu, "wall_s": wall}
    if recorder is not None:
        stats = recorder.take()
        total = stats.total()
        result["failures"] = total.failures
        result["p50_ms"], result["p99_ms"] = (
            v / 1e6 for v in total.latency.percentiles([0.5, 0.99])
        )
        result["recorded"] = total.requests
    return result


# --- the orchestrator ---------------------------------------------------------------


def run_one(python: str, kind: str, url: str, users: int, count: int) -> dict[str, Any]:
    cmd = [python, str(HERE), "--generate", kind, "--url", url]
    cmd += ["--users", str(users), "--count", str(count)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    pin(proc.pid, 1)
    try:
        out, err = proc.communicate(timeout=RUN_CAP_S + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} generator failed:\n{err.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="runs per client; median kept")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply request counts")
    parser.add_argument("--clients", default=",".join(DEFAULT_CLIENTS))
    parser.add_argument("--locust-python", help="python of a venv with locust, adds locust:*")
    parser.add_argument("--no-nginx", action="store_true", help="use the fallback server")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        serve(args.serve)
        return
    if args.generate:
        print(json.dumps(generate(args.generate, args.url, args.users, args.count)))
        return

    kinds = [k for k in args.clients.split(",") if k]
    if args.locust_python:
        kinds += ["locust:fast", "locust:http"]
    with tempfile.TemporaryDirectory(prefix="nbs-bench-") as tmp:
        target, port, label = start_target(Path(tmp), want_nginx=not args.no_nginx)
        try:
            pin(target.pid, 0)
            url = f"http://127.0.0.1:{port}"
            results: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
            for _ in range(args.rounds):  # interleaved, so drift hits every client alike
                for kind in kinds:
                    python = args.locust_python if kind.startswith("locust:") else sys.executable
                    count = int(BASE_COUNTS.get(kind, 20_000) * args.scale)
                    results[kind].append(run_one(python, kind, url, args.users, count))
        finally:
            target.terminate()
            try:
                target.wait(timeout=10)
            except subprocess.TimeoutExpired:
                target.kill()
                target.wait()
    print_table(results, label, args)


def print_table(results: dict[str, list[dict[str, Any]]], label: str, args: Any) -> None:
    rows = []
    for kind, runs in results.items():
        rates = [r["requests"] / r["cpu_s"] for r in runs]
        rate = statistics.median(rates)
        run = min(runs, key=lambda r: abs(r["requests"] / r["cpu_s"] - rate))
        rows.append((kind, run, rate, min(rates), max(rates)))
    base = {kind: rate for kind, _, rate, _, _ in rows}
    print(f"\ntarget: {label}; {args.users} users, median of {args.rounds} run(s); cpu = user+sys")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    head = f"{'client':<15}{'requests':>9}{'fails':>7}{'cpu s':>7}{'wall s':>7}"
    head += f"{'req/cpu-s':>11}{'(min-max)':>16}{'p50 ms':>8}{'p99 ms':>8}"
    head += f"{'vs requests':>12}{'vs fast':>12}"
    print(head)
    print("-" * len(head))
    for kind, run, rate, low, high in rows:
        line = f"{kind:<15}{run['requests']:>9}{run.get('failures', '-'):>7}"
        line += f"{run['cpu_s']:>7.2f}{run['wall_s']:>7.2f}{rate:>11,.0f}"
        line += f"{f'{low:,.0f}-{high:,.0f}':>16}"
        if "p50_ms" in run:
            line += f"{run['p50_ms']:>8.2f}{run['p99_ms']:>8.2f}"
        else:
            line += f"{'-':>8}{'-':>8}"
        for ref in ("ours:requests", "ours:fast"):
            line += f"{rate / base[ref]:>11.2f}x" if ref in base else f"{'-':>12}"
        print(line)


if __name__ == "__main__":
    main()
