"""JUnit XML of the latest smoke results and every drift line, for CI servers
(``--format junit``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from turnout.manifest.queries import SmokeRecord, latest_smoke
from turnout.report.drift import Row, drift_lines, live_summary

JUNIT_SUITE_PREFIX = "turnout.smoke"
# Characters XML 1.0 cannot carry at all (escaping does not help): replaced, never emitted.
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: Any) -> str:
    """``value`` as text that is valid anywhere in an XML 1.0 document once ET escapes it."""
    return _XML_INVALID.sub("\ufffd", "" if value is None else str(value))


def _xml_timestamp(value: Any) -> str | None:
    """``2026-11-22T14:00:12Z`` -> ``2026-11-22T14:00:12`` (the JUnit XSD's zone-less form)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _check_line(check: Mapping[str, Any]) -> str:
    detail = check.get("detail")
    status = "ok  " if check.get("ok") else "FAIL"
    return f"{status} {check.get('name') or '?'}" + (f": {detail}" if detail else "")


def _smoke_case(case: ET.Element, record: SmokeRecord, staged: bool) -> str:
    """Fill one host's testcase; return its outcome (passed/failed/error/skipped)."""
    result = str(record.result.get("result") or "")
    checks = [c for c in record.result.get("checks") or [] if isinstance(c, Mapping)]
    latency = record.result.get("latency_ms")
    if isinstance(latency, int | float) and not isinstance(latency, bool) and latency >= 0:
        case.set("time", f"{latency / 1000:.3f}")
    lines = [f"smoke {result or 'unknown'} in run {record.run_id or '?'} "
             f"at {record.at or '?'}" + (" (staged: not live yet)" if staged else "")]
    if latency is not None:
        lines.append(f"latency_ms: {latency}")
    lines += [_check_line(check) for check in checks]
    if result == "failed":
        failing = [c for c in checks if not c.get("ok")]
        message = "; ".join(
            f"{c.get('name') or '?'}: {c.get('detail') or 'failed'}" for c in failing
        ) or "smoke test failed"
        failure = ET.SubElement(case, "failure", message=_xml_text(message), type="smoke")
        failure.text = _xml_text("\n".join(_check_line(c) for c in failing) or message)
        outcome = "failed"
    elif result == "unreachable":
        ET.SubElement(case, "error", message="host unreachable during the smoke test",
                      type="unreachable")
        outcome = "error"
    elif result == "passed":
        outcome = "passed"
    else:
        ET.SubElement(case, "skipped", message=_xml_text(f"smoke test {result or 'not run'}"))
        outcome = "skipped"
    ET.SubElement(case, "system-out").text = _xml_text("\n".join(lines))
    return outcome


def render_junit(
    manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str | None = None,
    lbs: tuple = (),
) -> str:
    """The latest smoke results (and each drift finding) as JUnit XML for CI servers.

    One ``<testsuite name="turnout.smoke.<env>">``: a ``<testcase classname="<env>.<pool>"
    name="<host>">`` per host (``<failure>`` naming the failing checks, ``<error>`` when the
    host was unreachable, ``<skipped>`` without smoke data), then one failed
    ``classname="<env>.drift"`` testcase per drift finding.
    """
    env_name = str(env or manifest.get("env") or "unknown")
    history = manifest.get("history") or []
    last = history[-1] if history else {}
    live, version = live_summary(rows)
    smoke = latest_smoke(manifest)
    counts = Counter[str]()
    total_time = 0.0

    suite = ET.Element("testsuite", name=_xml_text(f"{JUNIT_SUITE_PREFIX}.{env_name}"))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("env", env_name),
        ("app", manifest.get("app")),
        ("live_pool", live or manifest.get("live_pool")),
        ("version", version),
        ("run_id", last.get("id")),
        ("action", last.get("action")),
        ("result", last.get("result")),
        ("finished_at", last.get("finished_at")),
    ):
        if value is not None and value != "":
            ET.SubElement(properties, "property", name=name, value=_xml_text(value))

    listed = [(row.host, row.pool, row.staged) for row in rows]
    seen = {host for host, _, _ in listed}
    listed += [(host, record.pool or "unknown", False)
               for host, record in sorted(smoke.items()) if host not in seen]
    for host, pool, staged in listed:
        case = ET.SubElement(suite, "testcase", classname=_xml_text(f"{env_name}.{pool}"),
                             name=_xml_text(host), time="0.000")
        record = smoke.get(host)
        if record is None:
            ET.SubElement(case, "skipped", message="no smoke result recorded for this host")
            counts["skipped"] += 1
            continue
        outcome = _smoke_case(case, record, staged)
        counts[outcome] += 1
        total_time += float(case.get("time", "0"))

    for problem in drift_lines(rows, fleet):
        case = ET.SubElement(suite, "testcase", classname=_xml_text(f"{env_name}.drift"),
                             name=_xml_text(problem), time="0.000")
        failure = ET.SubElement(case, "failure", message=_xml_text(problem), type="drift")
        failure.text = _xml_text(problem)
        counts["failed"] += 1

    tests = len(suite.findall("testcase"))
    attributes = {
        "tests": str(tests),
        "failures": str(counts["failed"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
        "time": f"{total_time:.3f}",
    }
    timestamp = _xml_timestamp(last.get("finished_at") or manifest.get("updated_at"))
    if timestamp:
        attributes["timestamp"] = timestamp
    for key, value in attributes.items():
        suite.set(key, value)
    root = ET.Element("testsuites", name="turnout", **{
        key: value for key, value in attributes.items() if key != "timestamp"})
    root.append(suite)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def render(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str,
           lbs: tuple = ()) -> str:
    return render_junit(manifest, rows, fleet, env=env, lbs=lbs)
