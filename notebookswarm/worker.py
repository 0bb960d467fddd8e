"""Worker process entry point: ``python -m notebookswarm.worker ...``.

This is the one place that monkey-patches: it does so before importing anything else,
so sockets, sleeps and locks in user code and in requests become cooperative. Nothing
on the notebook side imports this module.
"""

from __future__ import annotations

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()

    from notebookswarm.worker_process import main

    raise SystemExit(main())
