"""The demo sites, public as ``nbs.demo``: ``start_target()`` and ``start_stack()``.

``start_target()`` starts the embedded contest site (no services needed; its database is
simulated). ``start_stack()`` starts the real one: Debian's PostgreSQL as a throwaway
cluster, a contest schema with data and a gunicorn site with its bottlenecks built in.
Both live in :mod:`notebookswarm._demo`; this module is their public face and the
terminal entry point ``python -m notebookswarm.demo --port 8080``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from notebookswarm._demo.target import ROUTES, DemoTarget, Settings, main, start_target

if TYPE_CHECKING:
    from notebookswarm._demo.stack import Stack, StackError, StackSettings, start_stack

__all__ = [
    "ROUTES",
    "DemoTarget",
    "Settings",
    "Stack",
    "StackError",
    "StackSettings",
    "main",
    "start_stack",
    "start_target",
]

_STACK = frozenset({"Stack", "StackError", "StackSettings", "start_stack"})


def __getattr__(name: str) -> Any:
    # The real stack needs the `stack` extra (psycopg, gunicorn): import it on first use,
    # so `nbs.demo.start_target()` works on a core install.
    if name in _STACK:
        from notebookswarm._demo import stack

        return getattr(stack, name)
    raise AttributeError(f"module 'notebookswarm.demo' has no attribute {name!r}")


if __name__ == "__main__":
    raise SystemExit(main())
