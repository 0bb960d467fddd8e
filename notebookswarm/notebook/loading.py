"""Turn user classes or a locustfile into the ``LoadCode`` command a master ships to workers.

The packaging itself (cloudpickle for classes defined here, source for files) lives in
:mod:`notebookswarm.users.code`; this module wraps its result in the typed message, since
the user API knows nothing of the wire. A file is loaded once, here, through the Locust
compatibility layer: its master-side listeners (``test_start``, ``worker_report``...) run
in this process, so what it loaded is kept beside the command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notebookswarm.cluster import protocol
from notebookswarm.errors import ConfigError
from notebookswarm.users.code import load_args_for_classes, load_args_for_file
from notebookswarm.users.compat.loading import LoadedCode, load_locustfile


@dataclass(frozen=True)
class UserCode:
    """The command that loads user code, and for a file what loading it here produced."""

    command: protocol.LoadCode
    loaded: LoadedCode | None = None


def load_user_code(
    users: Sequence[Any],
    host: str | None,
    options: Mapping[str, Any],
    names: Sequence[str] | None = None,
) -> UserCode:
    """Load ``users`` (classes, or one path to a ``.py`` file, of which only ``names``)."""
    if len(users) == 1 and isinstance(users[0], str | Path):
        loaded = load_locustfile(users[0], names)
        args = load_args_for_file(users[0], names, host, options, loaded=loaded.classes)
        return UserCode(_message(args), loaded)
    if not users:
        raise ConfigError("no user classes given: Swarm(MyUser, host=...) or Swarm('users.py')")
    if names:
        raise ConfigError("user_classes= picks classes of a file: pass the classes themselves")
    return UserCode(_message(load_args_for_classes(users, host, options)))


def load_code_for_file(
    path: str | Path, host: str | None, options: Mapping[str, Any]
) -> protocol.LoadCode:
    """Return the command that loads the user classes of the file at ``path``."""
    return load_user_code([path], host, options).command


def _message(args: Mapping[str, Any]) -> protocol.LoadCode:
    return protocol.LoadCode(
        payload=args["payload"],
        fmt=args["fmt"],
        classes=[protocol.ClassSpec(**spec) for spec in args["classes"]],
        host=args["host"],
        options=dict(args["options"]),
    )
