"""Turn user classes or a locustfile into the ``LoadCode`` command a master ships to workers.

The packaging itself (cloudpickle for classes defined here, source for files) lives in
:mod:`notebookswarm.users.code`; this module wraps its result in the typed message, since
the user API knows nothing of the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from notebookswarm.cluster import protocol
from notebookswarm.errors import ConfigError
from notebookswarm.users.code import load_args_for_classes, load_args_for_file


def load_code(
    users: Sequence[Any], host: str | None, options: Mapping[str, Any]
) -> protocol.LoadCode:
    """Return the command that loads ``users``: classes, or one path to a ``.py`` file."""
    if len(users) == 1 and isinstance(users[0], str | Path):
        return load_code_for_file(users[0], host, options)
    if not users:
        raise ConfigError("no user classes given: Swarm(MyUser, host=...) or Swarm('users.py')")
    return _message(load_args_for_classes(users, host, options))


def load_code_for_file(
    path: str | Path, host: str | None, options: Mapping[str, Any]
) -> protocol.LoadCode:
    """Return the command that loads the user classes of the file at ``path``."""
    return _message(load_args_for_file(path, None, host, options))


def _message(args: Mapping[str, Any]) -> protocol.LoadCode:
    return protocol.LoadCode(
        payload=args["payload"],
        fmt=args["fmt"],
        classes=[protocol.ClassSpec(**spec) for spec in args["classes"]],
        host=args["host"],
        options=dict(args["options"]),
    )
