"""Execute a locustfile with ``locust`` names resolved to ours; keep what it defined.

:func:`load_code` is what every process calls to load user code from source: the
controller (to check the file, find its shape and run its master-side listeners) and each
worker (to run its users and worker-side listeners). It returns a :class:`LoadedCode`:
the user classes, the load's own :class:`Environment` (whose ``events`` hold the
listeners the file registered), and any ``LoadTestShape`` classes.
"""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notebookswarm.errors import ConfigError
from notebookswarm.users.compat.environment import Environment
from notebookswarm.users.compat.names import locust_names
from notebookswarm.users.compat.shape import LoadTestShape, shape_classes_in
from notebookswarm.users.core import User


@dataclass
class LoadedCode:
    """What one load of user code produced."""

    classes: list[type[User]]
    environment: Environment
    shape_classes: list[type[LoadTestShape]] = field(default_factory=list)
    filename: str = "<users>"

    def shape(self) -> LoadTestShape | None:
        """Return an instance of the file's LoadTestShape, or None if it defines none.

        Raises ConfigError when it defines several (Locust asks you to pick one).
        """
        if not self.shape_classes:
            return None
        if len(self.shape_classes) > 1:
            names = sorted(c.__name__ for c in self.shape_classes)
            raise ConfigError(
                f"{self.filename} defines several LoadTestShape classes {names}: keep one"
            )
        shape = self.shape_classes[0]()
        self.environment.shape_class = shape
        return shape


def user_classes_in(namespace: Mapping[str, object]) -> list[type[User]]:
    """Return the concrete User subclasses defined in a module's namespace, in order."""
    return [
        value
        for value in namespace.values()
        if isinstance(value, type) and issubclass(value, User) and not value.abstract
    ]


def load_code(
    source: str,
    filename: str,
    names: Sequence[str] | None = None,
    *,
    keep: bool = False,
    environment: Environment | None = None,
) -> LoadedCode:
    """Execute user code and return what it defined (only the classes ``names``, if given).

    ``locust`` names resolve to notebookswarm's while it runs, and afterwards only if
    ``keep`` (a worker). ``environment`` is the one whose events the file's listeners
    join; a fresh one by default.
    """
    env = environment if environment is not None else Environment()
    module = types.ModuleType(Path(filename).stem or "users")
    module.__file__ = filename
    sys.modules.setdefault(module.__name__, module)  # so dataclasses/pickle can find it
    code = compile(source, filename, "exec")
    with locust_names(env, keep=keep):
        exec(code, module.__dict__)
    found = user_classes_in(module.__dict__)
    env.available_user_classes = {cls.__name__: cls for cls in found}
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
    env.user_classes = list(found)
    shapes = shape_classes_in(module.__dict__)
    env.available_shape_classes = {cls.__name__: cls for cls in shapes}
    return LoadedCode(found, env, shapes, filename)


def load_locustfile(
    path: str | Path,
    names: Sequence[str] | None = None,
    *,
    keep: bool = False,
    environment: Environment | None = None,
) -> LoadedCode:
    """Load a locustfile-style Python file; see :func:`load_code`."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"user file {str(path)!r} does not exist: pass the path of a .py file")
    return load_code(file.read_text(), str(file), names, keep=keep, environment=environment)


def add_custom_arguments(parser: argparse.ArgumentParser, loaded: LoadedCode) -> None:
    """Let the file's ``init_command_line_parser`` listeners add their options to ``parser``.

    The CLI calls this before parsing, so the options appear in ``--help``; then it
    passes the parsed namespace to :func:`set_parsed_options`.
    """
    loaded.environment.events.init_command_line_parser.fire(parser=parser)


def set_parsed_options(loaded: LoadedCode, options: argparse.Namespace | Mapping[str, Any]) -> None:
    """Make ``options`` the file's ``environment.parsed_options`` (a Namespace)."""
    if not isinstance(options, argparse.Namespace):
        options = argparse.Namespace(**dict(options))
    loaded.environment.parsed_options = options


def options_for_workers(options: argparse.Namespace | None) -> dict[str, Any]:
    """Return the parsed options that can travel to workers (plain values only).

    Put the result under ``"parsed_options"`` in the code's load options; each worker's
    ``environment.parsed_options`` is rebuilt from it.
    """
    plain = (str, int, float, bool, type(None))
    out: dict[str, Any] = {}
    for key, value in vars(options or argparse.Namespace()).items():
        if isinstance(value, plain) or (
            isinstance(value, list | tuple) and all(isinstance(v, plain) for v in value)
        ):
            out[key] = list(value) if isinstance(value, tuple) else value
    return out
