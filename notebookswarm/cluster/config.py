"""The master's configuration: one frozen record that crosses to the master process whole.

A ``Swarm`` (or ``notebookswarm master --config``) hands every field to the master process as
one JSON object (:meth:`MasterConfig.to_json`), so no field is lost in a translation to
command-line flags; the master's status echoes it back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from notebookswarm.errors import ConfigError
from notebookswarm.stats.names import DEFAULT_MAX_NAMES, DEFAULT_WARN_NAMES


@dataclass(frozen=True)
class MasterConfig:
    """Timing of the master and of the workers that join it (seconds).

    ``standalone``: a service that outlives its controllers (no ``controller_timeout``).
    """

    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 5.0
    master_timeout: float = 10.0
    controller_timeout: float = 15.0
    report_interval: float = 1.0
    update_interval: float = 1.0
    #: Updates go out this long after each wall-clock second, once the workers' reports
    #: for that second (sent on the second) have arrived.
    update_delay: float = 0.3
    standalone: bool = False
    saturated_cpu: float = 90.0
    saturated_beats: int = 3
    #: Distinct request names across the swarm past which the controller is warned.
    warn_names: int = DEFAULT_WARN_NAMES
    #: Distinct request names the swarm keeps; later new ones fold into "<other names>".
    max_names: int = DEFAULT_MAX_NAMES
    #: Updates kept for a controller that comes back after its link dropped (15 min).
    replay_updates: int = 900

    def to_json(self) -> str:
        """Serialise every field, for the trip to a master process (``--config``)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> MasterConfig:
        """Read a config written by :meth:`to_json`; unknown or ill-typed fields are refused."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"--config is not JSON ({exc}): pass MasterConfig.to_json()"
            ) from None
        if not isinstance(values, dict):
            raise ConfigError(
                f"--config must be a JSON object of MasterConfig fields, got {text!r}"
            )
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"--config has unknown fields {unknown}: use {sorted(known)}")
        for name, value in values.items():
            kind = type(getattr(cls(), name))
            if kind is float and type(value) is int:
                values[name] = value = float(value)
            if type(value) is not kind:
                raise ConfigError(f"--config {name}={value!r}: expected {kind.__name__}")
        return cls(**values)
