"""Find the bottleneck, public as ``nbs.analysis``: capacity, knee, comparisons.

The analysis lives in :mod:`notebookswarm.notebook.analysis`; this module is its public face.
"""

from __future__ import annotations

from notebookswarm.notebook.analysis import (
    Capacity,
    Comparison,
    capacity,
    compare,
    degradation,
)

__all__ = ["Capacity", "Comparison", "capacity", "compare", "degradation"]
