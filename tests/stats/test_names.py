"""Bounded request names: the pattern of a name, and folding past the limit (pure)."""

from __future__ import annotations

import pytest

from notebookswarm.stats.names import OVERFLOW_NAME, NameLimit, name_pattern
from notebookswarm.stats.requests import StatsRecorder


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("/item/42", "/item/{n}"),
        ("/item/42/reviews/7", "/item/{n}/reviews/{n}"),
        ("/user/550e8400-e29b-41d4-a716-446655440000/cart", "/user/{id}/cart"),
        ("/blob/5f3a9c2b7e1d", "/blob/{id}"),
        ("/search?q=shoes&page=3", "/search?q=shoes&page={n}"),
        ("/item42", "/item{n}"),
        ("/api/v1/items", "/api/v{n}/items"),
        ("/deadbeef", "/deadbeef"),  # all letters: a word, not an id
        ("/cafe12", "/cafe{n}"),  # hex but short: digits only
        ("/", "/"),
        ("login", "login"),
        ("", ""),
    ],
)
def test_name_pattern_replaces_numbers_and_ids(name: str, pattern: str) -> None:
    """Digit runs become {n}, UUIDs and hex ids of 8+ characters with a digit {id}."""
    assert name_pattern(name) == pattern


def test_a_limit_admits_the_first_names_and_folds_later_new_ones() -> None:
    """Past the limit, names already admitted still pass and new ones fold, counted."""
    limit = NameLimit(3)
    assert [limit.admit("GET", f"/item/{i}") for i in range(3)] == ["/item/0", "/item/1", "/item/2"]
    assert limit.admit("POST", "/item/0") == OVERFLOW_NAME  # a key is (method, name)
    assert limit.admit("GET", "/item/1") == "/item/1"
    assert limit.admit("GET", "/item/9") == OVERFLOW_NAME
    assert (limit.distinct, limit.take_folded(), limit.take_folded()) == (3, 2, 0)
    assert limit.folded_total == 2
    assert limit.top_pattern() == "/item/{n}"


def test_the_most_shared_pattern_is_the_top_one() -> None:
    """top_pattern names the pattern shared by the most admitted names; None before any."""
    limit = NameLimit()
    assert limit.top_pattern() is None
    for name in ["/", "/login", "/a/1", "/b/x1", "/b/x2", "/b/x3", "/a/2"]:
        limit.admit("GET", name)
    assert limit.top_pattern() == "/b/x{n}"


def test_a_recorder_folds_rows_and_errors_and_keeps_every_count() -> None:
    """Folded requests count under one row per method, errors too; no request is lost,
    and the limit holds across intervals (take)."""
    recorder = StatsRecorder(max_names=2)
    for i in range(5):
        recorder.record_request("GET", f"/item/{i}", 1000, 10, None if i % 2 else "HTTP 500")
    recorder.record_request("POST", "/item/0", 1000, 0, None)
    first = recorder.take()
    recorder.record_request("GET", "/item/7", 1000, 0, None)
    recorder.record_request("GET", "/item/1", 1000, 0, None)
    second = recorder.take()
    assert {key: s.requests for key, s in first.endpoints.items()} == {
        ("GET", "/item/0"): 1,
        ("GET", "/item/1"): 1,
        ("GET", OVERFLOW_NAME): 3,
        ("POST", OVERFLOW_NAME): 1,
    }
    assert first.errors == {
        ("GET", "/item/0", "HTTP 500"): 1,
        ("GET", OVERFLOW_NAME, "HTTP 500"): 2,
    }
    assert {key: s.requests for key, s in second.endpoints.items()} == {
        ("GET", OVERFLOW_NAME): 1,
        ("GET", "/item/1"): 1,
    }
    assert recorder.names.take_folded() == 5


def test_late_requests_fold_too() -> None:
    """Arrival-rate requests (with their lateness) fold like the others."""
    recorder = StatsRecorder(max_names=1)
    recorder.record_late_request("GET", "/a", 1000, 500, 0, None)
    recorder.record_late_request("GET", "/b", 1000, 500, 0, None)
    taken = recorder.take()
    assert set(taken.endpoints) == {("GET", OVERFLOW_NAME), ("GET", "/a")}
    assert taken.endpoints[("GET", OVERFLOW_NAME)].corrected is not None
