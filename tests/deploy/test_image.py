"""deploy/Dockerfile, played without a container engine: its steps in a fresh virtual environment.

No container engine runs on our machines, so the test reads the Dockerfile, copies what its
COPY lines copy, runs its RUN lines' install commands with the image's paths mapped into a
temporary folder, and then runs its ENTRYPOINT and CMD and the commands the Helm chart gives
the containers. A Dockerfile whose install misses a file, or whose entry point the chart
does not use, fails here.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helmrender import ROOT, all_on_values, find, pod_template, render

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# RUN commands the test does not need to play: they do not change what is installed.
NOT_INSTALLS = {"rm", "useradd", "mkdir", "chown"}

pytestmark = pytest.mark.slow


def instructions(text: str) -> list[tuple[str, str]]:
    """Return the Dockerfile's (INSTRUCTION, arguments), continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = pending + line
        pending = ""
        word, _, rest = whole.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


@dataclass
class Image:
    """The image's file system, mapped into a folder here."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    user: str = "root"

    def here(self, path: str) -> str:
        """Map an absolute path of the image to this folder."""
        return str(self.root / path.lstrip("/")) if path.startswith("/") else path

    def run(self, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a command as the image would: its PATH first, its paths mapped here."""
        command = [self.here(a) if a.startswith("/") else a for a in argv]
        inside = shutil.which(command[0], path=self.env["PATH"]) or ""
        if command[0] == "python" and not inside.startswith(str(self.root)):
            command[0] = sys.executable  # the base image's interpreter: this one's version
        elif "/" not in command[0]:
            found = shutil.which(command[0], path=self.env["PATH"])
            assert found, f"{command[0]} is not on the image's PATH {self.env['PATH']}"
            command[0] = found
        return subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout
        )


def play(dockerfile: Path, root: Path) -> Image:
    """Play the Dockerfile's COPY, ENV, RUN (installs), USER, ENTRYPOINT and CMD into ``root``."""
    image = Image(root, env={"PATH": os.environ["PATH"], "HOME": str(root)})
    for word, args in instructions(dockerfile.read_text()):
        if word == "COPY":
            *sources, dest = shlex.split(args)
            for source in sources:
                target = Path(image.here(dest))
                if dest.endswith("/"):
                    target = target / Path(source).name
                target.parent.mkdir(parents=True, exist_ok=True)
                copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copy
                copy(ROOT / source, target)
        elif word == "ENV":
            for assignment in shlex.split(args):
                name, _, value = assignment.partition("=")
                parts = [image.here(p) for p in value.split(":")]
                image.env[name] = ":".join(parts).replace("$PATH", image.env["PATH"])
        elif word == "RUN":
            for command in args.split("&&"):
                argv = shlex.split(command)
                if Path(argv[0]).name in NOT_INSTALLS:
                    continue
                done = image.run(argv)
                assert done.returncode == 0, f"RUN {command.strip()} failed:\n{done.stderr[-3000:]}"
        elif word == "USER":
            image.user = args
        elif word in ("ENTRYPOINT", "CMD"):
            setattr(image, word.lower(), json.loads(args))  # the exec form, as signals need
    return image


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The Dockerfile's install, done once in a fresh virtual environment."""
    return play(DOCKERFILE, tmp_path_factory.mktemp("image"))


def test_the_base_image_is_a_python_the_package_supports() -> None:
    """FROM names a slim Python image whose version satisfies requires-python."""
    (base,) = [args for word, args in instructions(DOCKERFILE.read_text()) if word == "FROM"]
    name, _, tag = base.partition(":")
    assert name == "python" and tag.endswith("-slim")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = project["requires-python"].removeprefix(">=")
    version = tuple(int(part) for part in tag.removesuffix("-slim").split("."))
    assert version >= tuple(int(part) for part in minimum.split("."))


def test_the_image_runs_as_a_numeric_non_root_user(image: Image) -> None:
    """USER is a numeric uid other than 0, as Kubernetes' runAsNonRoot needs."""
    uid = image.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    pod_uid = render()[0]["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert int(uid) == pod_uid


def test_the_entry_point_answers(image: Image) -> None:
    """ENTRYPOINT plus CMD (`notebookswarm --help`) runs from the installed package."""
    done = image.run(image.entrypoint + image.cmd, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "keygen" in done.stdout


def test_the_install_is_the_core_without_jupyterlab(image: Image) -> None:
    """The image carries the worker's gevent and the master's pyzmq, and no JupyterLab."""
    probe = (
        "import importlib.util as u, json; "
        "print(json.dumps({m: u.find_spec(m) is not None "
        "for m in ('gevent', 'zmq', 'notebookswarm', 'jupyterlab')}))"
    )
    done = image.run(["python", "-c", probe])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "gevent": True,
        "zmq": True,
        "notebookswarm": True,
        "jupyterlab": False,
    }


def test_the_installed_metadata_carries_the_readme_and_the_license(image: Image) -> None:
    """The COPY lines bring README.md and LICENSE, so the installed metadata has both."""
    probe = (
        "from importlib.metadata import distribution as d, metadata as m; "
        "print(bool(m('notebookswarm')['Description']), "
        "any(f.name == 'LICENSE' for f in d('notebookswarm').files or ()))"
    )
    done = image.run(["python", "-c", probe])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def _chart_commands() -> dict[str, list[str]]:
    """The arguments the chart's containers run with, by subcommand: master, worker, run."""
    objects = render(all_on_values())
    workloads = find(objects, "Deployment") + find(objects, "Job")
    commands = (pod_template(w)["spec"]["containers"][0]["args"] for w in workloads)
    return {args[0]: args[1:] for args in commands}


@pytest.mark.parametrize(
    "subcommand",
    sorted(_chart_commands()),
)
def test_the_charts_commands_run_in_the_image(image: Image, subcommand: str) -> None:
    """Each command the chart runs answers --help in the image and knows every flag it gets."""
    done = image.run([*image.entrypoint, subcommand, "--help"], timeout=60)
    assert done.returncode == 0, done.stderr
    flags = {a for a in _chart_commands()[subcommand] if a.startswith("-")}
    assert {f for f in flags if f not in done.stdout.split()} == set()
