"""JUnit XML of a report: one testcase per check, for CI dashboards."""

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any


def build_junit(report: Mapping[str, Any]) -> ET.Element:
    summary = report["summary"]
    suites = ET.Element("testsuites", name="service_monitor")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="service_monitor",
        tests=str(summary["total"]),
        failures=str(summary["failed"]),
        errors="0",
        skipped="0",
        time=f"{report['duration_ms'] / 1000:.3f}",
        timestamp=report["started_at"],
    )
    for check in report["checks"]:
        final = check["attempts"][-1]
        case = ET.SubElement(
            suite,
            "testcase",
            classname="service_monitor",
            name=check["name"],
            time=f"{final['elapsed_ms'] / 1000:.3f}",
        )
        if check["reasons"]:
            text = "\n".join(f"{r['code']}: {r['message']}" for r in check["reasons"])
            failure = ET.SubElement(
                case,
                "failure",
                message="; ".join(r["code"] for r in check["reasons"]),
                type=check["reasons"][0]["code"],
            )
            failure.text = text
        out = ET.SubElement(case, "system-out")
        out.text = (
            f"{check['method']} {check['url']} http_status={check['http_status']} "
            f"total_ms={check['latency_ms']['total']} ttfb_ms={check['latency_ms']['ttfb']} "
            f"attempts={len(check['attempts'])} flaky={str(check['flaky']).lower()}"
        )
    return suites


def junit_text(report: Mapping[str, Any]) -> str:
    xml = ET.tostring(build_junit(report), encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n"
