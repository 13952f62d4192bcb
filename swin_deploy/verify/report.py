"""Verify results as files for CI: the JSON report and JUnit XML (one test case per batch size and metric)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from ..fileio import write_text_atomic
from .run import VerifyResult


def junit_xml(result: VerifyResult) -> str:
    cases = [(b, c) for b in result.batches for c in b.checks]
    failures = sum(not c.passed for _, c in cases)
    suite = ET.Element("testsuite", name=f"swin-deploy verify {result.artifact.name}", tests=str(len(cases)),
                       failures=str(failures), errors="0", time=f"{result.seconds:.3f}")
    for batch, check in cases:
        case = ET.SubElement(suite, "testcase", classname=f"{result.info.variant}.{result.info.precision}",
                             name=f"{batch.describe().replace(' ', '')}.{check.metric}")
        if not check.passed:
            ET.SubElement(case, "failure", message=f"{batch.describe()}: {check.describe()}")
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True)


def write_reports(result: VerifyResult, report: Path | None = None, junit: Path | None = None) -> None:
    """The JSON report and/or JUnit XML, each written atomically."""
    if report:
        write_text_atomic(report, json.dumps(result.report(), indent=2))
    if junit:
        write_text_atomic(junit, junit_xml(result))
