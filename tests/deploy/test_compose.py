"""deploy/docker-compose.yml: workers aimed at the master, keys where they are read, scalable."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from helmrender import ROOT, flag

from notebookswarm._version import __version__

COMPOSE = ROOT / "deploy" / "docker-compose.yml"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The compose file's services."""
    found: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return found


def _keys_mount(service: dict[str, Any]) -> dict[str, str]:
    """Return {mount path: volume} of a service's volumes."""
    return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}


def test_workers_join_the_master_service_on_its_worker_port(services: dict[str, Any]) -> None:
    """The worker's --master names the master service and the port it listens on."""
    endpoint = urlsplit(flag(services["worker"]["command"], "--master") or "")
    assert endpoint.hostname in services
    assert services[endpoint.hostname]["command"][0] == "master"
    assert str(endpoint.port) == flag(services["master"]["command"], "--worker-port")


def test_master_and_workers_read_the_keys_the_keygen_service_writes(
    services: dict[str, Any],
) -> None:
    """--keys is where each service mounts the volume that keygen writes into."""
    (written,) = re.findall(r"keygen (\S+)", " ".join(services["keygen"]["entrypoint"]))
    volume = _keys_mount(services["keygen"])[written]
    for name in ("master", "worker"):
        keys = flag(services[name]["command"], "--keys")
        assert _keys_mount(services[name]).get(keys or "") == volume, name


def test_workers_scale_without_clashing(services: dict[str, Any]) -> None:
    """`--scale worker=4` works: the worker has no fixed container name and publishes no port."""
    assert "container_name" not in services["worker"]
    assert "ports" not in services["worker"]


def test_the_image_is_the_dockerfiles_at_the_package_version(services: dict[str, Any]) -> None:
    """Every service runs one image, tagged with the package's version, built from deploy/."""
    images = {s["image"] for s in services.values()}
    assert images == {f"notebookswarm:${{NOTEBOOKSWARM_TAG:-{__version__}}}"}
    (build,) = [s["build"] for s in services.values() if "build" in s]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
        ROOT / "deploy" / "Dockerfile"
    )


@pytest.mark.parametrize("name", ["master", "worker", "target"])
def test_every_flag_a_service_passes_is_one_its_program_takes(
    services: dict[str, Any], name: str
) -> None:
    """Each flag in a service's command appears in that program's --help."""
    service = services[name]
    if name == "target":
        program, args = service["entrypoint"][1:], service["command"]
    else:
        program, args = ["-m", "notebookswarm", service["command"][0]], service["command"][1:]
    done = subprocess.run(
        [sys.executable, *program, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    unknown = {a for a in args if a.startswith("-") and a not in done.stdout.split()}
    assert unknown == set()
