"""The one place the package's version is written.

setuptools reads it for the distribution's metadata (``[tool.setuptools.dynamic]`` in
pyproject.toml), ``notebookswarm.__version__`` re-exports it, and workers send it in their
hello so a master refuses a worker of another version with a message that says what to
install. Bump it here and in CHANGELOG.md together.
"""

from __future__ import annotations

__version__ = "0.2.0"
