"""The embedded demo target behind :mod:`notebookswarm.demo` (private).

Layout (imports only go down):

    settings   the tunable knobs, validated: pure, shared by the notebook and the server
    contest    the contest's data and what each endpoint answers: pure
    database   a simulated database: a bounded, resizable connection pool, per-query
               latency with jitter and an optional TTL cache (gevent)
    server     the WSGI site, /admin and /metrics, stalls, the parent watchdog (gevent)
    __main__   ``python -m notebookswarm._demo``: the subprocess ``start_target`` runs

Only ``database``, ``server`` and ``__main__`` import gevent, and nothing on the notebook
side imports them.
"""
