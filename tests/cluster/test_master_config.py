"""The master's configuration crosses into its process whole, and reaches its workers."""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import zmq

from notebookswarm.cluster import protocol
from notebookswarm.cluster.config import MasterConfig
from notebookswarm.cluster.control import ControlClient
from notebookswarm.cluster.launch import MasterProcess, reap, start_master, start_worker
from notebookswarm.cluster.master import config_from, parse_args
from notebookswarm.errors import ConfigError
from notebookswarm.testing import wait_until

#: Every field away from its default, each to a value a test below can tell apart.
ODD = MasterConfig(
    heartbeat_interval=0.2,
    heartbeat_timeout=4.0,
    master_timeout=6.0,
    controller_timeout=20.0,
    report_interval=3.0,
    update_interval=0.5,
    update_delay=0.2,
    standalone=True,
    saturated_cpu=80.0,
    saturated_beats=4,
    warn_names=500,
    replay_updates=60,
    max_names=3000,
)


def test_the_odd_config_changes_every_field() -> None:
    """ODD differs from the defaults in every field, so the tests below cover each one."""
    defaults = MasterConfig()
    same = [
        f.name
        for f in dataclasses.fields(MasterConfig)
        if getattr(ODD, f.name) == getattr(defaults, f.name)
    ]
    assert same == []


@pytest.fixture
def odd_master() -> Iterator[MasterProcess]:
    """A master process started with every field of its config away from the default."""
    master = start_master(ODD)
    try:
        yield master
    finally:
        master.stop()


def test_every_config_field_arrives_in_the_spawned_master(odd_master: MasterProcess) -> None:
    """The master process reports back, in its status, every MasterConfig field it was given,
    and a worker that says hello is welcomed with the config's timings."""
    client = ControlClient(odd_master.control_endpoint)
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        status = client.request(protocol.GetStatus())
        assert status.config == dataclasses.asdict(ODD)
        assert MasterConfig(**status.config) == ODD
        sock.connect(odd_master.worker_endpoint)
        sock.send(
            protocol.encode(
                protocol.Hello(
                    worker_id="probe", host="h", pid=1, cores=1, version="0", millicpus=1000
                )
            )
        )
        assert sock.poll(10_000), "the master did not welcome the worker"
        assert protocol.decode(sock.recv()) == protocol.Welcome(
            worker_id="probe",
            heartbeat_interval=ODD.heartbeat_interval,
            master_timeout=ODD.master_timeout,
            report_interval=ODD.report_interval,
        )
    finally:
        sock.close()
        context.term()
        client.close()


def test_a_real_worker_and_the_updates_keep_the_configured_times(
    odd_master: MasterProcess,
) -> None:
    """A real worker joined to that master beats every 0.2 s and reports every 3 s (not the
    default 1 s for both), and updates leave every 0.5 s, 0.2 s after the half-second."""
    client = ControlClient(odd_master.control_endpoint)
    lock = threading.Lock()
    updates: list[protocol.Update] = []

    def keep(update: protocol.Update) -> None:
        with lock:
            updates.append(update)

    client.on_update(keep)
    worker = start_worker(odd_master.worker_endpoint)
    try:
        wait_until(
            lambda: bool(client.request(protocol.GetStatus()).workers),
            timeout=30,
            message="the worker to join",
        )
        window = 4.0
        seen: set[float] = set()
        with lock:
            before = len(updates)
        start = time.monotonic()
        while time.monotonic() - start < window:  # watch the whole window
            (row,) = client.request(protocol.GetStatus()).workers
            seen.add(row.last_seen)
            time.sleep(0.03)
        with lock:
            watched = updates[before:]
        # Heartbeats (and at most two reports) move last_seen: ~20 times in 4 s, not ~4.
        assert len(seen) >= 12, sorted(seen)
        reports = [r for u in watched for r in u.reports]
        assert 1 <= len(reports) <= 2, reports  # one every 3 s; the default would send 4
        gaps = [b.time - a.time for a, b in itertools.pairwise(watched)]
        assert 0.4 <= statistics.median(gaps) <= 0.6, gaps
        late = [(u.time - ODD.update_delay) % ODD.update_interval for u in watched]
        assert statistics.median(late) < 0.15, late
    finally:
        client.request(protocol.QuitMaster())
        client.close()
        try:
            worker.wait(10)
        finally:
            reap(worker)


def test_config_json_round_trips_and_refuses_what_is_not_a_config() -> None:
    """to_json/from_json keep every field; unknown fields, wrong types and non-JSON are
    refused naming what is wrong."""
    assert MasterConfig.from_json(ODD.to_json()) == ODD
    assert MasterConfig.from_json('{"heartbeat_interval": 2}').heartbeat_interval == 2.0
    for text, needle in (
        ('{"heartbeat_intervall": 1.0}', "unknown fields ['heartbeat_intervall']"),
        ('{"saturated_beats": 2.5}', "saturated_beats=2.5: expected int"),
        ('{"standalone": "yes"}', "standalone='yes': expected bool"),
        ("[1, 2]", "must be a JSON object"),
        ("{heartbeat", "is not JSON"),
    ):
        with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("(", r"\(")):
            MasterConfig.from_json(text)


def test_flags_override_fields_of_the_config() -> None:
    """A timing flag given with --config replaces that one field and keeps the others."""
    args = parse_args(["--config", ODD.to_json(), "--master-timeout", "7.5"])
    assert config_from(args) == dataclasses.replace(ODD, master_timeout=7.5)
    assert config_from(parse_args([])) == MasterConfig()


def test_a_master_given_a_bad_config_says_so_and_exits() -> None:
    """`python -m notebookswarm.master --config` with an unknown field exits 2 naming it."""
    done = subprocess.run(
        [sys.executable, "-m", "notebookswarm.master", "--config", '{"speed": 1}'],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--config has unknown fields ['speed']" in done.stderr
