"""Install what the benchmark compares against: Debian's nginx and wrk, and Locust in a venv.

``make bench`` runs this first. nginx and wrk come from apt (with sudo when not root);
Locust goes into ``bench/.venv-locust`` (gitignored) at a pinned version, so the numbers
in docs/performance.md can be reproduced with the same Locust.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCUST_VENV = HERE / ".venv-locust"
DEFAULT_LOCUST = "2.47.0"
#: Debian package that provides each command.
APT_PACKAGES = {"nginx": "nginx-light", "wrk": "wrk"}


def find_nginx() -> str | None:
    """Return the nginx binary (it lives in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def _apt(packages: list[str]) -> None:
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise SystemExit(
                f"the benchmark needs {packages}: install them with apt-get (as root), "
                "or run with --no-setup and without the parts that need them"
            )
        prefix = ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"bench: installing {' '.join(packages)} with apt-get", flush=True)
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def ensure_tools() -> None:
    """Install nginx and wrk with apt when either is missing."""
    missing = []
    if find_nginx() is None:
        missing.append(APT_PACKAGES["nginx"])
    if shutil.which("wrk") is None:
        missing.append(APT_PACKAGES["wrk"])
    if missing:
        _apt(missing)


def locust_python(venv: Path = LOCUST_VENV) -> Path:
    """The interpreter of the Locust venv."""
    return venv / "bin" / "python"


def installed_locust(python: Path) -> str | None:
    """Return the Locust version ``python`` imports, or None."""
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import locust; print(locust.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def ensure_locust(version: str = DEFAULT_LOCUST, venv: Path = LOCUST_VENV) -> Path:
    """Create ``venv`` with ``locust==version`` unless it is there already; return its python."""
    python = locust_python(venv)
    if installed_locust(python) == version:
        return python
    print(f"bench: installing locust=={version} into {venv}", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, f"locust=={version}"], check=True)
    got = installed_locust(python)
    if got != version:
        raise SystemExit(f"installing locust=={version} into {venv} gave {got!r}")
    return python
