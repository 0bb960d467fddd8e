"""The embedded demo target, public as ``nbs.demo``: ``start_target()`` and its settings.

The site lives in :mod:`notebookswarm._demo`; this module is its public face and the
terminal entry point ``python -m notebookswarm.demo --port 8080``.
"""

from __future__ import annotations

from notebookswarm._demo.target import ROUTES, DemoTarget, Settings, main, start_target

__all__ = ["ROUTES", "DemoTarget", "Settings", "main", "start_target"]

if __name__ == "__main__":
    raise SystemExit(main())
