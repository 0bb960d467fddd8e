"""Package user classes for the master to ship to workers.

Classes defined in a notebook cell travel by value (cloudpickle, with the functions and
module-level values they use); classes in a ``.py`` file travel as the file's source. The
class metadata the master needs for dispatch (name, weight, fixed_count) travels beside
the payload as plain data, so the master never unpickles anything.

Tracebacks of user code name the file and line it was written in, on workers too:
cloudpickle would rename every function's file ``<dynamic-code>``, so the pickler here
keeps the real name (a cell's is the kernel's, e.g. ``/tmp/ipykernel_123/456.py``) and the
source lines of those files travel in ``options["sources"]`` for the worker's linecache.
"""

from __future__ import annotations

import io
import linecache
import os
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cloudpickle

from notebookswarm.users.core import User, check_hosts, check_user_classes
from notebookswarm.users.loader import load_file


def _describe(classes: Sequence[type[User]]) -> list[dict[str, Any]]:
    return [{"name": c.__name__, "weight": c.weight, "fixed_count": c.fixed_count} for c in classes]


def _check_unique(classes: Sequence[type[User]]) -> None:
    names = [c.__name__ for c in classes]
    if len(set(names)) != len(names):
        from notebookswarm.errors import ConfigError

        raise ConfigError(f"user class names must be unique in one swarm, got {names}")


#: Source shipped for tracebacks stops at this many characters per payload.
MAX_SOURCE_CHARS = 2_000_000
_PACKAGE = str(Path(__file__).resolve().parent.parent) + os.sep


class _NamedCodePickler(cloudpickle.Pickler):  # type: ignore[misc]  # untyped base
    """cloudpickle, keeping each function's file name and noting which files were used."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.filenames: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.CodeType:
            make, args = self.dispatch_table[types.CodeType](obj)
            self.filenames.add(obj.co_filename)
            # co_filename sits right after the variable names in every CodeType signature
            # cloudpickle writes; checked, so a new layout falls back to its own name.
            position = 10
            if args[position] == "<dynamic-code>":
                args = (*args[:position], obj.co_filename, *args[position + 1 :])
            return make, args
        return super().reducer_override(obj)


def dumps_with_sources(value: Any) -> tuple[bytes, dict[str, str]]:
    """Pickle ``value`` with cloudpickle; return the bytes and the source of its code's files.

    The sources are what ``linecache`` knows here (a notebook cell's text included), so a
    worker can show the line of a traceback; at most ``MAX_SOURCE_CHARS`` in all.
    """
    buffer = io.BytesIO()
    pickler = _NamedCodePickler(buffer)
    pickler.dump(value)
    sources: dict[str, str] = {}
    budget = MAX_SOURCE_CHARS
    for filename in sorted(pickler.filenames):
        if filename.startswith(_PACKAGE):  # workers have notebookswarm's own files
            continue
        text = "".join(linecache.getlines(filename))
        if text and len(text) <= budget:
            sources[filename] = text
            budget -= len(text)
    return buffer.getvalue(), sources


def install_sources(sources: Mapping[str, str]) -> None:
    """Let tracebacks here show lines of code written elsewhere (see dumps_with_sources)."""
    for filename, text in sources.items():
        # mtime None: linecache.checkcache() keeps the entry rather than look for a file.
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)


def load_args_for_classes(
    classes: Sequence[Any], host: str | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the ``load`` command's arguments for classes defined in this process."""
    checked = check_user_classes(classes)
    _check_unique(checked)
    check_hosts(checked, host)
    for cls in checked:
        module = sys.modules.get(cls.__module__)
        # Classes from the user's own files travel by value too, so workers need only
        # notebookswarm installed; notebookswarm's own modules stay references.
        name = cls.__module__
        if module is not None and not name.startswith("notebookswarm") and name != "__main__":
            cloudpickle.register_pickle_by_value(module)
    payload, sources = dumps_with_sources(list(checked))
    return {
        "payload": payload,
        "fmt": "pickle",
        "classes": _describe(checked),
        "host": host,
        "options": {**options, "sources": sources},
    }


def load_args_for_file(
    path: str | Path,
    names: Sequence[str] | None,
    host: str | None,
    options: Mapping[str, Any],
    loaded: Sequence[type[User]] | None = None,
) -> dict[str, Any]:
    """Return the ``load`` command's arguments for the user classes of a ``.py`` file.

    ``loaded``: the classes, if the caller has loaded the file already (it is not run twice).
    """
    classes = check_user_classes(load_file(path, names) if loaded is None else loaded)
    _check_unique(classes)
    check_hosts(classes, host)
    source = Path(path).read_bytes()
    return {
        "payload": source,
        "fmt": "source",
        "classes": _describe(classes),
        "host": host,
        # The absolute path: a worker's tracebacks name the file wherever it runs.
        "options": {**options, "filename": str(Path(path).resolve())},
    }
