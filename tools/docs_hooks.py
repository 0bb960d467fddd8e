"""MkDocs hooks for the documentation site (``hooks:`` in mkdocs.yml).

The tutorial notebooks live in ``notebooks/`` (where JupyterLab, Binder and the test
suite find them) and the changelog at the top of the repository (where people and
package indexes look for it), not under ``docs/``. This hook adds them to the site as
``notebooks/<name>.ipynb`` and ``CHANGELOG.md`` before mkdocs-jupyter looks for notebooks
to render, so one copy of each serves every use; symlinks would do the same but are lost
on checkouts that do not keep them.

The docstrings name things with Sphinx roles (``:class:`Run```); the API pages show the
name as code without the role, as Sphinx would.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
# A role before inline code, as Python-Markdown renders :meth:`x`; "~" keeps the last part.
SPHINX_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):<code>(~?)([^<]*)</code>")


# mkdocs-jupyter turns .ipynb files into pages in its own on_files (default priority 0):
# these must be among the files by then.
@event_priority(100)
def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add every notebook in notebooks/ and CHANGELOG.md to the site's files."""
    paths = [f"notebooks/{p.name}" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
    for path in [*paths, "CHANGELOG.md"]:
        files.append(
            File(
                path,
                src_dir=str(ROOT),
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    return files


def _strip_role(match: re.Match[str]) -> str:
    name = match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)
    return f"<code>{name}</code>"


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Show ``:role:`name``` from a docstring as the name in code, without the role."""
    return SPHINX_ROLE.sub(_strip_role, html)
