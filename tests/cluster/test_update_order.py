"""The controller delivers each update once and in order, asking once per gap to replay."""

from __future__ import annotations

from notebookswarm.cluster.control import UpdateOrder

from updates import as_update


def seqs(updates: list) -> list[int]:  # type: ignore[type-arg]
    return [u.seq for u in updates]


def test_in_order_updates_pass_straight_through() -> None:
    """Consecutive updates are delivered as they come, with no replay asked."""
    order = UpdateOrder()
    for seq in range(3):
        ready, ask = order.take(as_update({"seq": seq}), now=float(seq))
        assert (seqs(ready), ask) == ([seq], None)


def test_a_gap_is_asked_for_once_and_filled_in_order() -> None:
    """After 4 comes 7: 7 is held, a replay after 4 is asked once; when 5 and 6 arrive,
    5, 6 and 7 go out in order, and a late duplicate is never delivered twice."""
    order = UpdateOrder()
    order.take(as_update({"seq": 4}), now=0.0)
    assert order.take(as_update({"seq": 7}), now=1.0) == ([], 4)
    assert order.take(as_update({"seq": 8}), now=1.5) == ([], None)  # asked already
    ready, ask = order.take(as_update({"seq": 5}), now=2.0)
    assert (seqs(ready), ask) == ([5], None)
    ready, _ = order.take(as_update({"seq": 6}), now=2.1)
    assert seqs(ready) == [6, 7, 8]
    assert order.take(as_update({"seq": 7}), now=2.2) == ([], None)


def test_a_gap_the_master_cannot_fill_is_given_up_after_patience() -> None:
    """Without a replay within patience, the held updates go out and the gap stays."""
    order = UpdateOrder(patience=3.0)
    order.take(as_update({"seq": 1}), now=0.0)
    order.take(as_update({"seq": 5}), now=1.0)
    assert order.give_up(now=3.9) == []
    assert seqs(order.give_up(now=4.1)) == [5]
    ready, ask = order.take(as_update({"seq": 6}), now=4.2)
    assert (seqs(ready), ask) == ([6], None)


def test_a_master_that_started_over_is_followed() -> None:
    """Seq 0 after seq 9 is a new master: its updates are delivered, not dropped as old."""
    order = UpdateOrder()
    order.take(as_update({"seq": 9}), now=0.0)
    ready, ask = order.take(as_update({"seq": 0}), now=1.0)
    assert (seqs(ready), ask) == ([0], None)
