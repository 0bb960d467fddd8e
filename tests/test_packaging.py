"""The built wheel is what a user gets: its metadata renders on an index, a core install
runs the master, a worker, a swarm and a notebook, and brings no JupyterLab.

The wheel is installed into a fresh virtual environment (not the source tree, not this
test's environment), and every command runs there from a directory outside the repository,
so nothing can be imported from the checkout by accident.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import tomllib
import venv
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest

from notebookswarm.testing import CountingServer, wait_until

ROOT = Path(__file__).resolve().parent.parent
PIP_TIMEOUT = 600

SWARM_SCRIPT = """
import json, sys
import notebookswarm as nbs

class Visitor(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def page(self):
        self.client.get("/packaged")

with nbs.Swarm(Visitor, host=sys.argv[1], workers=1) as swarm:
    run = swarm.run(users=4, spawn_rate=4, duration=5)
total = run.stats[run.stats["name"] == "Aggregated"].iloc[0]
print(json.dumps({"requests": int(total["requests"]), "failures": int(total["failures"]),
                  "file": nbs.__file__, "gevent": "gevent" in sys.modules}))
"""

RUN_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
print("executed", len(nb.cells), "cells")
"""

NOTEBOOK_CELLS = [
    """\
import sys
import notebookswarm as nbs
from notebookswarm.testing import CountingServer
assert "site-packages" in nbs.__file__, nbs.__file__""",
    """\
class Visitor(nbs.HttpUser):
    wait_time = nbs.constant(0.05)

    @nbs.task
    def page(self):
        self.client.get("/from-a-notebook")""",
    """\
target = CountingServer()
swarm = nbs.Swarm(Visitor, host=target.url, workers=1)
swarm.dashboard()""",
    """\
run = swarm.run(users=2, spawn_rate=2, duration=2)
swarm.close()
total = run.stats[run.stats["name"] == "Aggregated"].iloc[0]
assert total["requests"] == target.count() > 0, (total["requests"], target.count())
assert "gevent" not in sys.modules
target.close()""",
]


@dataclass
class Env:
    """A fresh virtual environment with the built wheel installed, core only."""

    path: Path
    python: Path
    installed: dict[str, str]  # distribution name -> version, right after the core install
    workdir: Path  # outside the repository, so the checkout is never importable

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def pip_install(self, *requirements: str) -> None:
        done = self.run("-m", "pip", "install", "-q", *requirements, timeout=PIP_TIMEOUT)
        assert done.returncode == 0, done.stderr[-3000:]


def absolute_links_only(markdown: str) -> list[str]:
    """Return the links and image sources in ``markdown`` that are not absolute https URLs."""
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)", markdown)  # [text](url), ![alt](src)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*(\S+)", markdown, flags=re.M)  # [ref]: url
    targets += re.findall(r"""(?:href|src)\s*=\s*["']([^"']+)""", markdown)  # raw HTML
    return [t for t in targets if not t.startswith("https://")]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel ``python -m build`` makes from this checkout, as ``make dist`` does.

    The wheel is built from the sdist, in a clean directory: a wheel built straight from the
    checkout can pick up stale modules from an old ``build/`` there.
    """
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    """The built wheel."""
    (built,) = dist.glob("notebookswarm-*.whl")
    return built


@pytest.fixture(scope="module")
def core_env(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    """A fresh venv with the wheel and its core dependencies and nothing else."""
    path = tmp_path_factory.mktemp("core-env") / "venv"
    venv.EnvBuilder(with_pip=True).create(path)
    env = Env(path, path / "bin" / "python", {}, tmp_path_factory.mktemp("work"))
    env.pip_install(str(wheel))
    listed = env.run("-m", "pip", "list", "--format=json")
    assert listed.returncode == 0, listed.stderr
    env.installed = {d["name"].lower(): d["version"] for d in json.loads(listed.stdout)}
    return env


@pytest.fixture(scope="module")
def notebook_env(core_env: Env) -> Env:
    """The core env plus a kernel and a headless notebook runner (what Jupyter brings)."""
    core_env.pip_install("ipykernel", "nbclient")
    return core_env


def venv_processes(env: Env) -> list[psutil.Process]:
    """Processes running the venv's interpreter (a swarm started from it, say)."""
    found = []
    for proc in psutil.process_iter(["exe", "cmdline"]):
        command = " ".join([proc.info["exe"] or "", *(proc.info["cmdline"] or [])])
        if str(env.path) in command:
            found.append(proc)
    return found


def reap_venv_processes(env: Env) -> list[str]:
    """Wait up to 10 s for the venv's processes to end; kill and name any still there."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not venv_processes(env), timeout=10, message="the venv's processes")
    left = venv_processes(env)
    for proc in left:
        proc.kill()
    psutil.wait_procs(left, timeout=5)
    return [" ".join(proc.info["cmdline"] or []) for proc in left]


def test_readme_on_the_index_has_absolute_links_only() -> None:
    """Every link and image in the readme the package metadata uses is an absolute https
    URL, so the page renders on a package index."""
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    relative = absolute_links_only((ROOT / readme).read_text())
    assert not relative, f"{readme} has links that break on a package index: {relative}"


def test_link_check_catches_relative_links() -> None:
    """The readme link check flags relative links, images, references and HTML sources."""
    text = (
        "[a](docs/a.md) ![b](docs/b.png) [ok](https://x.org/y)\n"
        "[c]: c.md\n"
        '<img src="d.png"> <a href="https://x.org">x</a>'
    )
    assert absolute_links_only(text) == ["docs/a.md", "docs/b.png", "c.md", "d.png"]


@pytest.mark.timeout(PIP_TIMEOUT)
def test_dist_passes_twine_check(dist: Path) -> None:
    """``twine check --strict`` accepts the sdist and the wheel: their readme renders on an
    index."""
    files = sorted(str(f) for f in dist.iterdir())
    assert len(files) == 2, files
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


@pytest.mark.timeout(PIP_TIMEOUT)
def test_core_install_has_the_core_and_no_jupyterlab(core_env: Env) -> None:
    """Installing the wheel alone brings its core dependencies and neither JupyterLab, the
    Notebook front end nor the benchmark's geventhttpclient."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    installed = {name.replace("_", "-") for name in core_env.installed}
    assert core <= installed, f"missing: {sorted(core - installed)}"
    for absent in ("jupyterlab", "notebook", "jupyter-server", "geventhttpclient"):
        assert absent not in installed, f"a core install pulled in {absent}"
    version = (ROOT / "notebookswarm" / "_version.py").read_text()
    assert f'"{core_env.installed["notebookswarm"]}"' in version


@pytest.mark.timeout(PIP_TIMEOUT)
def test_master_and_worker_commands_run_from_the_wheel(core_env: Env) -> None:
    """``python -m notebookswarm.master --help`` and ``... .worker --help`` work from the
    installed wheel."""
    for command in ("notebookswarm.master", "notebookswarm.worker"):
        done = core_env.run("-m", command, "--help")
        assert done.returncode == 0, done.stderr[-3000:]
        assert "usage:" in done.stdout


@pytest.mark.timeout(PIP_TIMEOUT)
def test_a_swarm_runs_from_the_wheel(core_env: Env) -> None:
    """A five-second swarm started from the installed wheel sends exactly the requests its
    statistics count, and leaves no process behind."""
    script = core_env.workdir / "swarm_from_wheel.py"
    script.write_text(SWARM_SCRIPT)
    try:
        with CountingServer() as target:
            done = core_env.run(str(script), target.url, timeout=120)
            assert done.returncode == 0, done.stderr[-3000:]
            result = json.loads(done.stdout.strip().splitlines()[-1])
            assert result["requests"] == target.count("GET", "/packaged") > 0
    finally:
        left = reap_venv_processes(core_env)
    assert not left, f"processes outlived their swarm: {left}"
    assert result["failures"] == 0
    assert str(core_env.path) in result["file"]  # the wheel, not the checkout
    assert not result["gevent"]  # the controller side stays unpatched


@pytest.mark.timeout(PIP_TIMEOUT)
def test_a_notebook_runs_headless_from_the_wheel(notebook_env: Env) -> None:
    """With a kernel added to the core install, a notebook that starts a swarm, shows its
    dashboard and checks its counts executes headless."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    path = notebook_env.workdir / "tiny.ipynb"
    nbformat.write(notebook, path)
    try:
        done = notebook_env.run(
            "-c", RUN_NOTEBOOK, str(path), str(notebook_env.workdir), timeout=240
        )
    finally:
        left = reap_venv_processes(notebook_env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "executed 4 cells" in done.stdout
    assert not left, f"processes outlived the kernel: {left}"
