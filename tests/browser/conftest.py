"""A real JupyterLab on 127.0.0.1 and Debian's Chromium driven by Playwright.

Session fixtures: ``target`` (a CountingServer the notebooks load, through
``NOTEBOOKSWARM_TARGET``) and ``browser``; per test, ``jupyter`` (a server of its own,
serving a fresh copy of ``notebooks/``) and ``page`` (a fresh browser context that
collects JavaScript errors). Screenshots go to ``test-artifacts/``.

Chromium comes from apt (``make test`` installs it); Playwright's own browser download is
never used. Without Chromium the tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notebookswarm.testing import CountingServer

from lab import Jupyter, Page

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = os.environ.get("NBS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    reason = f"no Chromium at {CHROMIUM}: apt-get install chromium (make test does)"
    if os.environ.get("CI"):
        return  # under CI a missing browser is a failure, not a skip: let the fixture fail
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def target() -> Iterator[CountingServer]:
    """The local site every notebook loads (the kernels find it in NOTEBOOKSWARM_TARGET)."""
    with CountingServer() as server:
        yield server


@pytest.fixture
def jupyter(tmp_path: Path, target: CountingServer) -> Iterator[Jupyter]:
    """JupyterLab (and Notebook 7) serving a copy of notebooks/ on an OS-chosen port; one
    per test (3 s), since a Notebook 7 page after a Lab page on the same server logs
    errors of its own about the file browser it restores."""
    work = tmp_path
    root = work / "root"  # a copy: Lab autosaves outputs into what it serves
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = work / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'  # no news or update toasts
    )
    runtime = work / "runtime"
    env = dict(
        os.environ,
        NOTEBOOKSWARM_TARGET=target.url,
        JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"),  # no tabs restored from before
        JUPYTER_RUNTIME_DIR=str(runtime),  # jpserver-<pid>.json tells the port
    )
    token = secrets.token_hex(16)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",  # as root Lab exits at once without it
        "--ip=127.0.0.1",
        "--port=0",  # the OS picks a free port: no race
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, for commands
        "--JupyterNotebookApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",  # no queries to package indexes
    ]
    log_path = work / "jupyter.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        server = Jupyter(_await_url(proc, runtime, token, log_path), token, root, log_path)
        yield server
    finally:
        _shutdown(proc, token, runtime)


def _await_url(proc: subprocess.Popen[bytes], runtime: Path, token: str, log: Path) -> str:
    info = runtime / f"jpserver-{proc.pid}.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter exited with {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError, ValueError, KeyError):  # absent or half-written
            url = str(json.loads(info.read_text())["url"]).rstrip("/")
            Jupyter(url, token, runtime, log).api("GET", "/api/status", timeout=2)
            return url
        time.sleep(0.1)
    raise RuntimeError(f"jupyter was not ready within 60 s:\n{log.read_text()}")


def _shutdown(proc: subprocess.Popen[bytes], token: str, runtime: Path) -> None:
    """Ask the server to stop (it stops its kernels); kill its group only as a fallback."""
    info = runtime / f"jpserver-{proc.pid}.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        url = str(json.loads(info.read_text())["url"]).rstrip("/")
        Jupyter(url, token, runtime, info).api("POST", "/api/shutdown")
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(jupyter: Jupyter, browser: Any) -> Iterator[Page]:
    """A fresh browser context; its JavaScript errors collect in ``errors``; its kernels
    are shut down afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pw_page = context.new_page()
    pw_page.set_default_timeout(30_000)
    out = Page(pw_page, jupyter)
    pw_page.on("pageerror", lambda e: out.errors.append(f"pageerror: {e}"))
    pw_page.on(
        "console", lambda m: out.errors.append(f"console: {m.text}") if m.type == "error" else None
    )
    try:
        yield out
    finally:
        context.close()
        for session in jupyter.api("GET", "/api/sessions"):
            jupyter.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
