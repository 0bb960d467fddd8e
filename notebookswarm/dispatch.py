"""Decide how many users of each class each worker runs, and how fast each worker starts them.

Pure functions of their arguments: no clock, no sockets, no randomness. The master calls
``split_users`` to turn a user count into per-class targets, ``dispatch`` to spread those
targets over the workers it knows, and ``split_rate`` to give each worker its part of the
spawn rate. It calls them again whenever a target changes or a worker joins, leaves or
saturates, and sends every worker its absolute result.

The rules, exactly:

* **Rounding** is largest remainder everywhere (Hamilton's method): everyone gets the floor
  of their exact share, and the units left over go to the largest fractional parts. Ties
  go to whoever already holds the rounded-up amount (so nothing moves needlessly), then to
  declaration order (classes in the order given, workers in list order).
* **Worker totals** are the grand total rounded that way in proportion to cores, so each
  worker's total is its capacity-weighted share rounded down or up: within ±1 of it.
* **Per-class counts** are filled class by class, in target order, each class rounded in
  proportion to the room each worker still has under its total, with the +1s going to
  the workers furthest behind their ideal running total rather than to the largest
  fractional parts. Row and column sums come out exact, and the +1s of small classes land
  on different workers instead of piling on the biggest one.
* **Minimal moves**: when ``current`` is given, a worker that already holds the rounded-up
  amount of a total or a class keeps it, ahead of larger fractional parts. So users move
  only when the rounding cannot keep them where they are, and dispatching again with the
  result as ``current`` changes nothing.
* **Saturation**: while at least one worker is not saturated, a saturated worker gets no
  new users. Class by class, in target order, it keeps ``min(what it runs now, what is left
  of that class, what is left of its fair total)``, where its fair total is the grand total
  rounded in proportion to cores as if nobody were saturated and nothing ran yet. The other
  workers share the rest in proportion to their cores. If every worker is saturated,
  saturation is ignored: there is nowhere better to go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from notebookswarm.errors import ConfigError

__all__ = ["Assignment", "UserClassSpec", "WorkerCapacity", "dispatch", "split_rate", "split_users"]

Assignment = dict[str, dict[str, int]]
"""Users per class per worker: ``{worker_id: {class_name: users}}``."""


@dataclass(frozen=True)
class WorkerCapacity:
    """Describe a worker to dispatch: its id, its cores, and whether its CPU is saturated.

    ``saturated`` means the worker's CPU has stayed above 90 %; it then gets no new users
    while another worker has headroom.
    """

    worker_id: str
    cores: int
    saturated: bool = False


@dataclass(frozen=True)
class UserClassSpec:
    """Describe a user class to ``split_users``: its name, its weight and any fixed count."""

    name: str
    weight: int = 1
    fixed_count: int = 0


def split_users(total: int, classes: Sequence[UserClassSpec]) -> dict[str, int]:
    """Turn a user count into per-class targets that sum exactly to ``total``.

    As in Locust: classes with a ``fixed_count`` get exactly that many, in declaration
    order, until ``total`` runs out; the rest is split over the other classes in proportion
    to ``weight``. Raise ConfigError if users are left over and no class has a weight.
    """
    _check_classes(total, classes)
    counts = {spec.name: 0 for spec in classes}
    left = total
    for spec in classes:
        if spec.fixed_count > 0:
            counts[spec.name] = min(spec.fixed_count, left)
            left -= counts[spec.name]
    weighted = [spec for spec in classes if spec.fixed_count == 0]
    if left and not any(spec.weight for spec in weighted):
        fixed = total - left
        raise ConfigError(
            f"{total} users asked for, but the fixed counts add up to {fixed} and no other "
            f"class has a weight: ask for at most {fixed} users or add a weighted user class"
        )
    for spec, count in zip(weighted, _apportion(left, [s.weight for s in weighted]), strict=True):
        counts[spec.name] = count
    return counts


def dispatch(
    targets: Mapping[str, int],
    workers: Sequence[WorkerCapacity],
    current: Mapping[str, Mapping[str, int]] | None = None,
) -> Assignment:
    """Spread per-class user targets over workers in proportion to their cores.

    Returns every worker with a count for every class in ``targets`` (zeros included; a
    class absent from ``targets`` runs no users). Per-class sums equal the targets exactly.
    Pass ``current`` (what each worker runs now) to keep users where they are when the
    fair share allows; the module docstring states the rules exactly. Raise ConfigError if
    there are users to run and no workers.
    """
    _check_dispatch(targets, workers)
    now = current or {}
    held = [{name: now.get(w.worker_id, {}).get(name, 0) for name in targets} for w in workers]
    cores = [w.cores for w in workers]
    saturated = [w.saturated for w in workers]
    if all(saturated):
        saturated = [False] * len(workers)
    left = dict(targets)
    fair = _apportion(sum(targets.values()), cores)
    kept = {i: _keep(left, held[i], fair[i]) for i, busy in enumerate(saturated) if busy}
    free = [i for i, busy in enumerate(saturated) if not busy]
    room = _apportion(
        sum(left.values()), [cores[i] for i in free], keep=[sum(held[i].values()) for i in free]
    )
    kept.update(zip(free, _fill(left, room, [held[i] for i in free]), strict=True))
    return {w.worker_id: kept[i] for i, w in enumerate(workers)}


def split_rate(
    rate: float,
    assignment: Mapping[str, Mapping[str, int]],
    current: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, float]:
    """Split a spawn rate so the workers together start ``rate`` users a second.

    Each worker's part is proportional to the users it still has to start (its new count
    above ``current``, per class), so all finish their ramp together and a newcomer is
    filled at the spawn rate rather than in one burst. When nobody has users to start, the
    rate follows each worker's share of the users, or is split evenly if there are none.
    Stopping users is not paced by the rate. The parts sum to ``rate``.
    """
    if not math.isfinite(rate) or rate < 0:
        raise ConfigError(f"spawn rate {rate!r} is not a number of users per second: use >= 0")
    now = current or {}
    weight = {
        worker: sum(
            max(0, count - now.get(worker, {}).get(name, 0)) for name, count in users.items()
        )
        for worker, users in assignment.items()
    }
    if not any(weight.values()):
        weight = {worker: sum(users.values()) for worker, users in assignment.items()}
    if not any(weight.values()):
        weight = dict.fromkeys(assignment, 1)
    whole = sum(weight.values())
    return {worker: rate * part / whole for worker, part in weight.items()}


def _apportion(
    total: int,
    weights: Sequence[int],
    keep: Sequence[int] | None = None,
    rank: Sequence[int] | None = None,
) -> list[int]:
    """Split ``total`` in proportion to ``weights`` by largest remainder, in exact integers.

    Everyone gets the floor of their exact share. The units left over go, one each, to
    indices whose share has a fractional part: first to those already holding the
    rounded-up amount (``keep`` says what each holds now), then by highest ``rank``
    (default: the largest fractional part), then by lowest index.
    """
    counts = _floors(total, weights)
    whole = sum(weights)
    fractions = [
        total * weight - count * whole for weight, count in zip(weights, counts, strict=True)
    ]
    holds = keep or [0] * len(weights)
    order = fractions if rank is None else rank
    candidates = [i for i, fraction in enumerate(fractions) if fraction]
    candidates.sort(key=lambda i: (holds[i] <= counts[i], -order[i], i))
    for i in candidates[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _floors(total: int, weights: Sequence[int]) -> list[int]:
    """Round each exact share of ``total`` down (all zero when the weights are)."""
    whole = sum(weights)
    return [total * weight // whole if whole else 0 for weight in weights]


def _keep(left: dict[str, int], held: Mapping[str, int], fair: int) -> dict[str, int]:
    """Choose what a saturated worker keeps, taking it out of ``left``."""
    kept = {}
    for name in left:
        kept[name] = min(held[name], left[name], fair)
        left[name] -= kept[name]
        fair -= kept[name]
    return kept


def _fill(
    targets: Mapping[str, int], quotas: Sequence[int], held: Sequence[Mapping[str, int]]
) -> list[dict[str, int]]:
    """Fill each worker up to its quota, class by class, keeping every class proportional.

    Each class is split in proportion to the room each worker has left, which keeps every
    worker within its quota (``ceil(target * room / sum(room)) <= room``) and makes the
    last class fill it exactly. The +1s go first to workers that hold them now and are not
    ahead of their ideal running total, then to those furthest behind it, so small classes
    spread out instead of piling on the biggest worker.
    """
    grand = sum(quotas)
    room = list(quotas)
    placed = [0] * len(quotas)
    filled: list[dict[str, int]] = [{} for _ in quotas]
    so_far = 0
    for name, target in targets.items():
        so_far += target
        floors = _floors(target, room)
        behind = [
            so_far * q - grand * (p + f) for q, p, f in zip(quotas, placed, floors, strict=True)
        ]
        # Keeping users in place must not let a worker run ahead of its ideal total, or the
        # last class would have to absorb the drift.
        keep = [h[name] if lag >= 0 else 0 for h, lag in zip(held, behind, strict=True)]
        counts = _apportion(target, room, keep=keep, rank=behind)
        for i, count in enumerate(counts):
            filled[i][name] = count
            room[i] -= count
            placed[i] += count
    return filled


def _check_classes(total: int, classes: Sequence[UserClassSpec]) -> None:
    if total < 0:
        raise ConfigError(f"users={total} is negative: ask for 0 or more users")
    names = [spec.name for spec in classes]
    if len(set(names)) != len(names):
        raise ConfigError(f"user class names {names} repeat: give each class its own name")
    if total and not classes:
        raise ConfigError(f"{total} users asked for but no user class given: pass at least one")
    for spec in classes:
        if spec.weight < 0 or spec.fixed_count < 0:
            raise ConfigError(
                f"user class {spec.name} has weight={spec.weight}, "
                f"fixed_count={spec.fixed_count}: both must be 0 or more"
            )


def _check_dispatch(targets: Mapping[str, int], workers: Sequence[WorkerCapacity]) -> None:
    for name, target in targets.items():
        if target < 0:
            raise ConfigError(f"target for user class {name} is {target}: use 0 or more users")
    ids = [worker.worker_id for worker in workers]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"worker ids {ids} repeat: each worker needs its own id")
    for worker in workers:
        if worker.cores < 1:
            raise ConfigError(f"worker {worker.worker_id} has {worker.cores} cores: use 1 or more")
    if sum(targets.values()) and not workers:
        raise ConfigError(f"{sum(targets.values())} users to run but no worker: start a worker")
