"""``python -m notebookswarm._demo``: the demo server process that ``start_target`` runs."""

from __future__ import annotations

from notebookswarm._demo.process import main

raise SystemExit(main())
