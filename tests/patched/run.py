"""Run the worker-side tests in one gevent-patched interpreter: ``python tests/patched/run.py``.

gevent patches the process before pytest imports anything, as ``python -m
notebookswarm.worker`` does before it imports the engine; then pytest runs this folder.
Arguments go to pytest; without a path among them, the whole folder runs. ``make unit``
runs it after the main suite, which never collects this folder (tests/conftest.py).
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402  (after patching, as in a worker)
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(Path(arg.partition("::")[0]).exists() for arg in args):
        args.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(pytest.main(args))
