"""Master process entry point: ``python -m notebookswarm.master ...``.

The master itself lives in :mod:`notebookswarm.cluster.master`; this module keeps the
documented command working. It needs no gevent.
"""

from __future__ import annotations

from notebookswarm.cluster.master import main

if __name__ == "__main__":
    raise SystemExit(main())
