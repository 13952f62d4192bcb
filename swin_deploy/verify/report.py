"""Verify results as JUnit XML (one test case per batch size and metric) for CI systems."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .run import VerifyResult


def junit_xml(result: VerifyResult) -> str:
    cases = [(b.batch_size, c) for b in result.batches for c in b.checks]
    failures = sum(not c.passed for _, c in cases)
    suite = ET.Element("testsuite", name=f"swin-deploy verify {result.artifact.name}", tests=str(len(cases)),
                       failures=str(failures), errors="0", time=f"{result.seconds:.3f}")
    for batch, check in cases:
        case = ET.SubElement(suite, "testcase", classname=f"{result.info.variant}.{result.info.precision}",
                             name=f"batch{batch}.{check.metric}")
        if not check.passed:
            ET.SubElement(case, "failure", message=check.describe())
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True)
