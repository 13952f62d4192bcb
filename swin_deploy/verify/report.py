"""Verify results as files for CI: the JSON report and JUnit XML (one test case per batch size and metric)."""

from __future__ import annotations

import json
from pathlib import Path

from ..fileio import junit_class, junit_xml, write_text_atomic
from .run import VerifyResult


def junit_report(result: VerifyResult) -> str:
    """One test case per batch size and metric, under a class naming the artifact and what ran it
    (fileio.junit_class)."""
    classname = junit_class(result.artifact.name, result.candidate, ("backend", "execution_precision"))
    cases = [(classname, f"{b.describe().replace(' ', '')}.{c.metric}",
              None if c.passed else f"{b.describe()}: {c.describe()}") for b in result.batches for c in b.checks]
    return junit_xml(f"swin-deploy verify {result.artifact.name}", cases, result.seconds)


def write_reports(result: VerifyResult, report: Path | None = None, junit: Path | None = None) -> None:
    """The JSON report and/or JUnit XML, each written atomically."""
    if report:
        write_text_atomic(report, json.dumps(result.report(), indent=2))
    if junit:
        write_text_atomic(junit, junit_report(result))
