"""Unit tests for turnout.report's machine renderings: JUnit XML and Prometheus textfile.

The JUnit output is checked by a structural validator that follows the JUnit XSD the way
Jenkins' junit plugin reads it (no schema download: no network here); the Prometheus output
by a small parser of the text exposition format.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest

from turnout import manifest as mf
from turnout import report

SHA_OLD = "1" * 64
SHA_NEW = "ab" * 32
INVENTORY = {"blue": ["blue1", "blue2"], "green": ["green1", "green2"]}
DEPLOY_ID = "20261122T140000Z-1a2b3c"


def _passed(latency: int = 10) -> dict[str, Any]:
    return {"result": "passed", "latency_ms": latency,
            "checks": [{"name": "healthz", "ok": True, "detail": "200"}]}


def _event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": DEPLOY_ID,
        "action": "deploy",
        "result": "success",
        "env": "prod",
        "by": "alice@ws1",
        "started_at": "2026-11-22T14:00:00Z",
        "finished_at": "2026-11-22T14:00:12Z",
        "to": {"pool": "green", "version": "1.4.2", "sha256": SHA_NEW},
        "hosts": {"green1": {"smoke": _passed(12)}, "green2": {"smoke": _passed(9)}},
    }
    base.update(overrides)
    return base


@pytest.fixture
def manifest() -> dict[str, Any]:
    """Blue ran 1.4.1 and stays warm; green runs 1.4.2 and is live; all smoke passed."""
    data = mf.apply_event(
        mf.empty("prod"),
        _event(
            id="20261101T100000Z-000001",
            to={"pool": "blue", "version": "1.4.1", "sha256": SHA_OLD},
            hosts={"blue1": {"smoke": _passed(20)}, "blue2": {"smoke": _passed(21)}},
            started_at="2026-11-01T10:00:00Z",
            finished_at="2026-11-01T10:00:30Z",
        ),
    )
    return mf.apply_event(data, _event())


def _facts(version: str, sha: str, pool: str) -> dict[str, Any]:
    return {"app": "app", "version": version, "sha256": sha, "pool": pool,
            "service": "active"}


@pytest.fixture
def host_facts() -> dict[str, dict[str, Any] | None]:
    return {
        "blue1": _facts("1.4.1", SHA_OLD, "blue"),
        "blue2": _facts("1.4.1", SHA_OLD, "blue"),
        "green1": _facts("1.4.2", SHA_NEW, "green"),
        "green2": _facts("1.4.2", SHA_NEW, "green"),
    }


@pytest.fixture
def lb() -> dict[str, Any]:
    return {
        "active_backend": "be_green",
        "servers": {host: {"backend": f"be_{pool}", "status": "UP", "scur": 0}
                    for pool, hosts in INVENTORY.items() for host in hosts},
    }


def _collect(manifest: Any, host_facts: Any, lb: Any,
             inventory: Any = None) -> tuple[list[report.Row], list[str]]:
    inventory = inventory or INVENTORY
    rows = report.build_rows(manifest, host_facts, lb, inventory)
    return rows, report.fleet_drift(manifest, host_facts, lb, inventory)


# ------------------------------------------------------------------ JUnit: the validator

_XSD_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")  # XSD: no time zone
_SUITE_CHILDREN = {"properties", "testcase", "system-out", "system-err"}
_CASE_CHILDREN = {"failure", "error", "skipped", "system-out", "system-err"}
_OUTCOMES = ("failure", "error", "skipped")


def _count(element: ET.Element, name: str, *, required: bool = True) -> int:
    value = element.get(name)
    if value is None:
        assert not required, f"<{element.tag}> lacks required attribute {name}"
        return 0
    assert value.isdigit(), f"<{element.tag} {name}={value!r}> is not a count"
    return int(value)


def _seconds(element: ET.Element) -> float:
    value = element.get("time", "0")
    assert re.fullmatch(r"\d+(\.\d+)?", value), f"<{element.tag} time={value!r}> not decimal"
    return float(value)


def validate_junit(text: str) -> list[ET.Element]:
    """Check ``text`` against the JUnit XSD structure as Jenkins reads it; return the suites.

    Root ``<testsuites>`` or ``<testsuite>``; every suite has a name and counts that match
    its testcases; every testcase a name and classname and at most one outcome element;
    ``failure``/``error`` carry a message; timestamps in the XSD's zone-less ISO form.
    """
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag in ("testsuites", "testsuite"), f"root is <{root.tag}>"
    suites = [root] if root.tag == "testsuite" else list(root)
    assert suites, "no <testsuite>"
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in suites:
        assert suite.tag == "testsuite", f"<{suite.tag}> inside <testsuites>"
        assert suite.get("name"), "testsuite without a name"
        assert {child.tag for child in suite} <= _SUITE_CHILDREN, [c.tag for c in suite]
        assert len(suite.findall("properties")) <= 1
        for prop in suite.iterfind("properties/property"):
            assert prop.get("name") and prop.get("value") is not None
            assert set(prop.attrib) == {"name", "value"}
        if suite.get("timestamp") is not None:
            assert _XSD_TIMESTAMP.match(suite.get("timestamp", "")), suite.get("timestamp")
        seen = {"failure": 0, "error": 0, "skipped": 0}
        case_time = 0.0
        cases = suite.findall("testcase")
        for case in cases:
            assert case.get("name"), "testcase without a name"
            assert case.get("classname"), f"testcase {case.get('name')} without a classname"
            case_time += _seconds(case)
            tags = [child.tag for child in case]
            assert set(tags) <= _CASE_CHILDREN, tags
            outcomes = [tag for tag in tags if tag in _OUTCOMES]
            assert len(outcomes) <= 1, f"{case.get('name')}: several outcomes {outcomes}"
            for tag in outcomes:
                seen[tag] += 1
            for child in case:
                if child.tag in ("failure", "error"):
                    assert child.get("message"), f"<{child.tag}> without a message"
        counts = {
            "tests": _count(suite, "tests"),
            "failures": _count(suite, "failures"),
            "errors": _count(suite, "errors"),
            "skipped": _count(suite, "skipped", required=False),
        }
        assert counts == {"tests": len(cases), "failures": seen["failure"],
                          "errors": seen["error"], "skipped": seen["skipped"]}
        assert abs(_seconds(suite) - case_time) < 0.01
        for key in totals:
            totals[key] += counts[key]
    if root.tag == "testsuites":  # optional totals, but when given they must add up
        for key, total in totals.items():
            if root.get(key) is not None:
                assert _count(root, key) == total, f"<testsuites {key}> != sum of suites"
    return suites


def _cases(suite: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(c.get("classname", ""), c.get("name", "")): c for c in suite.iter("testcase")}


def _props(suite: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in suite.iterfind("properties/property")}


# ------------------------------------------------------------------------ JUnit: tests


def test_validator_rejects_bad_documents() -> None:
    """The validator is a real check: it fails on wrong counts and missing attributes."""
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    good = (head + '<testsuite name="s" tests="1" failures="1" errors="0" time="0">'
            '<testcase classname="c" name="n"><failure message="m"/></testcase></testsuite>')
    validate_junit(good)
    for bad in (
        good.replace('tests="1"', 'tests="2"'),
        good.replace('failures="1"', 'failures="0"'),
        good.replace(' classname="c"', ""),
        good.replace(' message="m"', ""),
        good.replace("<failure message=\"m\"/>", "<failure message=\"m\"/><skipped/>"),
        head + "<results/>",
    ):
        with pytest.raises(AssertionError):
            validate_junit(bad)


def test_junit_in_sync_fleet(manifest: Any, host_facts: Any, lb: Any) -> None:
    rows, fleet = _collect(manifest, host_facts, lb)
    text = report.render_junit(manifest, rows, fleet, "prod")
    (suite,) = validate_junit(text)
    assert suite.get("name") == "turnout.smoke.prod"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "0", "0")
    assert suite.get("timestamp") == "2026-11-22T14:00:12"
    cases = _cases(suite)
    assert set(cases) == {("prod.blue", "blue1"), ("prod.blue", "blue2"),
                          ("prod.green", "green1"), ("prod.green", "green2")}
    assert cases[("prod.green", "green1")].get("time") == "0.012"
    assert DEPLOY_ID in (cases[("prod.green", "green1")].findtext("system-out") or "")
    assert _props(suite) == {
        "env": "prod", "app": "app", "live_pool": "green", "version": "1.4.2",
        "run_id": DEPLOY_ID, "action": "deploy", "result": "success",
        "finished_at": "2026-11-22T14:00:12Z",
    }


def test_junit_failed_smoke_names_failing_checks(manifest: Any, host_facts: Any,
                                                  lb: Any) -> None:
    failed_smoke = {"result": "failed", "latency_ms": 30, "checks": [
        {"name": "healthz", "ok": True, "detail": "200"},
        {"name": "version", "ok": False, "detail": "expected 1.5.0, got 1.4.1"},
        {"name": "custom_root", "ok": False, "detail": None},
    ]}
    data = mf.apply_event(manifest, _event(
        id="20261123T090000Z-00000a", result="failed", phase="smoke",
        started_at="2026-11-23T09:00:00Z", finished_at="2026-11-23T09:00:40Z",
        to={"pool": "blue", "version": "1.5.0", "sha256": "cd" * 32},
        hosts={"blue1": {"smoke": failed_smoke}, "blue2": {"smoke": _passed(8)}},
    ))
    rows, fleet = _collect(data, host_facts, lb)
    (suite,) = validate_junit(report.render_junit(data, rows, fleet, "prod"))
    cases = _cases(suite)
    failure = cases[("prod.blue", "blue1")].find("failure")
    assert failure is not None
    assert failure.get("message") == ("version: expected 1.5.0, got 1.4.1; "
                                      "custom_root: failed")
    assert "healthz" not in failure.get("message", "")
    assert cases[("prod.blue", "blue2")].find("failure") is None
    out = cases[("prod.blue", "blue1")].findtext("system-out") or ""
    assert "20261123T090000Z-00000a" in out and "staged" in out
    assert suite.get("timestamp") == "2026-11-23T09:00:40"
    # the staged hosts run 1.5.0 while the manifest's pool says 1.4.1: that is drift too
    drift = [c for c in suite.iter("testcase") if c.get("classname") == "prod.drift"]
    assert int(suite.get("failures", "0")) == 1 + len(drift)


def test_junit_last_entry_smoke_wins_over_pool_smoke(manifest: Any, host_facts: Any,
                                                     lb: Any) -> None:
    rollback_id = "20261124T080000Z-00000b"
    data = mf.apply_event(manifest, _event(
        id=rollback_id, action="rollback", started_at="2026-11-24T08:00:00Z",
        finished_at="2026-11-24T08:00:05Z",
        to={"pool": "blue", "version": "1.4.1", "sha256": SHA_OLD},
        hosts={"blue1": {"smoke": {"result": "unreachable", "latency_ms": None,
                                   "checks": []}}},
    ))
    lb["active_backend"] = "be_blue"
    rows, fleet = _collect(data, host_facts, lb)
    (suite,) = validate_junit(report.render_junit(data, rows, fleet, "prod"))
    cases = _cases(suite)
    blue1, blue2 = cases[("prod.blue", "blue1")], cases[("prod.blue", "blue2")]
    assert blue1.find("error") is not None and suite.get("errors") == "1"
    assert rollback_id in (blue1.findtext("system-out") or "")
    assert "20261101T100000Z-000001" in (blue2.findtext("system-out") or "")  # pool fallback
    assert blue2.find("error") is None and blue2.get("time") == "0.021"


def test_junit_hosts_without_smoke_are_skipped_and_drift_fails(manifest: Any,
                                                              host_facts: Any,
                                                              lb: Any) -> None:
    inventory = {**INVENTORY, "green": ["green1", "green2", "green3"]}
    host_facts["green3"] = {}
    lb["servers"]["green3"] = {"backend": "be_green", "status": "UP"}
    host_facts["green2"] = _facts("1.4.0", SHA_OLD, "green")
    rows, fleet = _collect(manifest, host_facts, lb, inventory)
    (suite,) = validate_junit(report.render_junit(manifest, rows, fleet, "prod"))
    cases = _cases(suite)
    skipped = cases[("prod.green", "green3")].find("skipped")
    assert skipped is not None and "no smoke result" in skipped.get("message", "")
    drift = {name: case for (classname, name), case in cases.items()
             if classname == "prod.drift"}
    assert set(drift) == set(report.drift_lines(rows, fleet))
    assert "green2: host runs 1.4.0, manifest says 1.4.2" in drift
    assert all(case.find("failure") is not None for case in drift.values())
    assert suite.get("skipped") == "1"
    assert suite.get("failures") == str(len(drift))
    assert suite.get("tests") == str(5 + len(drift))


def test_junit_escapes_hostile_text(manifest: Any, host_facts: Any, lb: Any) -> None:
    nasty = 'bad <tag> & "quote" \'apos\'\nline2 \x1b[31m\x00 ]]> end'
    data = mf.apply_event(manifest, _event(
        id="20261125T080000Z-00000c", result="failed", phase="smoke",
        started_at="2026-11-25T08:00:00Z", finished_at="2026-11-25T08:00:05Z",
        to={"pool": "blue", "version": "1.5.0", "sha256": "cd" * 32},
        hosts={"blue1": {"smoke": {"result": "failed", "latency_ms": 1,
                                   "checks": [{"name": "x", "ok": False, "detail": "ok"}]}}},
    ))
    data["history"][-1]["smoke"]["blue1"]["checks"][0]["detail"] = nasty
    host_facts["blue2"] = {"error": nasty}
    rows, fleet = _collect(data, host_facts, lb)
    text = report.render_junit(data, rows, fleet, f"prod{nasty}")
    (suite,) = validate_junit(text)  # parses: nothing broke out of an attribute or text node
    expected = nasty.replace("\x1b", "\ufffd").replace("\x00", "\ufffd")
    failure = _cases(suite)[(f"prod{expected}.blue", "blue1")].find("failure")
    assert failure is not None and failure.get("message") == f"x: {expected}"
    assert "\x00" not in text and "\x1b" not in text


def test_junit_for_a_fleet_never_deployed() -> None:
    data = mf.empty("lab")
    rows, fleet = _collect(data, {}, None, {"blue": ["blue1"], "green": ["green1"]})
    (suite,) = validate_junit(report.render_junit(data, rows, fleet, "lab"))
    assert suite.get("timestamp") is None
    assert suite.get("skipped") == "2"
    assert _props(suite) == {"env": "lab", "app": "app"}


# --------------------------------------------------------- Prometheus: a text-format parser

_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}


def _parse_labels(text: str, pos: int) -> tuple[dict[str, str], int]:
    """Parse ``{a="x",b="y"}`` starting at ``text[pos] == "{"``; return labels, end."""
    assert text[pos] == "{"
    pos += 1
    labels: dict[str, str] = {}
    while text[pos] != "}":
        match = _LABEL.match(text, pos)
        assert match, f"bad label name at {text[pos:]!r}"
        name, pos = match.group(), match.end()
        assert text[pos:pos + 2] == '="', f"expected =\" at {text[pos:]!r}"
        pos += 2
        value = []
        while text[pos] != '"':
            char = text[pos]
            assert char != "\n", "raw newline in a label value"
            if char == "\\":
                assert text[pos + 1] in _UNESCAPE, f"bad escape \\{text[pos + 1]}"
                value.append(_UNESCAPE[text[pos + 1]])
                pos += 2
            else:
                value.append(char)
                pos += 1
        pos += 1
        assert name not in labels, f"label {name} twice"
        labels[name] = "".join(value)
        if text[pos] == ",":
            pos += 1
    return labels, pos + 1


def parse_prometheus(text: str) -> dict[str, dict[str, Any]]:
    """Families: name -> {help, type, samples: [(labels, value)]}; asserts the format."""
    assert text.endswith("\n"), "a textfile must end with a newline"
    families: dict[str, dict[str, Any]] = {}
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, keyword, name, rest = line.split(" ", 3)
            assert _METRIC.fullmatch(name)
            family = families.setdefault(name, {"help": None, "type": None, "samples": []})
            key = keyword.lower()
            assert family[key] is None, f"{keyword} {name} twice"
            assert not family["samples"], f"{keyword} {name} after its samples"
            if key == "type":
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped")
            family[key] = rest
            continue
        assert line and not line.startswith("#"), f"unexpected line {line!r}"
        match = _METRIC.match(line)
        assert match, f"bad sample {line!r}"
        name, pos = match.group(), match.end()
        labels: dict[str, str] = {}
        if line[pos] == "{":
            labels, pos = _parse_labels(line, pos)
        value = line[pos:].strip().split(" ")[0]
        float(value)  # raises on a malformed value
        assert name in families and families[name]["type"], f"{name} has no # TYPE"
        key = (name, tuple(sorted(labels.items())))
        assert key not in series, f"duplicate series {key}"
        series.add(key)
        families[name]["samples"].append((labels, float(value)))
    return families


def test_parser_is_a_real_check() -> None:
    with pytest.raises(AssertionError):
        parse_prometheus('x{a="1"} 1\n')  # no TYPE
    with pytest.raises(AssertionError):
        parse_prometheus('# TYPE x gauge\nx{a="bad\\q"} 1\n')
    with pytest.raises(ValueError):
        parse_prometheus("# TYPE x gauge\nx one\n")
    assert parse_prometheus('# TYPE x gauge\nx{a="q\\"\\\\\\n"} 2\n')["x"]["samples"] == [
        ({"a": 'q"\\\n'}, 2.0)]


# --------------------------------------------------------------------- Prometheus: tests


def test_prometheus_in_sync_fleet(manifest: Any, host_facts: Any, lb: Any) -> None:
    rows, fleet = _collect(manifest, host_facts, lb)
    families = parse_prometheus(report.render_prometheus(manifest, rows, fleet, "prod"))
    for name in ("turnout_deployed_info", "turnout_live_pool_info", "turnout_drift",
                 "turnout_last_deploy_timestamp_seconds", "turnout_last_deploy_success"):
        assert families[name]["type"] == "gauge" and families[name]["help"]
    deployed = {labels["host"]: labels for labels, value in
                families["turnout_deployed_info"]["samples"] if value == 1}
    assert deployed["green1"] == {"env": "prod", "host": "green1", "pool": "green",
                                  "role": "live", "version": "1.4.2", "sha256": SHA_NEW}
    assert deployed["blue2"]["role"] == "idle" and deployed["blue2"]["sha256"] == SHA_OLD
    assert families["turnout_live_pool_info"]["samples"] == [
        ({"env": "prod", "pool": "green"}, 1.0)]
    assert families["turnout_drift"]["samples"] == [({"env": "prod"}, 0.0)]
    finished = datetime(2026, 11, 22, 14, 0, 12, tzinfo=UTC).timestamp()
    assert families["turnout_last_deploy_timestamp_seconds"]["samples"] == [
        ({"env": "prod"}, finished)]
    assert families["turnout_last_deploy_success"]["samples"] == [({"env": "prod"}, 1.0)]


def test_prometheus_failed_deploy_and_drift(manifest: Any, host_facts: Any, lb: Any) -> None:
    data = mf.apply_event(manifest, _event(
        id="20261123T090000Z-00000a", result="flipped_back", phase="verify",
        started_at="2026-11-23T09:00:00Z", finished_at="2026-11-23T09:01:00Z",
        to={"pool": "blue", "version": "1.5.0", "sha256": "cd" * 32},
        hosts={"blue1": {"smoke": _passed()}},
    ))
    data = mf.apply_event(data, _event(  # an unlock afterwards is not a deploy
        id="20261123T100000Z-00000b", action="unlock", started_at="2026-11-23T10:00:00Z",
        finished_at="2026-11-23T10:00:01Z", hosts={}))
    rows, fleet = _collect(data, host_facts, lb)
    families = parse_prometheus(report.render_prometheus(data, rows, fleet, "prod"))
    assert families["turnout_last_deploy_success"]["samples"] == [({"env": "prod"}, 0.0)]
    finished = datetime(2026, 11, 23, 9, 1, tzinfo=UTC).timestamp()
    assert families["turnout_last_deploy_timestamp_seconds"]["samples"][0][1] == finished
    drift = families["turnout_drift"]["samples"][0][1]
    assert drift == len(report.drift_lines(rows, fleet)) and drift >= 1


def test_prometheus_escapes_label_values(manifest: Any, host_facts: Any, lb: Any) -> None:
    hostile = 'v1"} 0\nfake_metric 1 \\ end'
    host_facts["green1"] = _facts(hostile, SHA_NEW, "green")
    rows, fleet = _collect(manifest, host_facts, lb)
    text = report.render_prometheus(manifest, rows, fleet, 'pr"od\n')
    families = parse_prometheus(text)
    assert "fake_metric" not in families
    deployed = {labels["host"]: labels for labels, _ in
                families["turnout_deployed_info"]["samples"]}
    assert deployed["green1"]["version"] == hostile
    assert deployed["green1"]["env"] == 'pr"od\n'


def test_prometheus_for_a_fleet_never_deployed() -> None:
    data = mf.empty("lab")
    rows, fleet = _collect(data, {}, None, {"blue": ["blue1"], "green": ["green1"]})
    families = parse_prometheus(report.render_prometheus(data, rows, fleet, "lab"))
    assert families["turnout_live_pool_info"]["samples"] == []
    assert families["turnout_last_deploy_success"]["samples"] == []
    assert families["turnout_last_deploy_timestamp_seconds"]["samples"] == []
    assert {labels["version"] for labels, _ in
            families["turnout_deployed_info"]["samples"]} == {""}
