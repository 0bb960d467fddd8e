"""How many CPUs this process may really use: the cgroup CPU quota and the affinity mask.

``os.cpu_count()`` counts the host's cores, so a pod limited to 1 CPU on a 64-core node
would start 64 workers and claim 64 cores of capacity. What the kernel will actually
schedule is the smallest of

- the CPUs in the affinity mask (``taskset``, ``cpuset`` cgroups, ``os.sched_setaffinity``);
- every cgroup v2 ``cpu.max`` from the process's cgroup up to the root ("150000 100000" is
  1.5 CPUs, "max 100000" is no limit) — a parent's quota binds its children too;
- the same for cgroup v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, -1 is no limit).

The parsing is pure (:func:`cpus_from`, :func:`cgroup_cpu_dirs`) and tested on strings;
:func:`usable_cpus` only reads the files. It needs no gevent.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

CfsPair = tuple[str, str]


def quota_from_cpu_max(text: str) -> float | None:
    """Return the CPUs a cgroup v2 ``cpu.max`` allows ("150000 100000" -> 1.5); None: no limit."""
    fields = text.split()
    if len(fields) != 2:
        raise ValueError(f"cpu.max holds {text!r}: expected 'QUOTA PERIOD' or 'max PERIOD'")
    quota, period = fields
    if quota == "max":
        return None
    return _ratio(int(quota), int(period), text)


def quota_from_cfs(quota_us: str, period_us: str) -> float | None:
    """Return the CPUs a cgroup v1 CFS quota allows (-1 means no limit -> None)."""
    quota = int(quota_us.strip())
    if quota < 0:
        return None
    return _ratio(quota, int(period_us.strip()), f"{quota_us.strip()}/{period_us.strip()}")


def _ratio(quota: int, period: int, text: str) -> float:
    if quota <= 0 or period <= 0:
        raise ValueError(f"a CPU quota of {text!r}: quota and period must be positive")
    return quota / period


def cpus_from(
    cpu_max: Sequence[str],
    affinity_count: int,
    cfs: Sequence[CfsPair] = (),
) -> float:
    """Return the CPUs usable under these limits: the smallest quota, or the affinity count.

    ``cpu_max`` holds the text of each cgroup v2 ``cpu.max`` on the way from the process's
    cgroup to the root, ``cfs`` each cgroup v1 ``(cfs_quota_us, cfs_period_us)`` pair.
    """
    if affinity_count < 1:
        raise ValueError(f"an affinity mask of {affinity_count} CPUs: expected at least 1")
    limits = [quota_from_cpu_max(text) for text in cpu_max]
    limits += [quota_from_cfs(quota, period) for quota, period in cfs]
    return min([float(affinity_count)] + [limit for limit in limits if limit is not None])


def cgroup_cpu_dirs(proc_cgroup: str, mountinfo: str) -> tuple[list[Path], list[Path]]:
    """Return the cgroup v2 and v1 CPU folders of a process, innermost first, up to the mount.

    ``proc_cgroup`` is the text of ``/proc/self/cgroup``, ``mountinfo`` that of
    ``/proc/self/mountinfo``. A mount's root (not ``/`` inside a container that sees only
    its own subtree) is taken off the cgroup's path before it is joined to the mount point.
    """
    v2_path: str | None = None
    v1_path: str | None = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "cpu" in controllers.split(","):
            v1_path = path
    v2_dirs: list[Path] = []
    v1_dirs: list[Path] = []
    for fstype, root, mount_point, options in _cgroup_mounts(mountinfo):
        if fstype == "cgroup2" and v2_path is not None:
            v2_dirs = _walk_up(mount_point, root, v2_path)
        elif fstype == "cgroup" and v1_path is not None and "cpu" in options:
            v1_dirs = _walk_up(mount_point, root, v1_path)
    return v2_dirs, v1_dirs


def _cgroup_mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """Return (fstype, root, mount point, super options) of each cgroup mount."""
    mounts = []
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] in ("cgroup", "cgroup2"):
            mounts.append((tail[0], fields[3], fields[4], set(tail[2].split(","))))
    return mounts


def _walk_up(mount_point: str, root: str, path: str) -> list[Path]:
    """Return the folders from the cgroup's own up to the mount point, innermost first."""
    inside = root == "/" or path == root or path.startswith(root.rstrip("/") + "/")
    # A path outside the mount's root cannot be reached from here: use the mount itself.
    relative = os.path.relpath(path, root) if inside else "."
    base = Path(mount_point)
    here = base / relative if relative != "." else base
    dirs = [here]
    while here != base and base in here.parents:
        here = here.parent
        dirs.append(here)
    return dirs


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _affinity_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # macOS and Windows have no affinity call: count the cores


def usable_cpus() -> float:
    """Return the CPUs this process may use (1.5 in a container limited to 1.5 CPUs)."""
    affinity = _affinity_count()
    proc_cgroup = _read(Path("/proc/self/cgroup"))
    mountinfo = _read(Path("/proc/self/mountinfo"))
    if proc_cgroup is None or mountinfo is None:  # not Linux: no cgroups to honour
        return float(affinity)
    v2_dirs, v1_dirs = cgroup_cpu_dirs(proc_cgroup, mountinfo)
    cpu_max = [text for d in v2_dirs if (text := _read(d / "cpu.max")) is not None]
    cfs: list[CfsPair] = []
    for d in v1_dirs:
        quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            cfs.append((quota, period))
    return cpus_from(cpu_max, affinity, cfs)


def default_workers() -> int:
    """Return how many worker processes ``workers="auto"`` starts: whole usable CPUs, at least 1."""
    return max(1, math.floor(usable_cpus()))
