"""Tests of dispatch: users over classes and workers, and the spawn rate over workers."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notebookswarm.cluster.dispatch import (
    Assignment,
    UserClassSpec,
    WorkerCapacity,
    dispatch,
    split_rate,
    split_users,
)
from notebookswarm.errors import ConfigError


def totals(assignment: Assignment) -> dict[str, int]:
    """Sum each worker's users over classes."""
    return {worker: sum(users.values()) for worker, users in assignment.items()}


def class_sums(assignment: Assignment, targets: dict[str, int]) -> dict[str, int]:
    """Sum each class's users over workers."""
    return {name: sum(users[name] for users in assignment.values()) for name in targets}


def moved(before: Assignment, after: Assignment) -> int:
    """Count the users stopped on one worker to be started on another."""
    return sum(
        max(0, count - after.get(worker, {}).get(name, 0))
        for worker, users in before.items()
        if worker in after
        for name, count in users.items()
    )


def workers_of(*cores: int) -> list[WorkerCapacity]:
    return [WorkerCapacity(f"w{i + 1}", n) for i, n in enumerate(cores)]


# -- split_users ----------------------------------------------------------------------------


def test_weights_split_users_proportionally() -> None:
    """Users are split over classes in proportion to their weights."""
    classes = [UserClassSpec("Reader", weight=3), UserClassSpec("Writer", weight=1)]
    assert split_users(8, classes) == {"Reader": 6, "Writer": 2}


def test_leftover_users_go_to_largest_remainder() -> None:
    """A user that does not divide evenly goes to the class with the largest remainder."""
    classes = [UserClassSpec("A", weight=1), UserClassSpec("B", weight=2)]
    assert split_users(4, classes) == {"A": 1, "B": 3}  # exact shares 1.33 and 2.67


def test_remainder_ties_go_in_declaration_order() -> None:
    """Between equal remainders, the class declared first gets the extra user."""
    classes = [UserClassSpec("A"), UserClassSpec("B"), UserClassSpec("C")]
    assert split_users(10, classes) == {"A": 4, "B": 3, "C": 3}
    assert split_users(2, classes) == {"A": 1, "B": 1, "C": 0}


def test_fixed_count_classes_get_exactly_their_count() -> None:
    """Classes with fixed_count get exactly that many; the rest is split by weight."""
    classes = [UserClassSpec("Admin", fixed_count=1), UserClassSpec("A"), UserClassSpec("B")]
    assert split_users(5, classes) == {"Admin": 1, "A": 2, "B": 2}


def test_fixed_counts_are_served_in_declaration_order() -> None:
    """When users run short, fixed classes declared first are served first."""
    classes = [
        UserClassSpec("First", fixed_count=3),
        UserClassSpec("Second", fixed_count=2),
        UserClassSpec("Weighted"),
    ]
    assert split_users(4, classes) == {"First": 3, "Second": 1, "Weighted": 0}


def test_zero_users_gives_zero_everywhere() -> None:
    """Zero users gives every class zero."""
    assert split_users(0, [UserClassSpec("A"), UserClassSpec("B", fixed_count=2)]) == {
        "A": 0,
        "B": 0,
    }


def test_users_beyond_fixed_counts_without_weights_are_refused() -> None:
    """Asking for more users than fixed classes take, with no weighted class, says what to do."""
    classes = [UserClassSpec("A", fixed_count=2), UserClassSpec("B", fixed_count=3)]
    with pytest.raises(ConfigError, match="ask for at most 5 users or add a weighted user class"):
        split_users(6, classes)


@pytest.mark.parametrize(
    ("total", "classes", "message"),
    [
        (-1, [UserClassSpec("A")], "negative"),
        (1, [], "no user class"),
        (1, [UserClassSpec("A"), UserClassSpec("A")], "repeat"),
        (1, [UserClassSpec("A", weight=-1)], "must be 0 or more"),
        (1, [UserClassSpec("A", fixed_count=-1)], "must be 0 or more"),
    ],
)
def test_split_users_refuses_nonsense(
    total: int, classes: list[UserClassSpec], message: str
) -> None:
    """Negative counts, repeated names and missing classes raise ConfigError."""
    with pytest.raises(ConfigError, match=message):
        split_users(total, classes)


class_specs = st.lists(
    st.builds(
        UserClassSpec,
        name=st.text(min_size=1, max_size=3),
        weight=st.integers(1, 10),
        fixed_count=st.sampled_from([0, 0, 0, 1, 2, 5]),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda spec: spec.name,
).filter(lambda specs: any(spec.fixed_count == 0 for spec in specs))


@given(st.integers(0, 10_000), class_specs)
def test_split_users_sums_to_total_and_respects_weights(
    total: int, classes: list[UserClassSpec]
) -> None:
    """The split sums to the total, honours fixed counts and is within 1 of the weights."""
    counts = split_users(total, classes)
    assert sum(counts.values()) == total
    left = total
    for spec in classes:
        if spec.fixed_count:
            assert counts[spec.name] == min(spec.fixed_count, left)
            left -= counts[spec.name]
    weighted = [spec for spec in classes if not spec.fixed_count]
    whole = sum(spec.weight for spec in weighted)
    for spec in weighted:
        assert abs(counts[spec.name] - left * spec.weight / whole) < 1


# -- dispatch -------------------------------------------------------------------------------


def test_users_follow_cores() -> None:
    """A 4-core worker gets twice the users of a 2-core worker."""
    assert dispatch({"A": 300}, workers_of(4, 2)) == {"w1": {"A": 200}, "w2": {"A": 100}}


def test_uneven_split_stays_within_one_of_capacity_share() -> None:
    """When users do not divide evenly, each worker is within 1 of its share (133.3 / 66.7)."""
    assert totals(dispatch({"A": 200}, workers_of(4, 2))) == {"w1": 133, "w2": 67}


def test_every_worker_gets_every_class() -> None:
    """The result names every worker and every class, zeros included."""
    assert dispatch({"A": 1, "B": 0}, workers_of(1, 1)) == {
        "w1": {"A": 1, "B": 0},
        "w2": {"A": 0, "B": 0},
    }


def test_small_classes_spread_over_workers() -> None:
    """One user of each of three classes lands on three different equal workers."""
    assignment = dispatch({"A": 1, "B": 1, "C": 1}, workers_of(2, 2, 2))
    assert totals(assignment) == {"w1": 1, "w2": 1, "w3": 1}


def test_each_class_is_split_evenly_where_it_can_be() -> None:
    """Four users of a class on two equal workers run two and two, even with an odd total."""
    assignment = dispatch({"A": 4, "B": 1}, workers_of(4, 4))
    assert [users["A"] for users in assignment.values()] == [2, 2]


def test_joining_worker_takes_users_only_from_others() -> None:
    """A worker that joins takes its share, and no user moves between the workers already there."""
    targets = {"A": 50, "B": 50}
    before = dispatch(targets, workers_of(4, 4))
    after = dispatch(targets, workers_of(4, 4, 2), current=before)
    assert totals(after) == {"w1": 40, "w2": 40, "w3": 20}
    assert moved(before, after) == 20
    assert split_rate(10.0, after, current=before) == {"w1": 0.0, "w2": 0.0, "w3": 10.0}


def test_leaving_worker_users_move_to_survivors_only() -> None:
    """When a worker leaves, its users go to the survivors, who keep all of theirs."""
    targets = {"A": 60, "B": 30}
    before = dispatch(targets, workers_of(2, 2, 2))
    after = dispatch(targets, workers_of(2, 2), current=before)
    assert totals(after) == {"w1": 45, "w2": 45}
    assert moved(before, after) == 0
    assert class_sums(after, targets) == targets


def test_dispatching_unchanged_inputs_moves_nobody() -> None:
    """Dispatching again with the result as current gives the same result."""
    targets = {"A": 7, "B": 13, "C": 1}
    workers = workers_of(3, 1, 8, 2)
    first = dispatch(targets, workers, current={"w1": {"A": 7}})
    assert dispatch(targets, workers, current=first) == first


def test_saturated_worker_gets_no_new_users() -> None:
    """A saturated worker keeps what it runs and the others take the whole increase."""
    workers = [WorkerCapacity("busy", 4, saturated=True), WorkerCapacity("idle", 4)]
    current = {"busy": {"A": 10}, "idle": {"A": 10}}
    assert dispatch({"A": 100}, workers, current) == {"busy": {"A": 10}, "idle": {"A": 90}}


def test_saturated_worker_gets_no_new_users_of_any_class() -> None:
    """A saturated worker does not start users of a class it does not run yet."""
    workers = [WorkerCapacity("busy", 4, saturated=True), WorkerCapacity("idle", 4)]
    current = {"busy": {"A": 5}, "idle": {"A": 5}}
    assignment = dispatch({"A": 10, "B": 10}, workers, current)
    assert assignment["busy"] == {"A": 5, "B": 0}
    assert assignment["idle"] == {"A": 5, "B": 10}


def test_saturated_worker_is_capped_at_its_fair_share() -> None:
    """A saturated worker running more than its fair share sheds the excess."""
    workers = [WorkerCapacity("busy", 4, saturated=True), WorkerCapacity("idle", 4)]
    current = {"busy": {"A": 80}, "idle": {"A": 20}}
    assert totals(dispatch({"A": 100}, workers, current)) == {"busy": 50, "idle": 50}


def test_saturated_worker_sheds_users_when_the_target_drops() -> None:
    """When a class's target falls below what a saturated worker runs, it runs fewer."""
    workers = [WorkerCapacity("busy", 4, saturated=True), WorkerCapacity("idle", 4)]
    current = {"busy": {"A": 10}, "idle": {"A": 10}}
    assert dispatch({"A": 6}, workers, current) == {"busy": {"A": 3}, "idle": {"A": 3}}


def test_saturation_is_ignored_when_every_worker_is_saturated() -> None:
    """If every worker is saturated, users are dispatched as if none were."""
    workers = [WorkerCapacity("a", 4, saturated=True), WorkerCapacity("b", 2, saturated=True)]
    assert totals(dispatch({"A": 60}, workers, {"a": {"A": 1}})) == {"a": 40, "b": 20}


def test_no_workers_and_no_users_is_empty() -> None:
    """Dispatching zero users over no workers gives an empty assignment."""
    assert dispatch({"A": 0}, []) == {}


@pytest.mark.parametrize(
    ("targets", "workers", "message"),
    [
        ({"A": 1}, [], "no worker: start a worker"),
        ({"A": -1}, workers_of(1), "target for user class A is -1"),
        ({"A": 1}, workers_of(0), "has 0 cores"),
        ({"A": 1}, [WorkerCapacity("w", 1), WorkerCapacity("w", 2)], "repeat"),
    ],
)
def test_dispatch_refuses_nonsense(
    targets: dict[str, int], workers: list[WorkerCapacity], message: str
) -> None:
    """Users without workers, negative targets, coreless or repeated workers raise ConfigError."""
    with pytest.raises(ConfigError, match=message):
        dispatch(targets, workers)


worker_lists = st.lists(
    st.builds(
        WorkerCapacity,
        worker_id=st.text(min_size=1, max_size=3),
        cores=st.sampled_from([1, 2, 3, 4, 8, 16, 64]),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda worker: worker.worker_id,
)
class_names = st.text(min_size=1, max_size=3)
target_maps = st.dictionaries(
    class_names, st.integers(0, 5) | st.integers(0, 10_000), min_size=1, max_size=6
)


def current_for(
    workers: list[WorkerCapacity], targets: dict[str, int]
) -> st.SearchStrategy[Assignment]:
    """Build what the workers might run now, including classes no longer targeted."""
    names = st.sampled_from(sorted(targets)) | class_names
    per_worker = st.dictionaries(names, st.integers(0, 3000), max_size=6)
    return st.fixed_dictionaries({w.worker_id: per_worker for w in workers})


@given(target_maps, worker_lists, st.data())
def test_dispatch_is_exact_and_proportional_to_cores(
    targets: dict[str, int], workers: list[WorkerCapacity], data: st.DataObject
) -> None:
    """Per-class sums equal the targets; worker totals are within 1 of their core share."""
    current = data.draw(st.none() | current_for(workers, targets))
    assignment = dispatch(targets, workers, current)
    assert class_sums(assignment, targets) == targets
    assert all(set(users) == set(targets) for users in assignment.values())
    grand, cores = sum(targets.values()), sum(w.cores for w in workers)
    for worker in workers:
        share = grand * worker.cores / cores
        assert abs(totals(assignment)[worker.worker_id] - share) < 1
        for name, target in targets.items():
            assert abs(assignment[worker.worker_id][name] - target * worker.cores / cores) < 2


@given(target_maps, worker_lists, st.data())
def test_dispatch_again_with_its_result_changes_nothing(
    targets: dict[str, int], workers: list[WorkerCapacity], data: st.DataObject
) -> None:
    """Feeding dispatch its own result as current returns that result unchanged."""
    saturated = data.draw(st.lists(st.booleans(), min_size=len(workers), max_size=len(workers)))
    workers = [
        WorkerCapacity(w.worker_id, w.cores, busy)
        for w, busy in zip(workers, saturated, strict=True)
    ]
    current = data.draw(st.none() | current_for(workers, targets))
    first = dispatch(targets, workers, current)
    assert dispatch(targets, workers, first) == first


@given(target_maps, worker_lists, st.data())
def test_saturated_workers_never_gain_and_others_share_the_rest(
    targets: dict[str, int], workers: list[WorkerCapacity], data: st.DataObject
) -> None:
    """Saturated workers gain no users of any class; the others are within 1 of their share."""
    saturated = data.draw(st.lists(st.booleans(), min_size=len(workers), max_size=len(workers)))
    workers = [
        WorkerCapacity(w.worker_id, w.cores, busy)
        for w, busy in zip(workers, saturated, strict=True)
    ]
    current = data.draw(current_for(workers, targets))
    assignment = dispatch(targets, workers, current)
    assert class_sums(assignment, targets) == targets
    busy = [w for w in workers if w.saturated]
    free = [w for w in workers if not w.saturated]
    if not free:
        return  # all saturated: dispatched as if none were, covered above
    grand, cores = sum(targets.values()), sum(w.cores for w in workers)
    for worker in busy:
        users = assignment[worker.worker_id]
        assert all(users[name] <= current[worker.worker_id].get(name, 0) for name in targets)
        assert sum(users.values()) <= math.ceil(grand * worker.cores / cores)
    rest = grand - sum(sum(assignment[w.worker_id].values()) for w in busy)
    free_cores = sum(w.cores for w in free)
    for worker in free:
        share = rest * worker.cores / free_cores
        assert abs(sum(assignment[worker.worker_id].values()) - share) < 1


# -- split_rate -----------------------------------------------------------------------------


def test_rate_follows_users_still_to_start() -> None:
    """Each worker's rate is proportional to the users it still has to start."""
    current = {"w1": {"A": 10}, "w2": {"A": 0}}
    assignment = {"w1": {"A": 40}, "w2": {"A": 10}}
    assert split_rate(8.0, assignment, current) == {"w1": 6.0, "w2": 2.0}


def test_rate_counts_starts_per_class() -> None:
    """A worker swapping one class for another has the new class's users to start."""
    current = {"w1": {"A": 10, "B": 0}, "w2": {"A": 10, "B": 0}}
    assignment = {"w1": {"A": 0, "B": 10}, "w2": {"A": 10, "B": 0}}
    assert split_rate(5.0, assignment, current) == {"w1": 5.0, "w2": 0.0}


def test_rate_follows_shares_when_nothing_changes() -> None:
    """With nothing to start, the rate is split by each worker's share of the users."""
    assignment = {"w1": {"A": 30}, "w2": {"A": 10}}
    assert split_rate(4.0, assignment, current=assignment) == {"w1": 3.0, "w2": 1.0}


def test_rate_is_split_evenly_without_users() -> None:
    """With no users anywhere, the rate is split evenly."""
    assert split_rate(3.0, {"a": {"A": 0}, "b": {}, "c": {}}) == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert split_rate(3.0, {}) == {}


@pytest.mark.parametrize("rate", [-1.0, math.nan, math.inf])
def test_split_rate_refuses_nonsense(rate: float) -> None:
    """A negative or non-finite rate raises ConfigError."""
    with pytest.raises(ConfigError, match="spawn rate"):
        split_rate(rate, {"w1": {"A": 1}})


@given(
    st.floats(0, 10_000),
    target_maps,
    worker_lists,
    st.data(),
)
def test_rates_sum_to_the_requested_rate(
    rate: float, targets: dict[str, int], workers: list[WorkerCapacity], data: st.DataObject
) -> None:
    """The parts sum to the requested rate, and only workers with users to start get any."""
    current = data.draw(st.none() | current_for(workers, targets))
    assignment = dispatch(targets, workers, current)
    rates = split_rate(rate, assignment, current)
    assert set(rates) == set(assignment)
    assert math.isclose(sum(rates.values()), rate, rel_tol=1e-9, abs_tol=1e-9)
    assert all(part >= 0 for part in rates.values())
    now = current or {}
    starting = {
        worker
        for worker, users in assignment.items()
        if any(count > now.get(worker, {}).get(name, 0) for name, count in users.items())
    }
    if starting:
        assert all(rates[worker] == 0 for worker in set(rates) - starting)
