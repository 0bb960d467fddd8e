"""Package user classes for the master to ship to workers.

Classes defined in a notebook cell travel by value (cloudpickle, with the functions and
module-level values they use); classes in a ``.py`` file travel as the file's source. The
class metadata the master needs for dispatch (name, weight, fixed_count) travels beside
the payload as plain data, so the master never unpickles anything.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cloudpickle

from notebookswarm.users.core import User, check_user_classes
from notebookswarm.users.loader import load_file


def _describe(classes: Sequence[type[User]]) -> list[dict[str, Any]]:
    return [{"name": c.__name__, "weight": c.weight, "fixed_count": c.fixed_count} for c in classes]


def _check_unique(classes: Sequence[type[User]]) -> None:
    names = [c.__name__ for c in classes]
    if len(set(names)) != len(names):
        from notebookswarm.errors import ConfigError

        raise ConfigError(f"user class names must be unique in one swarm, got {names}")


def load_args_for_classes(
    classes: Sequence[Any], host: str | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the ``load`` command's arguments for classes defined in this process."""
    checked = check_user_classes(classes)
    _check_unique(checked)
    for cls in checked:
        module = sys.modules.get(cls.__module__)
        # Classes from the user's own files travel by value too, so workers need only
        # notebookswarm installed; notebookswarm's own modules stay references.
        name = cls.__module__
        if module is not None and not name.startswith("notebookswarm") and name != "__main__":
            cloudpickle.register_pickle_by_value(module)
    payload = cloudpickle.dumps(list(checked))
    return {
        "payload": payload,
        "fmt": "pickle",
        "classes": _describe(checked),
        "host": host,
        "options": dict(options),
    }


def load_args_for_file(
    path: str | Path, names: Sequence[str] | None, host: str | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the ``load`` command's arguments for the user classes of a ``.py`` file."""
    classes = check_user_classes(load_file(path, names))
    _check_unique(classes)
    source = Path(path).read_bytes()
    return {
        "payload": source,
        "fmt": "source",
        "classes": _describe(classes),
        "host": host,
        "options": {**options, "filename": str(path)},
    }
