"""Check values against dataclass annotations: the table-driven validator under the protocol.

:func:`compile_spec` turns one annotation (``int``, ``NonNegativeInt``, ``list[str]``,
``dict[str, Any]``, ``Literal[...]``, unions, nested records) into a check that returns the
value (numbers normalised, records converted between dataclass and map) or raises
:class:`Invalid` naming the path and what was expected. :func:`build_schemas` reads every
field of every message class once. The messages themselves live in
:mod:`notebookswarm.cluster.protocol`; nothing here knows any of them.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints


@dataclass(frozen=True)
class AtLeast:
    """A bound on an annotated number: ``value >= bound``, or ``> bound`` when strict."""

    bound: float
    strict: bool = False

    def admits(self, value: float) -> bool:
        return value > self.bound if self.strict else value >= self.bound

    def __str__(self) -> str:
        return f"{'>' if self.strict else '>='} {self.bound:g}"


class Invalid(Exception):
    """A value that does not fit its spec; containers prepend their part of the path."""

    def __init__(self, expected: str, value: object) -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = describe(value)
        self.path: list[str] = []

    def explain(self, where: str) -> str:
        return f"{where}{''.join(self.path)}: expected {self.expected}, got {self.got}"


Check = Callable[[object], object]
"""Return the value (numbers normalised) if it fits, else raise ``Invalid``."""


def show(value: object, limit: int = 40) -> str:
    """Repr a value from the network without flooding a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: object) -> str:
    if value is None or isinstance(value, bool | int | float | str):
        return f"{type(value).__name__} {show(value)}"
    return type(value).__name__


def _name(spec: object) -> str:
    """Say in words what a spec accepts, for error messages."""
    origin, args = get_origin(spec), get_args(spec)
    if origin is Annotated:
        return " ".join([_name(args[0]), *map(str, args[1:])])
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (Union, types.UnionType):
        return " or ".join(map(_name, args))
    if origin is list:
        return f"list of {_name(args[0])}"
    if origin is dict:
        return f"map of {_name(args[0])} to {_name(args[1])}"
    if spec is type(None):
        return "nil"
    if spec is Any:
        return "anything"
    if spec is float:
        return "finite float"
    return getattr(spec, "__name__", str(spec))


def compile_spec(spec: object) -> Check:
    """Build the check for one annotation; raise TypeError for a type frames cannot carry."""
    origin, args = get_origin(spec), get_args(spec)
    if origin is Annotated:
        return _bounded(compile_spec(args[0]), args[1:], _name(spec))
    if origin is Literal:
        return _one_of(args, _name(spec))
    if origin in (Union, types.UnionType):
        return _first_fit([compile_spec(arg) for arg in args], _name(spec))
    if origin is list:
        return _list_of(compile_spec(args[0]), _name(spec))
    if origin is dict:
        return _map_of(compile_spec(args[0]), compile_spec(args[1]), _name(spec))
    if spec is Any:
        return _anything
    if spec is type(None):
        return _nil
    if spec is float:
        return _finite_float
    if isinstance(spec, type) and spec in (str, int, bool, bytes):
        return _exactly(spec)
    if isinstance(spec, type) and dataclasses.is_dataclass(spec) and not hasattr(spec, "KIND"):
        return _record(spec)
    raise TypeError(
        f"protocol fields cannot be {spec!r}: "
        "see 'To add a message' in notebookswarm.cluster.protocol"
    )


def _record(cls: type[Any]) -> Check:
    """A nested record: a dataclass on our side, a map of its fields on the wire."""
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.name: compile_spec(hints[f.name]) for f in dataclasses.fields(cls)}
    expected = f"{cls.__name__} map"

    def check(value: object) -> object:
        if type(value) is cls:  # encoding
            return {name: inside(f".{name}", c, getattr(value, name)) for name, c in fields.items()}
        if type(value) is dict and value.keys() == fields.keys():  # decoding
            return cls(**{name: inside(f".{name}", c, value[name]) for name, c in fields.items()})
        raise Invalid(expected, value)

    return check


def _anything(value: object) -> object:
    return value


def _nil(value: object) -> object:
    if value is None:
        return value
    raise Invalid("nil", value)


def _finite_float(value: object) -> object:
    # Python code may well write Stop(timeout=5); msgpack then carries an int.
    if type(value) is int and abs(value) <= 2**53:
        value = float(value)
    if type(value) is float and math.isfinite(value):
        return value
    raise Invalid("finite float", value)


def _exactly(kind: type) -> Check:
    # Exact types: bool must not pass for int, and nothing exotic reaches msgpack.
    def check(value: object) -> object:
        if type(value) is kind:
            return value
        raise Invalid(kind.__name__, value)

    return check


def _bounded(inner: Check, marks: tuple[Any, ...], expected: str) -> Check:
    def check(value: object) -> object:
        try:
            value = inner(value)
        except Invalid:
            raise Invalid(expected, value) from None  # say the bound too, not just the type
        if all(mark.admits(value) for mark in marks):
            return value
        raise Invalid(expected, value)

    return check


def _one_of(allowed: tuple[Any, ...], expected: str) -> Check:
    def check(value: object) -> object:
        if any(type(value) is type(item) and value == item for item in allowed):
            return value
        raise Invalid(expected, value)

    return check


def _first_fit(options: list[Check], expected: str) -> Check:
    def check(value: object) -> object:
        for option in options:
            try:
                return option(value)
            except Invalid:
                continue
        raise Invalid(expected, value)

    return check


def _list_of(item: Check, expected: str) -> Check:
    def check(value: object) -> object:
        if type(value) is not list:
            raise Invalid(expected, value)
        return [inside(f"[{index}]", item, element) for index, element in enumerate(value)]

    return check


def _map_of(key: Check, item: Check, expected: str) -> Check:
    def check(value: object) -> object:
        if type(value) is not dict:
            raise Invalid(expected, value)
        return {
            inside(f" key {show(name)}", key, name): inside(f"[{show(name)}]", item, element)
            for name, element in value.items()
        }

    return check


def inside(where: str, check: Check, value: object) -> object:
    """Check an element of a container, naming where it sits if it does not fit."""
    try:
        return check(value)
    except Invalid as invalid:
        invalid.path.insert(0, where)
        raise


@dataclass(frozen=True)
class Schema:
    build: Callable[..., Any]
    fields: dict[str, Check]


def build_schemas(types: tuple[type[Any], ...]) -> dict[str, Schema]:
    """Read every message's schema from its annotations (call once, at import)."""
    table: dict[str, Schema] = {}
    for cls in types:
        if cls.KIND in table:
            raise TypeError(f"{cls.__name__}.KIND {cls.KIND!r} is already taken")
        hints = get_type_hints(cls, include_extras=True)
        names = [field.name for field in dataclasses.fields(cls)]
        if {"v", "k"} & set(names):
            raise TypeError(f"{cls.__name__}: 'v' and 'k' are reserved for the frame header")
        table[cls.KIND] = Schema(cls, {name: compile_spec(hints[name]) for name in names})
    return table
