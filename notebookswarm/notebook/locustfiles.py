"""Find a run's locustfiles as Locust's ``-f`` does, and load their user classes.

``-f`` takes a ``.py`` file, a module name, a folder (every ``.py`` file under it but
private ones and ``locust.py``), or a comma-separated list of these.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from notebookswarm.errors import ConfigError


def locustfiles(spec: str) -> list[Path]:
    """Resolve ``-f``: a .py file, a module name, a folder (every .py file in it), or a
    comma-separated list of these; raise ConfigError naming what could not be found."""
    found: list[Path] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item == "-" or item.startswith(("http://", "https://")):
            raise ConfigError(
                f"-f {item!r}: locustfiles are read from disk here (the master ships them to "
                "workers): download it first, then pass its path"
            )
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(f for f in path.rglob("*.py") if _is_locustfile(f))
            if not files:
                raise ConfigError(f"folder {item!r} holds no locustfile (.py file)")
            found += files
        elif path.is_file():
            found.append(path)
        elif path.suffix != ".py" and path.with_name(path.name + ".py").is_file():
            found.append(path.with_name(path.name + ".py"))
        else:
            found.append(_module_file(item))
    if not found:
        raise ConfigError(f"-f {spec!r} names no locustfile")
    return found


def _is_locustfile(path: Path) -> bool:
    # As Locust: skip private modules (``__init__.py``, ``_helpers.py``) and ``locust.py``.
    return not path.name.startswith("_") and path.name != "locust.py"


def _module_file(name: str) -> Path:
    origin = None
    if name.replace(".", "").replace("_", "").isalnum():
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
    if origin is None or not origin.endswith(".py"):
        raise ConfigError(
            f"could not find {name!r}: pass a .py file, a folder of them, or a module name"
        )
    return Path(origin)


def load_classes(files: Sequence[Path], names: Sequence[str]) -> list[type[Any]]:
    """Load the user classes of every file here, only ``names`` when given, in that order."""
    from notebookswarm.users.loader import load_file

    found: dict[str, type[Any]] = {}
    for file in files:
        for cls in load_file(file):
            found.setdefault(cls.__name__, cls)
    if not names:
        return list(found.values())
    missing = [n for n in names if n not in found]
    if missing:
        raise ConfigError(
            f"no user class named {', '.join(missing)}: the locustfiles define {', '.join(found)}"
        )
    return [found[n] for n in names]
