"""Every notebook in notebooks/ runs top to bottom in a headless kernel."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_headless(path: Path, tmp_path: Path) -> None:
    """The notebook executes without an error in under two minutes, its outputs stripped
    in the repository."""
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
