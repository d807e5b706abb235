"""Unit tests for turnout.report: rows, drift, and the table / JSON / HTML renderings."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from typing import Any

import pytest

from turnout import manifest as mf
from turnout import report
from turnout.report.formats import table

SHA_OLD = "1" * 64
SHA_NEW = "ab" * 32
INVENTORY = {"blue": ["blue1", "blue2"], "green": ["green1", "green2"]}


def _event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "20261122T140000Z-1a2b3c",
        "action": "deploy",
        "result": "success",
        "env": "prod",
        "by": "alice@ws1",
        "started_at": "2026-11-22T14:00:00Z",
        "finished_at": "2026-11-22T14:00:12Z",
        "to": {"pool": "green", "version": "1.4.2", "sha256": SHA_NEW},
        "hosts": {
            "green1": {"smoke": {"result": "passed", "latency_ms": 12, "checks": []}},
            "green2": {"smoke": {"result": "passed", "latency_ms": 9, "checks": []}},
        },
    }
    base.update(overrides)
    return base


@pytest.fixture
def manifest() -> dict[str, Any]:
    """Blue ran 1.4.1 and stays warm; green runs 1.4.2 and is live."""
    data = mf.apply_event(
        mf.empty("prod"),
        _event(
            id="20261101T100000Z-000001",
            to={"pool": "blue", "version": "1.4.1", "sha256": SHA_OLD},
            hosts={"blue1": {}, "blue2": {}},
            started_at="2026-11-01T10:00:00Z",
            finished_at="2026-11-01T10:00:30Z",
        ),
    )
    return mf.apply_event(data, _event())


def _facts(version: str, sha: str, pool: str) -> dict[str, Any]:
    return {
        "app": "app",
        "version": version,
        "sha256": sha,
        "pool": pool,
        "activated_at": "2026-11-22T14:00:05Z",
        "activated_by": "alice@ws1",
        "run_id": "20261122T140000Z-1a2b3c",
    }


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
        "servers": {
            host: {"backend": f"be_{pool}", "status": "UP", "scur": 0}
            for pool, hosts in INVENTORY.items()
            for host in hosts
        },
    }


def _by_host(rows: list[report.Row]) -> dict[str, report.Row]:
    return {row.host: row for row in rows}


# -------------------------------------------------------------------------- rows / drift


def test_in_sync_fleet_has_no_drift(manifest: Any, host_facts: Any, lb: Any) -> None:
    rows = report.build_rows(manifest, host_facts, lb, INVENTORY)
    fleet = report.fleet_drift(manifest, host_facts, lb, INVENTORY)
    assert [row.host for row in rows] == ["blue1", "blue2", "green1", "green2"]
    assert fleet == []
    assert not report.has_drift(rows, fleet)
    green1 = _by_host(rows)["green1"]
    assert green1.role == "live" and green1.pool == "green"
    assert green1.version == "1.4.2"
    assert green1.sha_short == SHA_NEW[:12] and len(green1.sha_short) == 12
    assert green1.smoke == "passed" and green1.lb_status == "UP"
    assert green1.deployed_by == "alice@ws1"
    assert _by_host(rows)["blue1"].role == "idle"


def test_lb_disagrees_with_manifest(manifest: Any, host_facts: Any, lb: Any) -> None:
    lb["active_backend"] = "be_blue"
    rows = report.build_rows(manifest, host_facts, lb, INVENTORY)
    fleet = report.fleet_drift(manifest, host_facts, lb, INVENTORY)
    assert "lb routes to blue but manifest says green" in fleet
    assert report.has_drift(rows, fleet)
    roles = {row.host: row.role for row in rows}  # the LB decides what is live
    assert roles == {"blue1": "live", "blue2": "live", "green1": "idle", "green2": "idle"}


def test_role_from_manifest_when_lb_unreachable(manifest: Any, host_facts: Any) -> None:
    rows = report.build_rows(manifest, host_facts, None, INVENTORY)
    fleet = report.fleet_drift(manifest, host_facts, None, INVENTORY)
    assert _by_host(rows)["green1"].role == "live"
    assert _by_host(rows)["green1"].lb_status is None
    assert fleet == ["load balancer unreachable"]
    error_fleet = report.fleet_drift(manifest, host_facts, {"error": "socket gone"}, INVENTORY)
    assert error_fleet == ["load balancer unreachable: socket gone"]


def test_unknown_backend(manifest: Any, host_facts: Any, lb: Any) -> None:
    lb["active_backend"] = "be_red"
    fleet = report.fleet_drift(manifest, host_facts, lb, INVENTORY)
    assert fleet == ["lb routes to unknown backend 'be_red'"]


def test_host_runs_other_version(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["green2"] = _facts("1.4.1", SHA_OLD, "green")
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["green2"].drift == ["host runs 1.4.1, manifest says 1.4.2"]
    assert rows["green2"].version == "1.4.1"  # the report shows what the host runs
    assert rows["green1"].drift == []


def test_same_version_other_sha(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["green1"]["sha256"] = "ef" * 32
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["green1"].drift == [f"host sha256 {'ef' * 6}, manifest says {SHA_NEW[:12]}"]


def test_unreachable_hosts(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["blue1"] = None
    host_facts["blue2"] = {"error": "ssh: timeout"}
    del host_facts["green2"]
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["blue1"].drift == ["host unreachable"]
    assert rows["blue2"].drift == ["host unreachable: ssh: timeout"]
    assert rows["green2"].drift == ["host unreachable: no facts collected"]
    assert rows["blue2"].version == "1.4.1"  # falls back to the manifest


def test_error_prefix_is_not_repeated(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["blue1"] = {"error": "unreachable: ssh: connect to host 10.0.0.5 port 22: timeout"}
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["blue1"].drift == [
        "host unreachable: ssh: connect to host 10.0.0.5 port 22: timeout"
    ]


def test_app_service_not_active(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["green1"]["service"] = "failed"
    host_facts["green2"]["service"] = "active"
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["green1"].drift == ["app.service is failed"]
    assert rows["green2"].drift == []


def test_host_pool_differs_from_inventory(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["blue2"]["pool"] = "green"
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["blue2"].drift == ["host release.json says pool green, inventory says blue"]


@pytest.mark.parametrize("status", ["DOWN", "MAINT", "MAINT (via be_green/green9)"])
def test_live_host_down_in_lb(manifest: Any, host_facts: Any, lb: Any, status: str) -> None:
    lb["servers"]["green1"]["status"] = status
    lb["servers"]["blue1"]["status"] = status  # idle hosts may be down: not drift
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["green1"].drift == [f"lb reports {status} for a live host"]
    assert rows["blue1"].drift == []


def test_live_host_missing_from_lb(manifest: Any, host_facts: Any, lb: Any) -> None:
    del lb["servers"]["green2"]
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["green2"].drift == ["live host is not a server in the lb (expected in be_green)"]


def test_host_without_release_and_host_without_record(manifest: Any, host_facts: Any) -> None:
    host_facts["blue1"] = {}
    inventory = {**INVENTORY, "green": ["green1", "green2", "green3"]}
    host_facts["green3"] = _facts("1.4.2", SHA_NEW, "green")
    rows = _by_host(report.build_rows(manifest, host_facts, None, inventory))
    assert rows["blue1"].drift == ["host has no release.json, manifest says 1.4.1"]
    assert rows["green3"].drift == ["host runs 1.4.2, manifest has no record of it"]


def test_fresh_host_without_release_is_not_drift(host_facts: Any) -> None:
    facts = {host: {} for host in host_facts}
    lb = {"active_backend": "be_blue", "servers": {}}
    empty = mf.empty("prod")
    empty["live_pool"] = None
    rows = report.build_rows(empty, facts, None, INVENTORY)
    assert all(row.drift == [] for row in rows)
    assert all(row.role == "idle" for row in rows)
    assert "lb routes to blue but manifest says none" in report.fleet_drift(
        empty, facts, lb, INVENTORY
    )


def test_host_only_in_manifest(manifest: Any, host_facts: Any, lb: Any) -> None:
    inventory = {"blue": ["blue1"], "green": ["green1", "green2"]}
    rows = _by_host(report.build_rows(manifest, host_facts, lb, inventory))
    assert rows["blue2"].drift[0] == "in manifest but not in inventory"
    assert rows["blue2"].pool == "blue"


def test_lb_backend_differs_from_inventory(manifest: Any, host_facts: Any, lb: Any) -> None:
    lb["servers"]["blue2"]["backend"] = "be_green"
    rows = _by_host(report.build_rows(manifest, host_facts, lb, INVENTORY))
    assert rows["blue2"].drift == ["lb has host in be_green, inventory says be_blue"]


def test_staged_hosts_after_failed_deploy(manifest: Any, host_facts: Any, lb: Any) -> None:
    failed = _event(
        id="20261123T090000Z-bbbbbb",
        result="failed",
        phase="smoke",
        to={"pool": "blue", "version": "1.4.3", "sha256": "cd" * 32},
        hosts={"blue1": {"smoke": {"result": "failed", "latency_ms": 3, "checks": []}}},
    )
    after = mf.apply_event(manifest, failed)
    host_facts["blue1"] = _facts("1.4.3", "cd" * 32, "blue")
    rows = _by_host(report.build_rows(after, host_facts, lb, INVENTORY))
    assert rows["blue1"].drift == []  # the manifest knows blue1 was staged with 1.4.3
    assert rows["blue1"].staged and rows["blue1"].smoke == "failed"
    assert not rows["blue2"].staged


def test_live_pool_without_hosts(manifest: Any, host_facts: Any, lb: Any) -> None:
    fleet = report.fleet_drift(manifest, host_facts, lb, {"blue": ["blue1"], "green": []})
    assert fleet == ["live pool green has no hosts in the inventory"]


def test_exit_drift_constant() -> None:
    assert report.EXIT_DRIFT == 3


# ----------------------------------------------------------------------------- rendering


def test_render_table(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["blue2"] = {"error": "ssh: timeout"}
    rows = report.build_rows(manifest, host_facts, lb, INVENTORY)
    fleet = report.fleet_drift(manifest, host_facts, lb, INVENTORY)
    text = report.render_table(rows, fleet, env="prod")
    lines = text.splitlines()
    assert lines[0].split() == list(table._COLUMNS)
    for host in ("blue1", "blue2", "green1", "green2"):
        assert sum(line.startswith(host + " ") for line in lines) == 1
    header_version = lines[0].index("VERSION")
    green1 = next(line for line in lines if line.startswith("green1"))
    assert green1[header_version:].startswith("1.4.2")  # columns line up
    assert "env prod | live green (1.4.2) | 4 hosts | drift: 1" in text
    assert "drift: blue2: host unreachable: ssh: timeout" in text


def test_render_table_no_drift(manifest: Any, host_facts: Any, lb: Any) -> None:
    rows = report.build_rows(manifest, host_facts, lb, INVENTORY)
    text = report.render_table(rows, [], env="prod")
    assert "drift: none" in text
    assert "DRIFT" not in text


def test_render_json(manifest: Any, host_facts: Any, lb: Any) -> None:
    lb["active_backend"] = "be_blue"
    rows = report.build_rows(manifest, host_facts, lb, INVENTORY)
    fleet = report.fleet_drift(manifest, host_facts, lb, INVENTORY)
    text = report.render_json(manifest, rows, fleet)
    data = json.loads(text)
    assert data["env"] == "prod"
    assert data["live_pool"] == "blue" and data["manifest_live_pool"] == "green"
    assert data["live_version"] == "1.4.1"
    assert [host["host"] for host in data["hosts"]] == ["blue1", "blue2", "green1", "green2"]
    assert data["hosts"][0]["sha_short"] == SHA_OLD[:12]
    assert data["drift"] == ["lb routes to blue but manifest says green"]
    assert data["in_sync"] is False
    assert data["last"]["id"] == "20261122T140000Z-1a2b3c"
    assert report.render_json(manifest, rows, fleet) == text  # stable


def test_render_json_empty_history(host_facts: Any) -> None:
    empty = mf.empty("lab")
    rows = report.build_rows(empty, {}, None, {"blue": [], "green": []})
    data = json.loads(report.render_json(empty, rows, []))
    assert data["last"] is None and data["hosts"] == [] and data["live_pool"] is None


class _TableParser(HTMLParser):
    """Collects rows of every <table id=...> and whether anything external is loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.current: str | None = None
        self.in_body = False
        self.row: dict[str, Any] | None = None
        self.external: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if attributes.get(name):
                self.external.append(str(attributes[name]))
        if tag == "table":
            self.current = attributes.get("id")
            self.tables[str(self.current)] = []
        elif tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body and self.current:
            self.row = {"class": attributes.get("class") or "", "cells": []}
        elif tag == "td" and self.row is not None:
            self.row["cells"].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self.row is not None:
            self.tables[str(self.current)].append(self.row)
            self.row = None
        elif tag == "tbody":
            self.in_body = False
        elif tag == "table":
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.row is not None and self.row["cells"]:
            self.row["cells"][-1] += data


def _parse(text: str) -> _TableParser:
    parser = _TableParser()
    parser.feed(text)
    parser.close()
    return parser


def test_render_html(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["green2"] = _facts("1.4.1", SHA_OLD, "green")
    rows = report.build_rows(manifest, host_facts, lb, INVENTORY)
    fleet = report.fleet_drift(manifest, host_facts, lb, INVENTORY)
    text = report.render_html(manifest, rows, fleet)
    parsed = _parse(text)
    assert text.startswith("<!DOCTYPE html>")
    assert parsed.external == [] and parsed.scripts == 0  # self-contained
    hosts = parsed.tables["hosts"]
    assert [row["cells"][0] for row in hosts] == ["blue1", "blue2", "green1", "green2"]
    drifted = [row["cells"][0] for row in hosts if "drift" in row["class"].split()]
    assert drifted == ["green2"]
    assert hosts[3]["cells"][-1] == "host runs 1.4.1, manifest says 1.4.2"
    history = parsed.tables["history"]
    assert [row["cells"][0] for row in history] == [
        "20261122T140000Z-1a2b3c",
        "20261101T100000Z-000001",
    ]


def test_render_html_keeps_last_20_history_entries(manifest: Any) -> None:
    data = copy.deepcopy(manifest)
    for number in range(30):
        data = mf.apply_event(
            data,
            _event(
                id=f"20261124T0000{number:02d}Z-000000",
                action="unlock",
                result="success",
                to=None,
                hosts={},
            ),
        )
    rows = report.build_rows(data, {}, None, INVENTORY)
    history = _parse(report.render_html(data, rows, []))
    ids = [row["cells"][0] for row in history.tables["history"]]
    assert len(ids) == 20
    assert ids[0] == "20261124T000029Z-000000" and ids[-1] == "20261124T000010Z-000000"


def test_render_escapes_hostile_values(manifest: Any, host_facts: Any, lb: Any) -> None:
    host_facts["green1"]["version"] = "<script>alert(1)</script>"
    host_facts["blue1"] = {"error": '<img src=x onerror="boom">'}
    hostile = mf.apply_event(
        manifest,
        _event(
            id="20261125T000000Z-eeeeee",
            action="unlock",
            to=None,
            hosts={},
            message="<b>bold</b> & more",
        ),
    )
    rows = report.build_rows(hostile, host_facts, lb, INVENTORY)
    fleet = report.fleet_drift(hostile, host_facts, lb, INVENTORY)
    text = report.render_html(hostile, rows, fleet)
    assert "<script>" not in text and "<img" not in text and "<b>bold" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in text
    parsed = _parse(text)
    assert parsed.scripts == 0 and parsed.external == []
    cells = {row["cells"][0]: row["cells"] for row in parsed.tables["hosts"]}
    assert cells["green1"][3] == "<script>alert(1)</script>"  # shown as text, intact
    assert len(parsed.tables["hosts"]) == 4
