"""The Helm chart, rendered by Helm's own library and checked without a cluster."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
import zmq.auth
from helmrender import (
    ALL_ON,
    CHART,
    Obj,
    all_on_values,
    find,
    flag,
    pod_template,
    project,
    render,
    selects,
    wiring_problems,
)

from notebookswarm._version import __version__
from notebookswarm.cluster.keys import master_curve_options, trusted_dir, worker_curve_options
from notebookswarm.cluster.launch import reap

KUBERNETES = "1.30.0"
RENDERS = {"defaults": None, "all-on": "all-on"}


@pytest.fixture(scope="module", params=list(RENDERS))
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    """The chart's objects for the default values and for every option on."""
    return render(all_on_values() if RENDERS[request.param] else None, revision=3)


def test_defaults_make_the_master_its_service_the_workers_and_the_policy() -> None:
    """Default values render exactly a master, its Service, the workers and the NetworkPolicy."""
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in render())
    assert kinds == [
        ("Deployment", "notebookswarm-master"),
        ("Deployment", "notebookswarm-worker"),
        ("NetworkPolicy", "notebookswarm-master"),
        ("Service", "notebookswarm-master"),
    ]


def test_all_on_adds_the_control_service_the_autoscaler_and_the_headless_run() -> None:
    """Every option on adds the control Service, the HPA, and the run's Job and ConfigMap."""
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in render(all_on_values(), 3))
    assert kinds == [
        ("ConfigMap", "contest-swarm-run-3"),
        ("Deployment", "contest-swarm-master"),
        ("Deployment", "contest-swarm-worker"),
        ("HorizontalPodAutoscaler", "contest-swarm-worker"),
        ("Job", "contest-swarm-run-3"),
        ("NetworkPolicy", "contest-swarm-master"),
        ("Service", "contest-swarm-control"),
        ("Service", "contest-swarm-master"),
    ]


def test_every_object_validates_against_the_kubernetes_schemas(rendered: list[Obj]) -> None:
    """Each rendered object is valid Kubernetes 1.30, unknown fields refused."""
    errors = []
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']} {obj['metadata']['name']}: {str(exc).splitlines()[0]}")
    assert errors == []


def test_the_schema_check_can_fail() -> None:
    """A misspelt field in a rendered Deployment is refused by the same validation."""
    worker = copy.deepcopy(find(render(), "Deployment", "worker")[0])
    worker["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, KUBERNETES, strict=True)


@pytest.mark.parametrize("values", [None, ALL_ON], ids=["defaults", "all-on"])
def test_helm_lint_finds_nothing(values: Path | None) -> None:
    """`helm lint --strict` for Kubernetes 1.30 reports no warning and no error."""
    given = yaml.safe_load(values.read_text()) if values else None
    report = helm_python.lint(str(CHART), given, strict=True, kube_version=f"v{KUBERNETES}")
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert (serious, report["errors"]) == ([], [])


def test_workers_and_the_run_point_at_the_master_service(rendered: list[Obj]) -> None:
    """Workers join the Service's worker port, the run its control port; both reach the master."""
    assert wiring_problems(rendered) == []


def _worker_args(objects: list[Obj]) -> list[str]:
    args: list[str] = pod_template(find(objects, "Deployment", "worker")[0])["spec"]["containers"][
        0
    ]["args"]
    return args


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        ("host", "joins host 'elsewhere': no Service of that name"),
        ("port", "joins port 5559: Service notebookswarm-master has none"),
        ("target", "leads to the master's port 5558, but the master listens with --worker-port"),
        ("keys", "reads keys from --keys /secrets, but its Secret is mounted at ['/keys']"),
        ("leak", "(worker) holds the master's secret key"),
    ],
)
def test_the_wiring_check_catches_a_broken_render(breakage: str, problem: str) -> None:
    """A worker aimed at another host or port, or keys mounted elsewhere, is reported."""
    objects = copy.deepcopy(render())
    args = _worker_args(objects)
    worker = find(objects, "Deployment", "worker")[0]
    (service,) = find(objects, "Service")
    if breakage == "host":
        args[args.index("--master") + 1] = "tcp://elsewhere:5557"
    elif breakage == "port":
        args[args.index("--master") + 1] = "tcp://notebookswarm-master:5559"
    elif breakage == "target":
        service["spec"]["ports"][0]["targetPort"] = "control"
    elif breakage == "keys":
        args[args.index("--keys") + 1] = "/secrets"
    else:
        volume = pod_template(worker)["spec"]["volumes"][0]
        volume["secret"]["items"].append({"key": "master.key_secret", "path": "x"})
    problems = wiring_problems(objects)
    assert len(problems) == 1 and problem in problems[0], problems


def _volume(workload: Obj) -> Obj:
    (volume,) = [v for v in pod_template(workload)["spec"]["volumes"] if "secret" in v]
    secret: Obj = volume["secret"]
    return secret


def test_the_mounted_secret_is_the_folder_keys_py_reads(
    rendered: list[Obj], tmp_path: Path
) -> None:
    """Laid out as the kubelet mounts it, each pod's Secret loads with notebookswarm's own code."""
    made = tmp_path / "keygen"
    subprocess.run([sys.executable, "-m", "notebookswarm", "keygen", str(made)], check=True)
    zmq.auth.create_certificates(str(made), "laptop")  # the all-on values trust a second key
    (master,) = find(rendered, "Deployment", "master")
    master_dir = project(_volume(master), made, tmp_path / "master")
    assert master_curve_options(master_dir)[zmq.CURVE_SERVER] == 1
    assert {p.name for p in trusted_dir(master_dir).iterdir()} >= {"worker.key"}
    for workload in find(rendered, "Deployment", "worker") + find(rendered, "Job"):
        folder = project(_volume(workload), made, tmp_path / workload["metadata"]["name"])
        options = worker_curve_options(folder)
        assert options[zmq.CURVE_SERVERKEY] == master_curve_options(master_dir)[zmq.CURVE_PUBLICKEY]


def test_only_worker_pods_reach_the_worker_port(rendered: list[Obj]) -> None:
    """The NetworkPolicy's worker-port rule selects the worker pods and neither master nor run."""
    (policy,) = find(rendered, "NetworkPolicy")
    labels = {
        role: pod_template(w)["metadata"]["labels"]
        for role in ("master", "worker", "run")
        for w in find(rendered, "Deployment", role) + find(rendered, "Job", role)
    }
    labels.setdefault("run", {**labels["worker"], "app.kubernetes.io/component": "run"})
    assert selects(policy["spec"]["podSelector"]["matchLabels"], labels["master"])
    (master,) = find(rendered, "Deployment", "master")
    worker_port = int(flag(pod_template(master)["spec"]["containers"][0]["args"], "--worker-port"))
    rules = [
        r for r in policy["spec"]["ingress"] if any(p["port"] == worker_port for p in r["ports"])
    ]
    assert len(rules) == 1 and len(rules[0]["from"]) == 1
    selector = rules[0]["from"][0]["podSelector"]["matchLabels"]
    admitted = {role for role, pod_labels in labels.items() if selects(selector, pod_labels)}
    assert admitted == {"worker"}


def test_the_headless_run_gets_the_locust_flags_and_its_locustfile() -> None:
    """The Job runs `notebookswarm run` with Locust's flags on the ConfigMap's locustfile."""
    values = all_on_values()
    objects = render(values, revision=7)
    (job,) = find(objects, "Job")
    (config_map,) = find(objects, "ConfigMap")
    spec = pod_template(job)["spec"]
    args = spec["containers"][0]["args"]
    assert args[:4] == ["run", "-f", "/locust/locustfile.py", "--headless"]
    assert [flag(args, f) for f in ("-u", "-r", "-t", "-H")] == [
        "400",
        "20",
        "10m",
        values["headless"]["host"],
    ]
    assert [a for i, a in enumerate(args) if i and args[i - 1] == "--threshold"] == [
        "p95_ms<500",
        "fail_ratio<0.01",
    ]
    assert config_map["data"]["locustfile.py"] == values["headless"]["locustfile"]
    mount = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/locust"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mount[0]["name"]]["configMap"]["name"] == config_map["metadata"]["name"]


@pytest.mark.parametrize(
    ("headless", "message"),
    [
        ({"enabled": True, "host": "http://x"}, "headless.enabled needs the locustfile's source"),
        ({"enabled": True, "locustfile": "x = 1"}, "headless.enabled needs the system under test"),
    ],
)
def test_a_headless_run_without_its_file_or_host_refuses_to_render(
    headless: dict[str, Any], message: str
) -> None:
    """Switching the run on without a locustfile or a host fails with what to pass."""
    with pytest.raises(Exception, match=re.escape(message)):
        render({"headless": headless})


def test_the_chart_moves_with_the_package_version() -> None:
    """The chart's appVersion (the image tag by default) is the package's version."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    (master,) = find(render(), "Deployment", "master")
    assert pod_template(master)["spec"]["containers"][0]["image"] == f"notebookswarm:{__version__}"


def test_the_probe_passes_while_the_master_listens_and_fails_after() -> None:
    """The master's probe command succeeds against a live master and fails once it exits."""
    master = subprocess.Popen(
        [sys.executable, "-m", "notebookswarm.master", "--standalone"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert master.stdout is not None
        announced = json.loads(master.stdout.readline())
        ports = {k: int(announced[k].rsplit(":", 1)[1]) for k in ("worker", "control")}
        values = {"master": {"workerPort": ports["worker"], "controlPort": ports["control"]}}
        (deployment,) = find(render(values), "Deployment", "master")
        probe = pod_template(deployment)["spec"]["containers"][0]["readinessProbe"]["exec"][
            "command"
        ]
        assert subprocess.run(probe, timeout=10).returncode == 0
    finally:
        reap(master)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while subprocess.run(probe, timeout=10).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert subprocess.run(probe, timeout=10).returncode == 1


# Values whose content is Kubernetes' own structure: documented as a whole, not key by key.
FREE_FORM = {
    "resources",
    "podSecurityContext",
    "securityContext",
    "annotations",
    "podAnnotations",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "behavior",
    "readinessProbe",
    "livenessProbe",
    "env",
}


def _value_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in FREE_FORM:
            paths |= _value_paths(value, f"{path}.")
        else:
            paths.add(path)
    return paths


def test_the_readme_documents_every_value_and_no_other() -> None:
    """The README's value tables list exactly the values of values.yaml."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z0-9_.]+)` \|", readme, flags=re.MULTILINE))
    assert documented == _value_paths(values)


def test_the_all_on_values_name_only_values_the_chart_has() -> None:
    """Every key of ci/all-on-values.yaml exists in values.yaml, so none is silently ignored."""
    defaults = _value_paths(yaml.safe_load((CHART / "values.yaml").read_text()))
    assert _value_paths(all_on_values()) - defaults == set()
