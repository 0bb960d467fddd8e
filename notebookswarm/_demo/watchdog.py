"""The stack's watchdog: when its owner dies, end the stack's processes and remove its files.

``python -m notebookswarm._demo.watchdog DIRECTORY`` reads lines from stdin, a pipe whose
only writer is the owning Python process:

    group PGID SIGNAL   a process group to end with SIGNAL (then SIGKILL after a grace)
    forget PGID         that group was ended by its owner
    done                the owner cleaned up itself: exit without touching anything

End of file without ``done`` means the owner is gone (a killed kernel, ``os._exit``):
the watchdog signals every group it still knows, waits for them, kills what is left and
removes DIRECTORY. A pipe's end of file is exact, where polling a parent pid is racy, and
it works whatever thread of the owner started the stack (``PR_SET_PDEATHSIG`` follows the
thread, so a stack started from a worker thread would die with that thread).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time

#: Seconds a group has to end after its first signal before it is killed.
GRACE_S = 5.0


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_up(groups: dict[int, int], directory: str) -> None:
    """Signal each group, wait up to the grace, kill the rest, remove ``directory``."""
    for pgid, signum in groups.items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)
    deadline = time.monotonic() + GRACE_S
    while any(_alive(pgid) for pgid in groups) and time.monotonic() < deadline:
        time.sleep(0.05)  # the groups are not our children: polling is the only wait
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str]) -> int:
    """Watch stdin until the owner says done or disappears."""
    directory = argv[0]
    groups: dict[int, int] = {}
    for line in sys.stdin:
        words = line.split()
        if words == ["done"]:
            return 0
        if len(words) == 3 and words[0] == "group":
            groups[int(words[1])] = int(words[2])
        elif len(words) == 2 and words[0] == "forget":
            groups.pop(int(words[1]), None)
    clean_up(groups, directory)
    return 0


if __name__ == "__main__":
    # A Ctrl-C meant for the notebook must not stop the one process that cleans up after it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(main(sys.argv[1:]))
