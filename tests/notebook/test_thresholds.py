"""Thresholds: a pure parser with errors naming the bad part, and verdicts over stats."""

from __future__ import annotations

import math

import junitparser
import pandas as pd
import pytest

from notebookswarm.errors import ConfigError
from notebookswarm.notebook.junit import write_junit
from notebookswarm.notebook.thresholds import Threshold, breached, evaluate, parse_threshold


def stats_frame() -> pd.DataFrame:
    """A stats DataFrame as a run gives one: two endpoints and Aggregated."""
    rows = [
        ("GET", "/api", 100, 1, 0.01, 50.0, 12.0, 1.0, 400.0, 10.0, 20.0, 300.0),
        ("POST", "/api", 10, 0, 0.0, 5.0, 30.0, 2.0, 90.0, 25.0, 80.0, 90.0),
        ("GET", "/slow", 0, 0, 0.0, 0.0, *[math.nan] * 6),
        ("", "Aggregated", 110, 1, 1 / 110, 55.0, 13.6, 1.0, 400.0, 11.0, 25.0, 290.0),
    ]
    columns = ["method", "name", "requests", "failures", "failure_ratio", "rps", "mean_ms"]
    columns += ["min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms"]
    return pd.DataFrame(rows, columns=columns)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p95_ms<500", Threshold("p95_ms<500", "p95_ms", "<", 500.0)),
        ("rps>200", Threshold("rps>200", "rps", ">", 200.0)),
        ("failure_ratio<0.01", Threshold("failure_ratio<0.01", "failure_ratio", "<", 0.01)),
        ("failure_ratio <= 1%", Threshold("failure_ratio <= 1%", "failure_ratio", "<=", 0.01)),
        ("avg_ms>=3ms", Threshold("avg_ms>=3ms", "avg_ms", ">=", 3.0)),
        (
            "GET /api:p99_ms<800",
            Threshold("GET /api:p99_ms<800", "p99_ms", "<", 800.0, "/api", "GET"),
        ),
        (
            "GET /a:b:max_ms<1",
            Threshold("GET /a:b:max_ms<1", "max_ms", "<", 1.0, "/a:b", "GET"),
        ),
        ("/slow:requests>0", Threshold("/slow:requests>0", "requests", ">", 0.0, "/slow", None)),
    ],
)
def test_parse_reads_metric_operator_limit_and_endpoint(text: str, expected: Threshold) -> None:
    """An expression reads as its endpoint (before the last ':'), metric, operator, limit."""
    assert parse_threshold(text) == expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("p96_ms<5", "unknown metric 'p96_ms'"),
        ("p95_ms=5", "operator '='"),
        ("p95_ms==5", "operator '=='"),
        ("p95_ms<fast", "limit 'fast' is not a number"),
        ("p95_ms<", "limit '' is not a number"),
        ("rps 200", "no comparison in 'rps 200'"),
        ("GET /api p95_ms<5", "could not read the metric 'GET /api p95_ms'"),
        ("GET:rps>1", "endpoint 'GET' has a method but no name"),
        ("  ", "is empty"),
    ],
)
def test_parse_refuses_naming_the_part_it_could_not_read(text: str, names: str) -> None:
    """A malformed expression raises ConfigError quoting the part that is wrong."""
    with pytest.raises(ConfigError, match="threshold") as caught:
        parse_threshold(text)
    assert names in str(caught.value)


def test_evaluate_gives_one_verdict_per_threshold() -> None:
    """Each threshold reads its row and column; NaN (no requests) never passes."""
    verdicts = evaluate(
        [
            "p95_ms<30",
            "p95_ms<20",
            "GET /api:p99_ms<=300",
            "POST /api:rps>6",
            "failure_ratio<1%",
            "avg_ms<13",
            "/slow:p95_ms<1000",
            "requests>=110",
        ],
        stats_frame(),
    )
    assert list(verdicts.columns) == ["threshold", "observed", "limit", "passed", "note"]
    assert verdicts["passed"].tolist() == [True, False, True, False, True, False, False, True]
    assert verdicts["observed"].iloc[0] == 25.0
    assert verdicts["limit"].iloc[3] == 6.0
    assert math.isnan(verdicts["observed"].iloc[6])
    assert verdicts["note"].iloc[6] == "no requests to /slow"
    assert breached(verdicts)[0] == "p95_ms<20  (observed 25)"


def test_a_name_used_with_two_methods_needs_one() -> None:
    """A name-only threshold on a name two methods use asks which method is meant."""
    with pytest.raises(ConfigError, match="GET, POST"):
        evaluate(["/api:p95_ms<5"], stats_frame())


def test_junit_file_parses_with_a_failure_per_breach(tmp_path: object) -> None:
    """The JUnit XML has one test case per threshold and a failure in each breached one."""
    verdicts = evaluate(["p95_ms<30", "p95_ms<20", "/slow:p95_ms<1"], stats_frame())
    path = write_junit(verdicts, f"{tmp_path}/out/thresholds.xml")
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, junitparser.JUnitXml) else [xml]
    cases = [case for suite in suites for case in suite]
    assert [c.name for c in cases] == ["p95_ms<30", "p95_ms<20", "/slow:p95_ms<1"]
    failed = [c.name for c in cases if not c.is_passed]
    assert failed == ["p95_ms<20", "/slow:p95_ms<1"]
    assert "observed 25" in cases[1].result[0].message
