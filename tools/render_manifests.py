"""Render deploy/helm/notebookswarm into the plain manifests of deploy/kubernetes/.

`make manifests` runs it after a change to the chart; `--check` (run by
tests/deploy/test_manifests.py) fails when the committed manifests are not what the chart
renders. Rendering uses Helm's own Go library through helm-python-sdk: no helm binary, no
cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import helm_python

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "notebookswarm"
MANIFESTS = ROOT / "deploy" / "kubernetes"
RELEASE = "notebookswarm"  # so the objects are notebookswarm-master, notebookswarm-worker
HEADER = (
    "# Rendered from deploy/helm/notebookswarm ({template}) with the chart's default values\n"
    "# by `make manifests`: edit the chart, not this file. Apply with\n"
    "#   kubectl apply --namespace NAMESPACE -f deploy/kubernetes/\n"
    "# after creating the keys Secret (docs/kubernetes.md).\n"
)


def render_chart(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = "default",
    revision: int = 1,
    chart: Path = CHART,
) -> dict[str, str]:
    """Render the chart as `helm template` would; return {template file name: YAML text}.

    Templates that render to nothing (an option switched off) and NOTES.txt are left out.
    """
    with helm_python.Chart.load(str(chart)) as loaded:
        rendered = loaded.render(
            values or {}, name=release, namespace=namespace, revision=revision, is_install=True
        )
    documents = {}
    for source, text in sorted(rendered.items()):
        name = Path(source).name
        if name.endswith((".yaml", ".yml")) and _has_content(text):
            documents[name] = text.strip("\n") + "\n"
    return documents


def _has_content(text: str) -> bool:
    lines = (line.strip() for line in text.splitlines())
    return any(line and not line.startswith("#") and line != "---" for line in lines)


def manifests() -> dict[str, str]:
    """Return the files of deploy/kubernetes/ as the chart renders them today."""
    return {name: HEADER.format(template=name) + text for name, text in render_chart().items()}


def stale(folder: Path = MANIFESTS) -> list[str]:
    """Return the manifest files that differ from a fresh render, are missing or are extra."""
    fresh = manifests()
    present = {path.name: path.read_text() for path in folder.glob("*.yaml")}
    names = sorted(set(fresh) | set(present))
    return [name for name in names if fresh.get(name) != present.get(name)]


def main(argv: list[str] | None = None) -> int:
    """Write deploy/kubernetes/ from the chart, or with --check say whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    if args.check:
        if differ := stale():
            print(
                f"deploy/kubernetes/ is stale ({', '.join(differ)}): run `make manifests`",
                file=sys.stderr,
            )
            return 1
        return 0
    MANIFESTS.mkdir(parents=True, exist_ok=True)
    fresh = manifests()
    for path in MANIFESTS.glob("*.yaml"):
        if path.name not in fresh:
            path.unlink()
    for name, text in fresh.items():
        (MANIFESTS / name).write_text(text)
    print(f"wrote {len(fresh)} manifests to {MANIFESTS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
