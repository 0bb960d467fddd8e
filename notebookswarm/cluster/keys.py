"""CurveZMQ keys: who may join a master that listens beyond 127.0.0.1.

``python -m notebookswarm keygen DIR`` writes two keypairs with pyzmq's ``zmq.auth``:
``DIR/master.key_secret`` (+ ``master.key``) for the master and ``DIR/worker.key_secret``
(+ ``worker.key``) for workers and controllers. The master trusts every public ``*.key`` in
``DIR/trusted/``; keygen puts ``worker.key`` there. Copy ``master.key`` and
``worker.key_secret`` to the machines that join; keep ``master.key_secret`` on the master.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from notebookswarm.errors import ConfigError


def keygen(directory: str | Path) -> Path:
    """Write a master and a worker keypair into ``directory`` and trust the worker key."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("master", "worker"):
        if (folder / f"{name}.key_secret").exists():
            raise ConfigError(
                f"{folder / (name + '.key_secret')} exists: pick an empty directory "
                "or delete the old keys first"
            )
        zmq.auth.create_certificates(str(folder), name)
    trusted = folder / "trusted"
    trusted.mkdir(exist_ok=True)
    shutil.copy(folder / "worker.key", trusted / "worker.key")
    return folder


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise ConfigError(
            f"no key file {str(path)!r}: create keys with `python -m notebookswarm keygen DIR`"
        )
    public, private = zmq.auth.load_certificate(str(path))
    if secret and private is None:
        raise ConfigError(f"{str(path)!r} holds no secret key: pass the *.key_secret file's folder")
    return public, private


def master_curve_options(directory: str | Path) -> dict[int, int | bytes]:
    """Return the socket options that make a master socket a CurveZMQ server."""
    public, private = _load(Path(directory) / "master.key_secret", secret=True)
    assert private is not None
    return {zmq.CURVE_SERVER: 1, zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: private}


def worker_curve_options(directory: str | Path) -> dict[int, bytes]:
    """Return the socket options that let a worker or controller join a CurveZMQ master."""
    folder = Path(directory)
    public, private = _load(folder / "worker.key_secret", secret=True)
    server, _ = _load(folder / "master.key", secret=False)
    assert private is not None
    return {
        zmq.CURVE_SERVERKEY: server,
        zmq.CURVE_PUBLICKEY: public,
        zmq.CURVE_SECRETKEY: private,
    }


def trusted_dir(directory: str | Path) -> Path:
    """Return the folder of public keys a master trusts."""
    folder = Path(directory) / "trusted"
    if not folder.is_dir():
        raise ConfigError(f"no folder {str(folder)!r} of trusted worker keys: run keygen")
    return folder


# The socket-monitor events that mean a peer failed the CurveZMQ (or ZMTP) handshake.
HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)


def explain_handshake(event: Mapping[str, Any], who: str = "worker") -> str:
    """Say why this side's handshake with the master failed and what to do."""
    if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (
            f"the master refused this {who}'s CurveZMQ key (status {event['value']}): "
            f"put this {who}'s public key in the master's trusted/ folder, or use keys "
            "from the master's `keygen` folder"
        )
    return (
        f"the handshake with the master failed (ZeroMQ protocol error {event['value']:#x}): "
        "the master probably requires CurveZMQ keys (pass the keys from its `keygen` "
        "folder: --keys DIR to a worker, keys=DIR to Swarm.connect), or it uses none and "
        f"this {who} should not pass any"
    )
