"""Every notebook in notebooks/ runs top to bottom in a headless kernel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

from notebookswarm._demo.pg import PG_ROOT

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# 05 runs the real stack (PostgreSQL, gunicorn) through four step loads of 30 s.
REAL_STACK = {"05-real-database.ipynb"}
NO_POSTGRES = pytest.mark.skipif(
    not list(PG_ROOT.glob("*/bin/initdb")), reason="no PostgreSQL server: run `make db-deps`"
)


def _case(path: Path) -> Any:
    if path.name in REAL_STACK:
        return pytest.param(path, id=path.name, marks=[NO_POSTGRES, pytest.mark.timeout(360)])
    return pytest.param(path, id=path.name, marks=pytest.mark.timeout(120))


@pytest.mark.parametrize("path", [_case(p) for p in NOTEBOOKS])
def test_notebook_runs_headless(path: Path, tmp_path: Path) -> None:
    """The notebook executes without an error (in under two minutes; the real stack's in
    under six), its outputs stripped in the repository."""
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code"), (
        f"{path.name} is committed with outputs: clear them before committing"
    )
    client = nbclient.NotebookClient(
        notebook,
        timeout=110,
        kernel_name="python3",
        store_widget_state=False,  # else a FigureWidget stores its 5 MB bundle
        resources={"metadata": {"path": str(tmp_path)}},  # files a notebook writes go here
    )
    client.execute()
