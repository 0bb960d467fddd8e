"""Worker process entry point: ``python -m notebookswarm.worker ...``.

This is the one place that monkey-patches: it does so before importing anything else,
so sockets, sleeps and locks in user code and in requests become cooperative. Nothing
on the notebook side imports this module.
"""

from __future__ import annotations

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

    import os
    import sys

    from notebookswarm.engine.node import main

    code = main()
    # Leave at once: the sockets are closed, and nothing at interpreter shutdown (the
    # heartbeat thread, the gevent hub) may keep a worker alive after it was told to go.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
