"""Usable CPUs: the cgroup quota and the affinity mask, parsed from text and read for real."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from notebookswarm.cluster.capacity import (
    cgroup_cpu_dirs,
    cpus_from,
    quota_from_cfs,
    quota_from_cpu_max,
)

from fresh import python_output

# A host on cgroup v2 (systemd): the process sits two levels below the mount's root.
V2_CGROUP = "0::/user.slice/user-1000.slice/session-3.scope\n"
V2_MOUNTINFO = (
    "24 30 0:22 / /sys/fs/proc rw,nosuid - proc proc rw\n"
    "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
)
# Docker on cgroup v1 without a cgroup namespace: the mount's root is the container's own.
V1_CGROUP = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
V1_MOUNTINFO = (
    "700 690 0:60 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:20 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "701 690 0:61 /docker/abc /sys/fs/cgroup/memory ro,nosuid master:21 - cgroup cgroup "
    "rw,memory\n"
)


def test_cpu_max_with_a_quota_is_quota_over_period() -> None:
    """cgroup v2 "150000 100000" allows 1.5 CPUs."""
    assert quota_from_cpu_max("150000 100000\n") == 1.5


def test_cpu_max_without_a_quota_is_no_limit() -> None:
    """cgroup v2 "max 100000" sets no limit."""
    assert quota_from_cpu_max("max 100000\n") is None


@pytest.mark.parametrize("text", ["", "150000", "0 100000", "150000 0", "a b", "1 2 3"])
def test_a_malformed_cpu_max_is_refused_with_its_text(text: str) -> None:
    """A cpu.max the kernel would never write is an error naming the text."""
    with pytest.raises(ValueError):
        quota_from_cpu_max(text)


def test_cfs_quota_minus_one_is_no_limit_and_a_quota_is_a_ratio() -> None:
    """cgroup v1: -1 sets no limit; 50000 per 100000 allows half a CPU."""
    assert quota_from_cfs("-1\n", "100000\n") is None
    assert quota_from_cfs("50000\n", "100000\n") == 0.5


def test_without_limits_the_affinity_count_is_the_answer() -> None:
    """No quota anywhere: the CPUs in the affinity mask."""
    assert cpus_from([], 8) == 8.0
    assert cpus_from(["max 100000"], 4, [("-1", "100000")]) == 4.0


def test_the_smallest_limit_wins() -> None:
    """Quota below affinity gives the quota; affinity below quota gives the affinity."""
    assert cpus_from(["150000 100000"], 64) == 1.5
    assert cpus_from(["400000 100000"], 2) == 2.0
    assert cpus_from([], 16, [("250000", "100000")]) == 2.5


def test_a_parents_quota_binds_its_child() -> None:
    """An unlimited cgroup inside a 2-CPU parent gets 2 CPUs."""
    assert cpus_from(["max 100000", "200000 100000"], 8) == 2.0


def test_an_empty_affinity_mask_is_an_error() -> None:
    """Zero CPUs in the mask cannot be: refuse it rather than start no worker."""
    with pytest.raises(ValueError):
        cpus_from([], 0)


def test_v2_folders_walk_from_the_process_cgroup_up_to_the_mount() -> None:
    """cgroup v2: the process's folder first, then each parent, the mount point last."""
    v2, v1 = cgroup_cpu_dirs(V2_CGROUP, V2_MOUNTINFO)
    base = Path("/sys/fs/cgroup")
    assert v2 == [
        base / "user.slice/user-1000.slice/session-3.scope",
        base / "user.slice/user-1000.slice",
        base / "user.slice",
        base,
    ]
    assert v1 == []


def test_v1_folder_takes_the_mount_root_off_the_path() -> None:
    """cgroup v1 in a container: its cpu cgroup is the mount point itself."""
    v2, v1 = cgroup_cpu_dirs(V1_CGROUP, V1_MOUNTINFO)
    assert v2 == []
    assert v1 == [Path("/sys/fs/cgroup/cpu,cpuacct")]


def test_a_cgroup_namespace_sees_only_the_mount_point() -> None:
    """Inside a cgroup namespace the process is at "/": only the mount's own cpu.max counts."""
    v2, _ = cgroup_cpu_dirs("0::/\n", V2_MOUNTINFO)
    assert v2 == [Path("/sys/fs/cgroup")]


def _usable_cpus_in_subprocess(prelude: str) -> tuple[float, int]:
    """Run ``prelude`` in a new interpreter, then return its usable_cpus and default_workers."""
    code = (
        "import os\n"
        f"{prelude}\n"
        "from notebookswarm.cluster.capacity import usable_cpus, default_workers\n"
        "print(usable_cpus(), default_workers())\n"
    )
    out = python_output(code).split()
    return float(out[0]), int(out[1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity call here")
def test_an_affinity_mask_of_one_cpu_counts_one() -> None:
    """A process pinned to CPU 0 may use 1.0 CPU, and default_workers agrees."""
    assert _usable_cpus_in_subprocess("os.sched_setaffinity(0, {0})") == (1.0, 1)


V1_CPU = Path("/sys/fs/cgroup/cpu")


@pytest.fixture
def v1_cgroup() -> Iterator[Path]:
    """A fresh cgroup v1 cpu folder (root only), removed after the test."""
    if not (V1_CPU / "cpu.cfs_quota_us").is_file() or not os.access(V1_CPU, os.W_OK):
        pytest.skip("needs root and a cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu")
    folder = V1_CPU / f"nbs-test-{os.getpid()}"
    folder.mkdir()
    try:
        yield folder
    finally:
        folder.rmdir()  # the test's process has exited, so the cgroup is empty


def test_a_cgroup_quota_of_one_and_a_half_counts_one_and_a_half(v1_cgroup: Path) -> None:
    """A process moved into a cgroup with a 150 ms per 100 ms quota may use 1.5 CPUs."""
    (v1_cgroup / "cpu.cfs_period_us").write_text("100000")
    (v1_cgroup / "cpu.cfs_quota_us").write_text("150000")
    join = f"open({str(v1_cgroup / 'cgroup.procs')!r}, 'w').write(str(os.getpid()))"
    affinity = len(os.sched_getaffinity(0))
    assert _usable_cpus_in_subprocess(join) == (min(1.5, affinity), 1)
