"""Decide how many users of each class each worker runs, and how fast each worker starts them.

Pure functions of their arguments: no clock, no sockets, no randomness. The master calls
``split_users`` to turn a user count into per-class targets, ``dispatch`` to spread those
targets over the workers it knows, and ``split_rate`` to give each worker its part of the
spawn rate. It calls them again whenever a target changes or a worker joins, leaves or
saturates, and sends every worker its absolute result.

The rules, exactly:

* **Rounding** is largest remainder (Hamilton's method), in exact integer arithmetic:
  everyone gets the floor of their exact share, and the units left over go, one each,
  first to whoever already holds the rounded-up amount (so nothing moves needlessly),
  then to the largest fractional parts, then in declaration order (classes in the order
  given, workers in list order).
* **Worker totals** are the grand total rounded that way in proportion to cores, so each
  worker's total is its capacity-weighted share rounded down or up: within ±1 of it.
* **Per-class counts**: each worker gets the floor of its share of each class in
  proportion to its total; the units left over (at most one per worker and class) are
  dealt class by class, in target order, to the workers still owed the most, so the +1s
  of small classes land on different workers. Every count is within 1 of the class split
  in proportion to the worker totals, hence within 2 of the class split by cores.
* **Minimal moves**: when ``current`` is given, a worker that already holds the rounded-up
  amount of its total keeps it, ahead of larger fractional parts; and a worker that holds
  the extra unit of a class keeps it, before any other unit is dealt, as long as the
  class and the worker's total allow; where the rest then cannot be dealt directly,
  units shift along a shortest augmenting path. So users move only when what they run
  falls outside the fair range above, or when keeping it would make the rest impossible,
  and dispatching again with the result as ``current`` changes nothing.
* **Saturation**: while at least one worker is not saturated, a saturated worker gets no
  new users. Class by class, in target order, it keeps ``min(what it runs now, what is left
  of that class, what is left of its fair total)``, where its fair total is the grand total
  rounded in proportion to cores as if nobody were saturated and nothing ran yet. The other
  workers share the rest in proportion to their cores. If every worker is saturated,
  saturation is ignored: there is nowhere better to go.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from notebookswarm.errors import ConfigError

__all__ = [
    "Assignment",
    "UserClassSpec",
    "WorkerCapacity",
    "dispatch",
    "share_by_cores",
    "split_rate",
    "split_users",
]

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
    left = dict(targets)  # what the saturated workers leave for the others
    fair = _apportion(sum(targets.values()), cores)
    counts = {i: _keep(left, held[i], fair[i]) for i, busy in enumerate(saturated) if busy}
    free = [i for i, busy in enumerate(saturated) if not busy]
    quotas = _apportion(
        sum(left.values()), [cores[i] for i in free], keep=[sum(held[i].values()) for i in free]
    )
    counts.update(zip(free, _fill(left, quotas, [held[i] for i in free]), strict=True))
    return {w.worker_id: counts[i] for i, w in enumerate(workers)}


def share_by_cores(total: int, workers: Sequence[WorkerCapacity]) -> dict[str, int]:
    """Split a whole number over workers in proportion to their cores (largest remainder)."""
    if not workers:
        return {}
    parts = _apportion(total, [w.cores for w in workers])
    return {w.worker_id: n for w, n in zip(workers, parts, strict=True)}


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


def _apportion(total: int, weights: Sequence[int], keep: Sequence[int] | None = None) -> list[int]:
    """Split ``total`` in proportion to ``weights`` by largest remainder, in exact integers.

    Everyone gets the floor of their exact share. The units left over go, one each, to
    indices whose share has a fractional part: first to those already holding the
    rounded-up amount (``keep`` says what each holds now), then by largest fractional part,
    then by lowest index.
    """
    counts = _floors(total, weights)
    whole = sum(weights)
    fractions = [
        total * weight - count * whole for weight, count in zip(weights, counts, strict=True)
    ]
    holds = keep or [0] * len(weights)
    candidates = [i for i, fraction in enumerate(fractions) if fraction]
    candidates.sort(key=lambda i: (holds[i] <= counts[i], -fractions[i], i))
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


@dataclass(frozen=True)
class _Leftover:
    """What is left of one class once every worker has the floor of its share."""

    units: int
    keepers: frozenset[int]  # workers already running one more than their floor
    fractions: list[int]  # each worker's fractional share, scaled to an integer


def _fill(
    targets: Mapping[str, int], quotas: Sequence[int], held: Sequence[Mapping[str, int]]
) -> list[dict[str, int]]:
    """Split every class over workers so that each worker's classes add up to its quota.

    Each worker first gets the floor of its quota-proportional share of each class; the
    units left over, at most one per worker and class, are then dealt by ``_deal``. So
    every count is within 1 of its quota-proportional share.
    """
    grand = sum(quotas)
    floors = {name: _floors(target, quotas) for name, target in targets.items()}
    owed = [quota - sum(f[i] for f in floors.values()) for i, quota in enumerate(quotas)]
    left = {
        name: _Leftover(
            units=target - sum(floors[name]),
            keepers=frozenset(i for i, h in enumerate(held) if h[name] > floors[name][i]),
            fractions=[target * q - f * grand for q, f in zip(quotas, floors[name], strict=True)],
        )
        for name, target in targets.items()
    }
    dealt = _deal(left, owed)
    return [
        {name: floors[name][i] + (i in dealt[name]) for name in targets} for i in range(len(quotas))
    ]


def _deal(left: Mapping[str, _Leftover], owed: Sequence[int]) -> dict[str, set[int]]:
    """Deal each class's leftover units to distinct workers, each up to what it is owed.

    First every keeper keeps its unit while its class and its own debt allow. Then, class
    by class, units go to the workers owed the most (ties to keepers, then to the largest
    fractional share, then by list order). Where that gets stuck, ``_shift`` makes room
    along an augmenting path. One always exists: the fractional shares are a fractional
    deal, so a whole one exists (integral flows), and any partial deal extends to it.
    """
    owed = list(owed)
    dealt: dict[str, set[int]] = {name: set() for name in left}

    def rank(name: str, i: int) -> tuple[int, bool, int, int]:
        return (-owed[i], i not in left[name].keepers, -left[name].fractions[i], i)

    for name, leftover in left.items():
        for i in sorted(leftover.keepers, key=partial(rank, name)):
            if owed[i] > 0 and len(dealt[name]) < leftover.units:
                dealt[name].add(i)
                owed[i] -= 1
    for name, leftover in left.items():
        free = [i for i in range(len(owed)) if owed[i] > 0 and i not in dealt[name]]
        for i in sorted(free, key=partial(rank, name))[: leftover.units - len(dealt[name])]:
            dealt[name].add(i)
            owed[i] -= 1
        while len(dealt[name]) < leftover.units:
            _shift(name, dealt, owed)
    return dealt


def _shift(start: str, dealt: dict[str, set[int]], owed: list[int]) -> None:
    """Deal one more unit of class ``start`` by moving other units along a shortest path.

    Breadth first: a worker without this class takes it; if nothing more is owed to that
    worker, it hands one of its other classes on to a worker without that class, and so
    on, until a worker that is still owed a unit takes the last one.
    """
    takes: dict[int, str] = {}  # worker -> the class it would take
    handed_by: dict[str, int | None] = {start: None}  # class -> the worker handing it on
    queue = deque([start])
    while queue:
        name = queue.popleft()
        for worker in range(len(owed)):
            if worker in dealt[name] or worker in takes:
                continue
            takes[worker] = name
            if owed[worker] > 0:
                owed[worker] -= 1
                taker: int | None = worker
                while taker is not None:
                    taken = takes[taker]
                    dealt[taken].add(taker)
                    taker = handed_by[taken]  # who handed it on now takes its own class
                    if taker is not None:
                        dealt[taken].discard(taker)
                return
            for other, holders in dealt.items():
                if worker in holders and other not in handed_by:
                    handed_by[other] = worker
                    queue.append(other)
    raise AssertionError(f"no way to deal a unit of {start}: this is a bug in dispatch")


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
