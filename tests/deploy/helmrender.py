"""Render the Helm chart for tests and check how its objects are wired to each other.

Rendering is tools/render_manifests.py's (Helm's own Go library via helm-python-sdk);
this module parses the result strictly and holds the wiring checker the tests use on good
and deliberately broken renders.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "notebookswarm"
ALL_ON = CHART / "ci" / "all-on-values.yaml"

_spec = importlib.util.spec_from_file_location(
    "render_manifests", ROOT / "tools/render_manifests.py"
)
assert _spec is not None and _spec.loader is not None
render_manifests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_manifests)

Obj = dict[str, Any]


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (a template slip)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(key, deep=True) for key, _ in node.value]
    twice = sorted({str(k) for k in keys if keys.count(k) > 1})
    if twice:
        raise yaml.constructor.ConstructorError(
            None, None, f"keys given twice: {twice}", node.start_mark
        )
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def render(values: dict[str, Any] | None = None, revision: int = 1) -> list[Obj]:
    """Render the chart with these values; return every Kubernetes object it makes."""
    texts = render_manifests.render_chart(values, revision=revision)
    return [
        doc for text in texts.values() for doc in yaml.load_all(text, Loader=_StrictLoader) if doc
    ]


def all_on_values() -> dict[str, Any]:
    """Return the values file that switches every option on."""
    values: dict[str, Any] = yaml.safe_load(ALL_ON.read_text())
    return values


def find(objects: list[Obj], kind: str, component: str | None = None) -> list[Obj]:
    """Return the objects of one kind (and app.kubernetes.io/component label)."""
    return [
        o
        for o in objects
        if o["kind"] == kind
        and (
            component is None or o["metadata"]["labels"]["app.kubernetes.io/component"] == component
        )
    ]


def pod_template(workload: Obj) -> Obj:
    """Return a Deployment's or a Job's pod template."""
    template: Obj = workload["spec"]["template"]
    return template


def flag(args: list[str], name: str) -> str | None:
    """Return the value after ``name`` in a container's arguments."""
    return args[args.index(name) + 1] if name in args else None


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Say whether a matchLabels selector selects pods with these labels."""
    return all(labels.get(key) == value for key, value in selector.items())


# What notebookswarm/cluster/keys.py reads from the --keys folder, by the role of a pod.
KEY_FILES = {
    "master": {"master.key_secret"},  # plus trusted/*.key, checked apart
    "worker": {"worker.key_secret", "master.key"},
    "run": {"worker.key_secret", "master.key"},  # a controller joins as a worker does
}
SECRET_ONLY_ON_MASTER = "master.key_secret"


def wiring_problems(objects: list[Obj]) -> list[str]:
    """Return what is miswired: endpoints that miss the master, keys mounted elsewhere."""
    problems: list[str] = []
    (master,) = find(objects, "Deployment", "master")
    master_pod = pod_template(master)
    (master_container,) = master_pod["spec"]["containers"]
    services = {s["metadata"]["name"]: s for s in find(objects, "Service")}
    clients = [(w, "--worker-port", "--master") for w in find(objects, "Deployment", "worker")]
    clients += [(j, "--control-port", "--join") for j in find(objects, "Job", "run")]
    for workload, port_flag, join_flag in clients:
        (container,) = pod_template(workload)["spec"]["containers"]
        name = workload["metadata"]["name"]
        endpoint = urlsplit(flag(container["args"], join_flag) or "")
        want = int(flag(master_container["args"], port_flag) or -1)
        service = services.get(endpoint.hostname or "")
        if service is None:
            problems.append(f"{name} joins host {endpoint.hostname!r}: no Service of that name")
            continue
        if not selects(service["spec"]["selector"], master_pod["metadata"]["labels"]):
            problems.append(f"Service {endpoint.hostname} does not select the master's pod")
        ports = [p for p in service["spec"]["ports"] if p["port"] == endpoint.port]
        if not ports:
            problems.append(
                f"{name} joins port {endpoint.port}: Service {endpoint.hostname} has none"
            )
        elif _target_port(ports[0], master_container) != want:
            problems.append(
                f"{name} joins port {endpoint.port}, which leads to the master's port "
                f"{_target_port(ports[0], master_container)}, but the master listens with "
                f"{port_flag} {want}"
            )
    for workload in [master, *(w for w, _, _ in clients)]:
        problems += key_problems(workload)
    return problems


def _target_port(port: Obj, container: Obj) -> int:
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == target]
    return int(named[0]) if named else -1


def key_problems(workload: Obj) -> list[str]:
    """Return what is wrong with a pod's keys: --keys not the Secret's mount, files missing."""
    name = workload["metadata"]["name"]
    role = workload["metadata"]["labels"]["app.kubernetes.io/component"]
    spec = pod_template(workload)["spec"]
    (container,) = spec["containers"]
    keys_flag = flag(container["args"], "--keys")
    secrets = {v["name"]: v["secret"] for v in spec.get("volumes", []) if "secret" in v}
    mounts = [m for m in container.get("volumeMounts", []) if m["name"] in secrets]
    at_flag = [m for m in mounts if m["mountPath"] == keys_flag]
    if not at_flag:
        where = [m["mountPath"] for m in mounts]
        return [f"{name} reads keys from --keys {keys_flag}, but its Secret is mounted at {where}"]
    files = projected_files(secrets[at_flag[0]["name"]])
    problems = [
        f"{name} ({role}) misses {missing} in its keys folder"
        for missing in sorted(KEY_FILES[role] - set(files))
    ]
    if role == "master" and not any(f.startswith("trusted/") for f in files):
        problems.append(f"{name} has no trusted/ worker keys: no worker could join")
    if role != "master" and SECRET_ONLY_ON_MASTER in files.values():
        problems.append(f"{name} ({role}) holds the master's secret key")
    return problems


def projected_files(secret_volume: Obj) -> dict[str, str]:
    """Return {path in the mounted folder: Secret key} as the kubelet lays a Secret out."""
    items = secret_volume.get("items")
    if items is None:  # without items every key becomes a file of its own name
        return {
            key: key
            for key in ("master.key", "master.key_secret", "worker.key", "worker.key_secret")
        }
    return {item["path"]: item["key"] for item in items}


def project(secret_volume: Obj, keygen_dir: Path, folder: Path) -> Path:
    """Lay out the Secret's files from a real keygen folder as the kubelet would mount them."""
    for path, key in projected_files(secret_volume).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(keygen_dir / key, folder / path)
    return folder
