"""What mybinder.org installs is enough to run the quickstart notebook."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUN_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=False,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
print("executed", len(nb.cells), "cells")
"""


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
