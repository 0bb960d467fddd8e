"""Find the user classes in a locustfile-style Python file or source text.

Loading goes through the Locust compatibility layer (:mod:`notebookswarm.users.compat`),
so a file that says ``from locust import HttpUser`` loads unchanged; after loading no
``locust`` module is left behind in this process.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from notebookswarm.users.compat.loading import load_code, load_locustfile, user_classes_in
from notebookswarm.users.core import User

__all__ = ["load_file", "load_source", "user_classes_in"]


def load_source(source: str, filename: str, names: Sequence[str] | None = None) -> list[type[User]]:
    """Execute user code and return its user classes (only ``names``, when given)."""
    return load_code(source, filename, names).classes


def load_file(path: str | Path, names: Sequence[str] | None = None) -> list[type[User]]:
    """Load a locustfile-style Python file and return its user classes."""
    return load_locustfile(path, names).classes
