"""The documentation site builds with warnings as errors, and documents every public name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import notebookswarm

ROOT = Path(__file__).resolve().parent.parent
API_PAGE = ROOT / "docs" / "api.md"
#: Public modules the API page documents beside the names of ``notebookswarm.__all__``.
PUBLIC_MODULES = {"analysis", "demo", "testing"}


@dataclass
class Build:
    returncode: int
    output: str
    site: Path


def build_site(root: Path, site: Path) -> Build:
    """Run ``mkdocs build --strict`` on the mkdocs.yml in ``root``, as ``make docs`` does."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner, not a warning
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Build(done.returncode, done.stdout + done.stderr, site)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """The repository's site, built once for the tests of this module."""
    return build_site(ROOT, tmp_path_factory.mktemp("site") / "site")


def documented_names() -> list[str]:
    """The ``notebookswarm.X`` names that docs/api.md has a ``:::`` block for."""
    return re.findall(r"^::: notebookswarm\.(\w+)\s*$", API_PAGE.read_text(), flags=re.M)


def test_site_builds_strictly(site: Build) -> None:
    """``mkdocs build --strict`` succeeds: no broken link, no unresolved API name."""
    assert site.returncode == 0, site.output[-4000:]


def test_api_page_documents_exactly_the_public_names() -> None:
    """docs/api.md has one ``:::`` block per name in ``notebookswarm.__all__``, and no others
    besides the public modules."""
    names = documented_names()
    assert len(names) == len(set(names)), "a name is documented twice in docs/api.md"
    missing = set(notebookswarm.__all__) - set(names)
    extra = set(names) - set(notebookswarm.__all__) - PUBLIC_MODULES
    assert not missing, f"add '::: notebookswarm.NAME' to docs/api.md for {sorted(missing)}"
    assert not extra, f"docs/api.md documents names outside __all__: {sorted(extra)}"
    assert set(names) >= PUBLIC_MODULES


def test_api_page_renders_every_public_name(site: Build) -> None:
    """The built API page has a heading for each public name, read from its docstring."""
    assert site.returncode == 0, site.output[-4000:]
    page = (site.site / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="notebookswarm\.(\w+)"', page))
    assert set(notebookswarm.__all__) | PUBLIC_MODULES <= anchors
    # A class's docstring made it onto the page, not only its name.
    first_line = (notebookswarm.Swarm.__doc__ or "").strip().splitlines()[0]
    assert first_line.split(":")[0] in page


def test_install_page_explains_every_core_dependency() -> None:
    """docs/install.md's table names each of the core dependencies and who needs it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    page = (ROOT / "docs" / "install.md").read_text().lower()
    rows = set()
    for line in page.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            rows.update(name.strip() for name in line.split("|")[1].split(","))
    assert core <= rows, f"add a row to docs/install.md for {sorted(core - rows)}"


def test_every_notebook_is_a_page(site: Build) -> None:
    """Each tutorial notebook in notebooks/ is rendered as a page of the site."""
    assert site.returncode == 0, site.output[-4000:]
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        page = site.site / "notebooks" / path.stem / "index.html"
        assert page.is_file(), f"{path.name} has no page"
        assert "jupyter-wrapper" in page.read_text()  # rendered by mkdocs-jupyter


def test_a_broken_internal_link_fails_the_build(tmp_path: Path) -> None:
    """A page linking to a page that does not exist fails the strict build, naming the link."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("mkdocs.yml", "CHANGELOG.md"):
        shutil.copy(ROOT / name, copy / name)
    for name in ("docs", "notebooks", "tools", "notebookswarm"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "docs" / "install.md").open("a") as page:
        page.write("\nSee [the missing chapter](no-such-page.md).\n")
    build = build_site(copy, tmp_path / "site")
    assert build.returncode != 0
    assert "no-such-page.md" in build.output
