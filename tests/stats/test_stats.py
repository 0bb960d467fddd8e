"""Request statistics: exact merges, a msgpack wire form, grouped errors, bounded memory."""

from __future__ import annotations

from collections.abc import Callable

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from notebookswarm.stats.requests import (
    MAX_ERROR_KINDS,
    MAX_EXCEPTION_KINDS,
    EndpointStats,
    RequestStats,
    StatsRecorder,
)

Request = tuple[str, str, int, int, str | None]

REFUSED = "ConnectionRefusedError: [Errno 111] Connection refused"
UNAVAILABLE = "HTTP 503 Service Unavailable"

requests = st.lists(
    st.tuples(
        st.sampled_from(["GET", "POST"]),
        st.sampled_from(["/", "/about/", "/login"]),
        st.integers(1_000, 3_600_000_000_000),
        st.integers(0, 10**7),
        st.none() | st.sampled_from([REFUSED, UNAVAILABLE]),
    ),
    max_size=300,
)
examples = settings(max_examples=80, deadline=None)


def stats_of(batch: list[Request]) -> RequestStats:
    stats = RequestStats()
    for request in batch:
        stats.record_request(*request)
    return stats


def raised(func: Callable[..., object], *args: object) -> BaseException:
    """Call ``func`` and return what it raised, traceback attached."""
    try:
        func(*args)
    except Exception as exc:
        return exc
    raise AssertionError(f"{func.__name__} did not raise")


def fail_here(message: str) -> None:
    raise ValueError(message)


def fail_there(message: str) -> None:
    raise ValueError(message)


def raise_kind(kind: type[Exception]) -> None:
    raise kind("one of many")


def wire_round_trip(stats: RequestStats) -> RequestStats:
    packed = msgpack.packb(stats.to_wire(), use_bin_type=True)
    return RequestStats.from_wire(msgpack.unpackb(packed, strict_map_key=False))


@examples
@given(requests, st.data())
def test_merging_the_parts_of_a_run_equals_recording_it_whole(
    batch: list[Request], data: st.DataObject
) -> None:
    """Recording a run in two intervals and merging them gives exactly the whole run."""
    cut = data.draw(st.integers(0, len(batch)), label="cut")
    whole = stats_of(batch)
    merged = stats_of(batch[:cut])
    merged.merge(stats_of(batch[cut:]))
    assert merged == whole
    reverse = stats_of(batch[cut:])
    reverse.merge(stats_of(batch[:cut]))
    assert reverse.endpoints == whole.endpoints
    assert reverse.errors == whole.errors


@examples
@given(requests)
def test_wire_form_round_trips_through_msgpack(batch: list[Request]) -> None:
    """to_wire packed with msgpack and read back by from_wire gives equal statistics."""
    stats = stats_of(batch)
    stats.record_exception(raised(fail_here, "in the wire test"))
    assert wire_round_trip(stats) == stats


def test_an_empty_interval_round_trips_and_says_it_is_empty() -> None:
    """An interval with nothing recorded is empty, also after a trip over the wire."""
    stats = RequestStats()
    assert stats.is_empty()
    assert wire_round_trip(stats) == stats
    assert wire_round_trip(stats).is_empty()


def test_an_endpoint_counts_requests_failures_time_and_bytes() -> None:
    """Each (method, name) keeps requests, failures, total time, bytes and exact min/max."""
    stats = stats_of(
        [
            ("GET", "/", 2_000, 10, None),
            ("GET", "/", 5_000, 20, UNAVAILABLE),
            ("GET", "/", 3_000, 30, None),
            ("POST", "/", 7_000, 1, None),
        ]
    )
    get = stats.endpoints[("GET", "/")]
    assert (get.requests, get.failures, get.total_ns, get.bytes) == (3, 1, 10_000, 60)
    assert (get.latency.count, get.latency.min, get.latency.max) == (3, 2_000, 5_000)
    assert stats.endpoints[("POST", "/")].requests == 1


def test_errors_are_grouped_by_method_name_and_error_with_counts() -> None:
    """Failures are counted per (method, name, error), successes are not errors."""
    stats = stats_of(
        [
            ("GET", "/", 1_000, 0, REFUSED),
            ("GET", "/", 1_000, 0, REFUSED),
            ("GET", "/", 1_000, 0, UNAVAILABLE),
            ("POST", "/", 1_000, 0, REFUSED),
            ("GET", "/", 1_000, 0, None),
        ]
    )
    assert stats.errors == {
        ("GET", "/", REFUSED): 2,
        ("GET", "/", UNAVAILABLE): 1,
        ("POST", "/", REFUSED): 1,
    }


def test_exceptions_are_grouped_by_where_they_were_raised() -> None:
    """Exceptions from one place share an entry with a count and the latest example; another
    place gets its own entry."""
    stats = RequestStats()
    stats.record_exception(raised(fail_here, "first"))
    stats.record_exception(raised(fail_here, "second"))
    stats.record_exception(raised(fail_there, "elsewhere"))
    assert len(stats.exceptions) == 2
    here = next(r for r in stats.exceptions.values() if "fail_here" in r.traceback)
    there = next(r for r in stats.exceptions.values() if "fail_there" in r.traceback)
    assert (here.count, here.error) == (2, "ValueError: second")
    assert "ValueError: second" in here.traceback
    assert "first" not in here.traceback
    assert (there.count, there.error) == (1, "ValueError: elsewhere")


def test_merging_exceptions_adds_counts_and_keeps_the_later_example() -> None:
    """Merging two intervals adds the counts of a shared site and keeps the later traceback."""
    earlier, later = RequestStats(), RequestStats()
    earlier.record_exception(raised(fail_here, "early"))
    later.record_exception(raised(fail_here, "late"))
    later.record_exception(raised(fail_there, "only later"))
    earlier.merge(later)
    here = next(r for r in earlier.exceptions.values() if "fail_here" in r.traceback)
    assert (here.count, here.error) == (2, "ValueError: late")
    assert sum(r.count for r in earlier.exceptions.values()) == 3


def test_too_many_distinct_errors_are_counted_under_one_overflow_entry() -> None:
    """Past MAX_ERROR_KINDS distinct errors, new ones share one entry and counts still add up."""
    stats = RequestStats()
    extra = 50
    for i in range(MAX_ERROR_KINDS + extra):
        stats.record_request("GET", "/", 1_000, 0, f"HTTP 500 request id {i}")
    stats.record_request("GET", "/", 1_000, 0, "HTTP 500 request id 0")  # a known one still counts
    assert len(stats.errors) == MAX_ERROR_KINDS + 1
    assert stats.errors[("GET", "/", "HTTP 500 request id 0")] == 2
    assert sum(stats.errors.values()) == stats.endpoints[("GET", "/")].failures
    assert stats.endpoints[("GET", "/")].failures == MAX_ERROR_KINDS + extra + 1


def test_merging_many_distinct_errors_stays_bounded() -> None:
    """Merging intervals full of distinct errors keeps at most MAX_ERROR_KINDS + 1 kinds per
    endpoint, and the counts still add up."""
    total = RequestStats()
    for interval in range(3):
        stats = RequestStats()
        for i in range(MAX_ERROR_KINDS):
            stats.record_request("GET", "/", 1_000, 0, f"HTTP 500 id {interval}-{i}")
        total.merge(stats)
    assert len(total.errors) <= MAX_ERROR_KINDS + 1
    assert sum(total.errors.values()) == 3 * MAX_ERROR_KINDS
    assert total.endpoints[("GET", "/")].failures == 3 * MAX_ERROR_KINDS


def test_too_many_distinct_exceptions_are_counted_under_one_overflow_entry() -> None:
    """Past MAX_EXCEPTION_KINDS raise sites, new ones share one entry and counts add up."""
    kinds = [type(f"Kind{i}", (Exception,), {}) for i in range(MAX_EXCEPTION_KINDS + 30)]
    stats = RequestStats()
    for kind in kinds:
        stats.record_exception(raised(raise_kind, kind))
    stats.record_exception(raised(raise_kind, kinds[0]))  # a known site still counts
    assert len(stats.exceptions) == MAX_EXCEPTION_KINDS + 1
    assert sum(r.count for r in stats.exceptions.values()) == len(kinds) + 1
    assert max(r.count for r in stats.exceptions.values()) == 30  # the overflow entry

    merged = RequestStats()
    for _ in range(2):
        merged.merge(stats)
    assert len(merged.exceptions) == MAX_EXCEPTION_KINDS + 1
    assert sum(r.count for r in merged.exceptions.values()) == 2 * (len(kinds) + 1)


def test_take_hands_over_the_interval_and_starts_an_empty_one() -> None:
    """StatsRecorder.take returns what was recorded so far and later records go to a new
    interval."""
    recorder = StatsRecorder()
    recorder.record_request("GET", "/", 1_000, 5, None)
    recorder.record_exception(raised(fail_here, "counted"))
    taken = recorder.take()
    assert taken.endpoints[("GET", "/")].requests == 1
    assert len(taken.exceptions) == 1
    assert recorder.current.is_empty()
    recorder.record_request("GET", "/", 2_000, 5, REFUSED)
    assert taken.endpoints[("GET", "/")].requests == 1  # the taken interval is not touched
    assert recorder.take().errors == {("GET", "/", REFUSED): 1}
    assert recorder.take().is_empty()


@examples
@given(requests)
def test_total_is_every_endpoint_merged(batch: list[Request]) -> None:
    """total() equals merging every endpoint's statistics into one."""
    stats = stats_of(batch)
    expected = EndpointStats()
    for endpoint in stats.endpoints.values():
        expected.merge(endpoint)
    total = stats.total()
    assert total == expected
    assert total.requests == len(batch)
    assert total.failures == sum(1 for request in batch if request[4] is not None)
    assert total.latency.count == len(batch)
    if batch:
        assert total.latency.max == max(request[2] for request in batch)
