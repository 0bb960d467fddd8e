"""Threshold verdicts as JUnit XML, the report format CI systems show as test results.

One ``<testsuite>`` per run, one ``<testcase>`` per threshold (its expression is the
name), a ``<failure>`` in each breached one saying what was observed. Written with the
standard library, so a container needs nothing more to produce it.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd


def junit_xml(verdicts: pd.DataFrame, suite: str = "notebookswarm thresholds") -> str:
    """Return the verdicts (``Run.check``'s DataFrame) as a JUnit XML document."""
    failed = int((~verdicts["passed"]).sum())
    root = ET.Element("testsuites", name=suite, tests=str(len(verdicts)), failures=str(failed))
    group = ET.SubElement(
        root, "testsuite", name=suite, tests=str(len(verdicts)), failures=str(failed), errors="0"
    )
    for row in verdicts.to_dict("records"):
        case = ET.SubElement(group, "testcase", name=str(row["threshold"]), classname=suite)
        observed = float(row["observed"])
        note = str(row["note"]) if pd.notna(row["note"]) and row["note"] else ""
        seen = note or f"observed {observed:g}"
        limit = float(row["limit"])
        if not bool(row["passed"]):
            failure = ET.SubElement(
                case, "failure", message=f"{row['threshold']}: {seen}", type="threshold"
            )
            failure.text = f"{row['threshold']} is breached: {seen}, limit {limit:g}"
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"observed {observed:g}, limit {limit:g}" if not math.isnan(observed) else ""
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(verdicts: pd.DataFrame, path: str | Path) -> Path:
    """Write the verdicts as JUnit XML to ``path`` (its folder is made); return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(junit_xml(verdicts), encoding="utf-8")
    return out
