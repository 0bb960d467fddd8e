"""Errors raised by notebookswarm.

Every error derives from one root, so ``except NotebookSwarmError`` catches them all::

    NotebookSwarmError
    ├── ConfigError          bad input from the caller; nothing was started
    ├── ProtocolError        a frame that cannot be decoded (see ``protocol``)
    └── (user-flow signals, not errors of ours)
        StopUser, RescheduleTask, InterruptTaskSet live in ``notebookswarm.users.core``

Messages say what the value was and what to do instead.
"""

from __future__ import annotations


class NotebookSwarmError(Exception):
    """Root of every error notebookswarm raises."""


class ConfigError(NotebookSwarmError, ValueError):
    """A value given by the caller is invalid; nothing was started."""
