"""Keep the number of request names bounded, and say which pattern makes them many.

``name=f"/item/{item_id}"`` or a URL with an id in it gives every request its own row: the
tables grow with the run, and so does every process that keeps them. A
:class:`NameLimit` admits the first ``limit`` distinct ``(method, name)`` keys it sees;
later new ones are folded into one row per method named :data:`OVERFLOW_NAME`. It also
counts the admitted names per :func:`name_pattern`, so a warning can name the pattern to
pass as ``name=`` (``/item/{n}``).

Pure: no sockets, no clocks.
"""

from __future__ import annotations

import re
from collections import Counter

#: The row that names beyond the limit are counted under, one per method.
OVERFLOW_NAME = "<other names>"
#: Distinct names a worker keeps by default before it folds new ones into OVERFLOW_NAME.
DEFAULT_MAX_NAMES = 10_000
#: Distinct names past which a swarm is told that its names look unbounded.
DEFAULT_WARN_NAMES = 2_000

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOKEN = re.compile(r"[0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")
_HEX = frozenset("0123456789abcdefABCDEF")


def _token(match: re.Match[str]) -> str:
    token = match.group()
    if token.isdigit():
        return "{n}"
    if len(token) >= 8 and set(token) <= _HEX and not token.isalpha():
        return "{id}"  # a hash or an object id: hex with digits in it
    return _DIGITS.sub("{n}", token)


def name_pattern(name: str) -> str:
    """Return the shape of a request name: ``/item/42`` gives ``/item/{n}``.

    UUIDs and hex ids of 8 or more characters (with a digit in them) become ``{id}``, other
    runs of digits ``{n}``; everything else is kept. Names with the same pattern are
    usually one endpoint, and the pattern is what to pass as ``name=``.
    """
    return _TOKEN.sub(_token, _UUID.sub("{id}", name))


class NameLimit:
    """Admit at most ``limit`` distinct ``(method, name)`` keys; fold later new ones.

    ``folded`` counts the requests folded since the last :meth:`take_folded`; ``patterns``
    counts admitted names per :func:`name_pattern` (bounded, since admitted names are).
    """

    def __init__(self, limit: int = DEFAULT_MAX_NAMES) -> None:
        self.limit = limit
        self.seen: set[tuple[str, str]] = set()
        self.patterns: Counter[str] = Counter()
        self.folded = 0
        self.folded_total = 0

    @property
    def distinct(self) -> int:
        """How many distinct keys were admitted so far."""
        return len(self.seen)

    def admit(self, method: str, name: str) -> str:
        """Return ``name`` if it is known or there is room for it, else OVERFLOW_NAME."""
        key = (method, name)
        if key in self.seen:
            return name
        if len(self.seen) < self.limit and name != OVERFLOW_NAME:
            self.seen.add(key)
            self.patterns[name_pattern(name)] += 1
            return name
        self.folded += 1
        self.folded_total += 1
        return OVERFLOW_NAME

    def take_folded(self) -> int:
        """Return the requests folded since the last call, and start counting anew."""
        folded, self.folded = self.folded, 0
        return folded

    def top_pattern(self) -> str | None:
        """Return the pattern shared by the most admitted names (None before any name)."""
        if not self.patterns:
            return None
        return self.patterns.most_common(1)[0][0]
