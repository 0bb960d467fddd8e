"""What mybinder.org installs is enough to run the quickstart notebook, on a Python the
package supports."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

#: What repo2docker builds with when nothing in binder/ names a Python version (its
#: ``CondaBuildPack.major_pythons["3"]``, 3.10 since repo2docker 2023; it warns that this
#: default "will change in the future", which is why we pin rather than rely on it).
REPO2DOCKER_DEFAULT_PYTHON = "3.10"

RUN_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=False,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
print("executed", len(nb.cells), "cells")
"""


def repo2docker_python(binder: Path) -> str:
    """Return the ``X.Y`` Python that repo2docker would build ``binder`` with.

    repo2docker takes the first build pack that claims the folder: environment.yml (conda)
    names the Python among its dependencies (``python=3.11``); otherwise runtime.txt says
    ``python-3.11``; otherwise, and for ``python-3`` alone, its default.
    """
    for unmodelled in ("Dockerfile", "Pipfile", "Pipfile.lock", "pyproject.toml"):
        if (binder / unmodelled).exists():
            raise NotImplementedError(f"binder/{unmodelled}: extend repo2docker_python for it")
    version = ""
    environment = binder / "environment.yml"
    runtime = binder / "runtime.txt"
    if environment.exists():
        for dependency in (yaml.safe_load(environment.read_text()) or {}).get("dependencies", []):
            match = (
                re.match(r"python\s*=+\s*([\d.]*)", dependency)
                if isinstance(dependency, str)
                else None
            )
            if match:
                version = match.group(1)
                break
    elif runtime.exists() and runtime.read_text().strip().startswith("python-"):
        version = runtime.read_text().strip().split("-", 1)[1]
    parts = version.split(".")
    if len(parts) < 2:  # nothing named, or a major version alone
        return REPO2DOCKER_DEFAULT_PYTHON
    return ".".join(parts[:2])


def check_binder_python(binder: Path) -> str:
    """Return the Python repo2docker picks for ``binder``; fail if the package refuses it."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    python = repo2docker_python(binder)
    assert Version(python) in SpecifierSet(requires), (
        f"repo2docker would build binder/ with Python {python}, outside requires-python "
        f"{requires!r}: pin a supported one in binder/runtime.txt (python-X.Y)"
    )
    return python


def test_binder_pins_a_supported_python() -> None:
    """repo2docker builds our binder/ with Python 3.11, which requires-python accepts."""
    assert check_binder_python(ROOT / "binder") == "3.11"


def test_binder_without_runtime_txt_is_refused(tmp_path: Path) -> None:
    """Without runtime.txt repo2docker's default Python (3.10) is outside requires-python,
    and the check says so."""
    binder = tmp_path / "binder"
    shutil.copytree(ROOT / "binder", binder)
    (binder / "runtime.txt").unlink()
    with pytest.raises(AssertionError, match=r"Python 3\.10, outside requires-python"):
        check_binder_python(binder)


@pytest.mark.parametrize(
    ("files", "python"),
    [
        ({"runtime.txt": "python-3.12\n"}, "3.12"),
        ({"runtime.txt": "python-3.11.4"}, "3.11"),
        ({"runtime.txt": "python-3"}, REPO2DOCKER_DEFAULT_PYTHON),
        ({"runtime.txt": "r-4.3-2024-01-01"}, REPO2DOCKER_DEFAULT_PYTHON),
        ({"requirements.txt": "pandas\n"}, REPO2DOCKER_DEFAULT_PYTHON),
        ({"environment.yml": "dependencies:\n  - python=3.13\n  - pip\n"}, "3.13"),
        ({"environment.yml": "dependencies:\n  - pip\n", "runtime.txt": "python-3.12"}, "3.10"),
    ],
)
def test_repo2docker_python_follows_repo2docker(
    tmp_path: Path, files: dict[str, str], python: str
) -> None:
    """The version reader picks what repo2docker picks: environment.yml first (runtime.txt is
    then ignored), then runtime.txt, then the default."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert repo2docker_python(tmp_path) == python


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in requirements}


def test_binder_requirements_match_the_package() -> None:
    """binder/requirements.txt lists exactly the package's runtime dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    listed = [line for line in lines if line.strip() and not line.startswith("#")]
    assert _names(listed) == _names(project["dependencies"])


def test_quickstart_runs_in_a_binder_environment(tmp_path: Path) -> None:
    """A fresh venv with binder's requirements and postBuild executes 01-quickstart."""
    env_dir = tmp_path / "binder-env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q"]
    # repo2docker's own environment brings the kernel and JupyterLab; nbclient stands in
    # for the front end here.
    subprocess.run([*pip, "ipykernel", "nbclient"], check=True, timeout=900)
    subprocess.run([*pip, "-r", str(ROOT / "binder" / "requirements.txt")], check=True, timeout=900)
    subprocess.run(
        ["bash", str(ROOT / "binder" / "postBuild")],
        cwd=ROOT,
        check=True,
        timeout=300,
        env={"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin"},
    )
    done = subprocess.run(
        [
            str(python),
            "-c",
            RUN_NOTEBOOK,
            str(ROOT / "notebooks" / "01-quickstart.ipynb"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "executed" in done.stdout
    assert sys.prefix != str(env_dir)
