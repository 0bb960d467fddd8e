"""The floor plan's import contracts hold, and the checker catches an import across the wall."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(project: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on ``project`` (its pyproject.toml and notebookswarm/)."""
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, to break on purpose."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        ROOT / "notebookswarm", tmp_path / "notebookswarm", ignore=shutil.ignore_patterns("*.pyc")
    )
    return tmp_path


def test_the_package_keeps_its_contracts(copy: Path) -> None:
    """The tree as it is keeps every contract."""
    result = lint(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "says"),
    [
        (
            "engine/ramp.py",
            "import notebookswarm.notebook.frames",
            "notebookswarm.engine is not allowed to import notebookswarm.notebook",
        ),
        (
            "notebook/shapes.py",
            "import gevent",
            "notebookswarm.notebook is not allowed to import gevent",
        ),
        (
            "stats/histogram.py",
            "import notebookswarm.users.core",
            "notebookswarm.stats is not allowed to import notebookswarm.users",
        ),
    ],
)
def test_an_import_across_the_wall_breaks_the_lint(
    copy: Path, module: str, line: str, says: str
) -> None:
    """Adding one forbidden import makes the checker fail and name the two sides."""
    path = copy / "notebookswarm" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint(copy)
    assert result.returncode == 1, result.stdout
    assert says in result.stdout
