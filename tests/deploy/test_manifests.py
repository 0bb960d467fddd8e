"""deploy/kubernetes/ is what the Helm chart renders today."""

from __future__ import annotations

from pathlib import Path

from helmrender import render_manifests


def test_the_committed_manifests_are_current() -> None:
    """The files of deploy/kubernetes/ equal a fresh render: run `make manifests` if not."""
    assert render_manifests.stale() == []


def test_a_stale_manifest_is_noticed(tmp_path: Path) -> None:
    """An edited, a missing and an extra manifest are each reported by name."""
    fresh = render_manifests.manifests()
    for name, text in fresh.items():
        (tmp_path / name).write_text(text)
    edited, missing = sorted(fresh)[:2]
    (tmp_path / edited).write_text(fresh[edited] + "# edited by hand\n")
    (tmp_path / missing).unlink()
    (tmp_path / "old-job.yaml").write_text("kind: Job\n")
    assert render_manifests.stale(tmp_path) == sorted([edited, missing, "old-job.yaml"])
