"""Find the user classes in a locustfile-style Python file or source text."""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path

from notebookswarm.errors import ConfigError
from notebookswarm.users.core import User


def user_classes_in(namespace: dict[str, object]) -> list[type[User]]:
    """Return the concrete User subclasses defined in a module's namespace, in order."""
    return [
        value
        for value in namespace.values()
        if isinstance(value, type) and issubclass(value, User) and not value.abstract
    ]


def load_source(source: str, filename: str, names: Sequence[str] | None = None) -> list[type[User]]:
    """Execute user code and return its user classes (only ``names``, when given)."""
    module = types.ModuleType(Path(filename).stem or "users")
    module.__file__ = filename
    sys.modules.setdefault(module.__name__, module)  # so dataclasses/pickle can find it
    code = compile(source, filename, "exec")
    exec(code, module.__dict__)
    found = user_classes_in(module.__dict__)
    if names:
        by_name = {cls.__name__: cls for cls in found}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(
                f"{filename} defines no user class named {missing}: it defines {sorted(by_name)}"
            )
        found = [by_name[n] for n in names]
    if not found:
        raise ConfigError(f"{filename} defines no user class: subclass HttpUser (or User) in it")
    return found


def load_file(path: str | Path, names: Sequence[str] | None = None) -> list[type[User]]:
    """Load a locustfile-style Python file and return its user classes."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"user file {str(path)!r} does not exist: pass the path of a .py file")
    return load_source(file.read_text(), str(file), names)
