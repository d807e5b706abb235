"""The deployed-version report: manifest + host release files + load balancer, and drift.

Pure: callers gather the facts (``inspect.yml``, the HAProxy Runtime API) and pass them in;
this module compares the three sources of truth and renders the result as a table, JSON, a
self-contained HTML page, JUnit XML (smoke results and drift, for CI servers) or Prometheus
textfile metrics. Any disagreement is drift, and ``has_drift`` makes it an exit code.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from turnout.manifest import POOLS

EXIT_DRIFT = 3
HISTORY_LIMIT = 20
SHA_SHORT = 12
_UNHEALTHY = ("DOWN", "MAINT")

HostInput = Mapping[str, Mapping[str, Any] | None]
LbInput = Mapping[str, Any] | None
InventoryPools = Mapping[str, list[str]]


@dataclass
class Row:
    """One host of the fleet as the report shows it (host facts first, manifest as fallback)."""

    host: str
    pool: str
    role: str  # "live" or "idle"
    version: str | None
    sha_short: str | None
    deployed_at: str | None
    deployed_by: str | None
    smoke: str | None
    lb_status: str | None
    drift: list[str] = field(default_factory=list)
    staged: bool = False


def _lb_answered(lb: LbInput) -> bool:
    """True if the load balancer's facts were collected (not None, no ``error``)."""
    return bool(lb) and not lb.get("error")


def _lb_pool(lb: LbInput) -> str | None:
    """The pool the load balancer routes to, from ``active_backend`` ``be_<pool>``."""
    if not _lb_answered(lb):
        return None
    backend = lb.get("active_backend")
    if isinstance(backend, str) and backend.startswith("be_") and backend[3:] in POOLS:
        return backend[3:]
    return None


def live_pool(manifest: Mapping[str, Any], lb: LbInput) -> str | None:
    """The live pool: per the load balancer when it answers, else per the manifest."""
    return _lb_pool(lb) or manifest.get("live_pool")


def _manifest_host(manifest: Mapping[str, Any], host: str) -> tuple[str | None, dict[str, Any]]:
    """(pool, entry) of ``host`` in the manifest, or (None, {})."""
    for pool in POOLS:
        entry = ((manifest.get("pools") or {}).get(pool) or {}).get("hosts", {}).get(host)
        if entry is not None:
            return pool, dict(entry)
    return None, {}


def _short(sha: Any) -> str | None:
    return sha[:SHA_SHORT].lower() if isinstance(sha, str) and sha else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _host_drift(
    pool: str,
    role: str,
    facts: Mapping[str, Any] | None,
    known: bool,
    manifest_pool: str | None,
    recorded: Mapping[str, Any],
    server: Mapping[str, Any] | None,
    lb: LbInput,
) -> list[str]:
    """Every way the host, its manifest entry, the inventory and the LB disagree."""
    drift: list[str] = []
    if not known:
        drift.append("host unreachable: no facts collected")
    elif facts is None:
        drift.append("host unreachable")
    elif facts.get("error"):
        error = " ".join(str(facts["error"]).split()).removeprefix("unreachable: ")
        drift.append(f"host unreachable: {error}")
    else:
        running, recorded_version = facts.get("version"), recorded.get("version")
        if running is None and recorded_version is not None:
            drift.append(f"host has no release.json, manifest says {recorded_version}")
        elif running is not None and not recorded:
            drift.append(f"host runs {running}, manifest has no record of it")
        elif running is not None and str(running) != str(recorded_version):
            drift.append(f"host runs {running}, manifest says {recorded_version}")
        else:
            host_sha, recorded_sha = _short(facts.get("sha256")), _short(recorded.get("sha256"))
            if host_sha and recorded_sha and host_sha != recorded_sha:
                drift.append(f"host sha256 {host_sha}, manifest says {recorded_sha}")
        service = facts.get("service")
        if running is not None and service is not None and service != "active":
            drift.append(f"app.service is {service or 'unknown'}")
        host_pool = facts.get("pool")
        if host_pool is not None and host_pool != pool:
            drift.append(f"host release.json says pool {host_pool}, inventory says {pool}")
    if manifest_pool is not None and manifest_pool != pool:
        drift.append(f"manifest lists host under {manifest_pool}, inventory says {pool}")
    if _lb_answered(lb):
        if server is None:
            if role == "live":
                drift.append(f"live host is not a server in the lb (expected in be_{pool})")
        else:
            backend = server.get("backend")
            if backend is not None and backend != f"be_{pool}":
                drift.append(f"lb has host in {backend}, inventory says be_{pool}")
            status = str(server.get("status") or "")
            if role == "live" and status.upper().startswith(_UNHEALTHY):
                drift.append(f"lb reports {status} for a live host")
    return drift


def build_rows(
    manifest: Mapping[str, Any],
    host_facts: HostInput,
    lb: LbInput,
    inventory_pools: InventoryPools,
) -> list[Row]:
    """One row per inventory host (blue first), then hosts only the manifest still lists."""
    live = live_pool(manifest, lb)
    servers = (lb.get("servers") or {}) if lb and _lb_answered(lb) else {}
    placed: list[tuple[str, str, bool]] = [
        (host, pool, True) for pool in POOLS for host in inventory_pools.get(pool, [])
    ]
    in_inventory = {host for host, _, _ in placed}
    for pool in POOLS:
        recorded_hosts = ((manifest.get("pools") or {}).get(pool) or {}).get("hosts") or {}
        placed.extend((host, pool, False) for host in recorded_hosts if host not in in_inventory)
    rows = []
    for host, pool, listed in placed:
        manifest_pool, recorded = _manifest_host(manifest, host)
        facts = host_facts.get(host)
        server = servers.get(host)
        role = "live" if pool == live else "idle"
        drift = _host_drift(
            pool,
            role,
            facts,
            host in host_facts,
            manifest_pool,
            recorded,
            server,
            lb,
        )
        if not listed:
            drift.insert(0, "in manifest but not in inventory")
        usable = facts if facts and not facts.get("error") else {}
        smoke = recorded.get("smoke") or {}
        rows.append(
            Row(
                host=host,
                pool=pool,
                role=role,
                version=_text(usable.get("version") or recorded.get("version")),
                sha_short=_short(usable.get("sha256") or recorded.get("sha256")),
                deployed_at=_text(usable.get("activated_at") or recorded.get("deployed_at")),
                deployed_by=_text(usable.get("activated_by") or recorded.get("deployed_by")),
                smoke=_text(smoke.get("result")),
                lb_status=_text(server.get("status")) if server else None,
                drift=drift,
                staged=bool(recorded.get("staged")),
            )
        )
    return rows


def fleet_drift(
    manifest: Mapping[str, Any],
    host_facts: HostInput,
    lb: LbInput,
    inventory_pools: InventoryPools,
) -> list[str]:
    """Drift that belongs to the fleet, not to one host: the LB and the live pool."""
    drift: list[str] = []
    recorded_live = manifest.get("live_pool")
    if not lb:
        drift.append("load balancer unreachable")
    elif lb.get("error"):
        drift.append(f"load balancer unreachable: {' '.join(str(lb['error']).split())}")
    else:
        backend = lb.get("active_backend")
        routed = _lb_pool(lb)
        if routed is None:
            drift.append(f"lb routes to unknown backend {backend!r}")
        elif routed != recorded_live:
            drift.append(f"lb routes to {routed} but manifest says {recorded_live or 'none'}")
    live = live_pool(manifest, lb)
    if live is not None and not inventory_pools.get(live):
        drift.append(f"live pool {live} has no hosts in the inventory")
    return drift


def has_drift(rows: list[Row], fleet: list[str]) -> bool:
    """True if any host or the fleet drifted (the report then exits EXIT_DRIFT)."""
    return bool(fleet) or any(row.drift for row in rows)


def drift_lines(rows: list[Row], fleet: list[str]) -> list[str]:
    """All drift as lines: fleet drift first, then ``host: problem``."""
    return [*fleet, *(f"{row.host}: {problem}" for row in rows for problem in row.drift)]


def _live_summary(rows: list[Row]) -> tuple[str | None, str | None]:
    """(live pool, its most common version) as the rows show it."""
    live_rows = [row for row in rows if row.role == "live"]
    if not live_rows:
        return None, None
    versions = Counter(row.version for row in live_rows if row.version)
    version = versions.most_common(1)[0][0] if versions else None
    return live_rows[0].pool, version


def _smoke_cell(row: Row) -> str:
    if row.staged:
        return f"{row.smoke or '-'} (staged)"
    return row.smoke or "-"


_COLUMNS = ("HOST", "POOL", "ROLE", "VERSION", "SHA256", "DEPLOYED_AT", "BY", "SMOKE", "LB")


def _cells(row: Row) -> list[str]:
    values = [row.host, row.pool, row.role, row.version, row.sha_short, row.deployed_at]
    values += [row.deployed_by, _smoke_cell(row), row.lb_status]
    return [value or "-" for value in values]


def render_table(rows: list[Row], fleet: list[str], *, env: str | None = None) -> str:
    """Fixed-width host table, a summary line, then every drift line."""
    body = [_cells(row) for row in rows]
    widths = [max(len(text) for text in column) for column in zip(_COLUMNS, *body, strict=False)]
    lines = ["  ".join(text.ljust(width) for text, width in zip(_COLUMNS, widths, strict=True))]
    for row, cells in zip(rows, body, strict=True):
        line = "  ".join(text.ljust(width) for text, width in zip(cells, widths, strict=True))
        lines.append(line + ("  DRIFT" if row.drift else ""))
    live, version = _live_summary(rows)
    problems = drift_lines(rows, fleet)
    summary = (
        f"env {env or '?'} | live {live or 'none'} ({version or 'no version'}) | "
        f"{len(rows)} hosts | drift: {len(problems) if problems else 'none'}"
    )
    lines += ["", summary, *(f"  drift: {problem}" for problem in problems)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render_json(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str]) -> str:
    """A stable machine-readable report (keys in a fixed order, 2-space indent)."""
    live, version = _live_summary(rows)
    history = manifest.get("history") or []
    problems = drift_lines(rows, fleet)
    report = {
        "env": manifest.get("env"),
        "app": manifest.get("app"),
        "live_pool": live if live is not None else manifest.get("live_pool"),
        "live_version": version,
        "manifest_live_pool": manifest.get("live_pool"),
        "in_sync": not problems,
        "hosts": [asdict(row) for row in rows],
        "fleet_drift": list(fleet),
        "drift": problems,
        "last": history[-1] if history else None,
    }
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.mono { font-family: ui-monospace, monospace; }
tr.live td.role { font-weight: bold; color: #1a7f37; }
tr.drift td { background: #fff1f0; }
td.drift-list { color: #b42318; }
.summary { padding: 8px 12px; border-radius: 4px; display: inline-block; }
.ok { background: #e6f4ea; } .bad { background: #fde7e9; }
tr.failed td, tr.flipped_back td { background: #fff8e1; }
""".strip()


def _cell(value: Any, css_class: str | None = None) -> str:
    text = "-" if value is None or value == "" else str(value)
    attr = f' class="{css_class}"' if css_class else ""
    return f"<td{attr}>{html.escape(text)}</td>"


def _host_row(row: Row) -> str:
    classes = [row.role, *(["drift"] if row.drift else [])]
    drift = "<br>".join(html.escape(problem) for problem in row.drift) or "-"
    cells = [
        _cell(row.host),
        _cell(row.pool),
        _cell(row.role, "role"),
        _cell(row.version, "mono"),
        _cell(row.sha_short, "mono"),
        _cell(row.deployed_at),
        _cell(row.deployed_by),
        _cell(_smoke_cell(row)),
        _cell(row.lb_status),
        f'<td class="drift-list">{drift}</td>',
    ]
    return f'<tr class="{" ".join(classes)}">{"".join(cells)}</tr>'


def _history_row(entry: Mapping[str, Any]) -> str:
    source, target = entry.get("from") or {}, entry.get("to") or {}

    def endpoint(side: Mapping[str, Any]) -> str | None:
        if not side.get("pool"):
            return None
        return f"{side['pool']} {side.get('version') or '-'}"

    cells = [
        _cell(entry.get("id"), "mono"),
        _cell(entry.get("action")),
        _cell(entry.get("result")),
        _cell(entry.get("by")),
        _cell(entry.get("finished_at")),
        _cell(entry.get("duration_s")),
        _cell(endpoint(source)),
        _cell(endpoint(target)),
        _cell(entry.get("phase")),
        _cell(entry.get("message")),
    ]
    result = html.escape(str(entry.get("result") or ""), quote=True)
    return f'<tr class="{result}">{"".join(cells)}</tr>'


def render_html(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str]) -> str:
    """A self-contained page: summary, ``table#hosts``, drift, ``table#history`` (newest first)."""
    env = str(manifest.get("env") or "?")
    live, version = _live_summary(rows)
    problems = drift_lines(rows, fleet)
    status = "bad" if problems else "ok"
    summary = (
        f"env {env} · live {live or 'none'} ({version or 'no version'}) · {len(rows)} hosts · "
        f"drift: {len(problems) if problems else 'none'}"
    )
    host_head = "".join(
        f"<th>{html.escape(name)}</th>"
        for name in (*_COLUMNS[:6], "DEPLOYED_BY", "SMOKE", "LB", "DRIFT")
    )
    history_head = (
        "".join(
            f"<th>{name}</th>"
            for name in ("ID", "ACTION", "RESULT", "BY", "FINISHED_AT", "SECONDS", "FROM", "TO")
        )
        + "<th>PHASE</th><th>MESSAGE</th>"
    )
    history = list(reversed((manifest.get("history") or [])[-HISTORY_LIMIT:]))
    drift_items = "".join(f"<li>{html.escape(problem)}</li>" for problem in fleet)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>turnout report: {html.escape(env)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>turnout: {html.escape(env)} ({html.escape(str(manifest.get('app') or 'app'))})</h1>",
        f'<p class="summary {status}" id="summary">{html.escape(summary)}</p>',
        '<table id="hosts">',
        f"<thead><tr>{host_head}</tr></thead>",
        "<tbody>",
        *(_host_row(row) for row in rows),
        "</tbody>",
        "</table>",
    ]
    if fleet:
        parts += ["<h2>Fleet drift</h2>", f'<ul id="drift">{drift_items}</ul>']
    parts += [
        f"<h2>History (last {HISTORY_LIMIT}, newest first)</h2>",
        '<table id="history">',
        f"<thead><tr>{history_head}</tr></thead>",
        "<tbody>",
        *(_history_row(entry) for entry in history),
        "</tbody>",
        "</table>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------ JUnit XML

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


@dataclass(frozen=True)
class SmokeRecord:
    """A host's latest smoke result and the run that produced it."""

    host: str
    pool: str | None
    result: Mapping[str, Any]
    run_id: str | None
    at: str | None


def latest_smoke(manifest: Mapping[str, Any]) -> dict[str, SmokeRecord]:
    """host -> its latest smoke result: the last history entry's ``smoke``, else the pools'."""
    latest: dict[str, SmokeRecord] = {}
    for pool in POOLS:
        hosts = ((manifest.get("pools") or {}).get(pool) or {}).get("hosts") or {}
        for host, entry in hosts.items():
            smoke = (entry or {}).get("smoke")
            if isinstance(smoke, Mapping):
                latest[host] = SmokeRecord(host, pool, smoke, entry.get("run_id"),
                                           entry.get("deployed_at"))
    history = manifest.get("history") or []
    if history:
        last = history[-1]
        for host, smoke in (last.get("smoke") or {}).items():
            if isinstance(smoke, Mapping):
                pool, _ = _manifest_host(manifest, host)
                pool = pool or (last.get("to") or {}).get("pool")
                latest[host] = SmokeRecord(host, pool, smoke, last.get("id"),
                                           last.get("finished_at"))
    return latest


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
    manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str | None = None
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
    live, version = _live_summary(rows)
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


# ------------------------------------------------------------------ Prometheus textfile

_DEPLOY_ACTIONS = ("deploy", "promote")
_DEPLOY_OK = ("success", "noop", "awaiting_approval")


def _prom_label(value: Any) -> str:
    """A label value escaped per the text exposition format: backslash, quote, newline."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _prom_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _prom_value(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _full_sha(manifest: Mapping[str, Any], row: Row) -> str | None:
    """The manifest's full sha256 for the host when it matches what the row shows."""
    _, recorded = _manifest_host(manifest, row.host)
    sha = recorded.get("sha256")
    if isinstance(sha, str) and row.sha_short and sha.lower().startswith(row.sha_short):
        return sha.lower()
    return row.sha_short


def render_prometheus(
    manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str | None = None
) -> str:
    """Metrics for node_exporter's textfile collector (write them to ``<dir>/turnout.prom``).

    ``turnout_deployed_info`` per host, ``turnout_live_pool_info``, ``turnout_drift`` (number
    of findings), and the last deploy's (deploy or promote) finish time and success.
    """
    env_name = str(env or manifest.get("env") or "unknown")
    env_label = f'env="{_prom_label(env_name)}"'
    lines: list[str] = []

    def family(name: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {_prom_help(help_text)}")
        lines.append(f"# TYPE {name} gauge")

    family("turnout_deployed_info",
           "Release running on each host (value is always 1); role is live or idle.")
    for row in rows:
        labels = {
            "host": row.host,
            "pool": row.pool,
            "role": row.role,
            "version": row.version,
            "sha256": _full_sha(manifest, row),
        }
        rendered = ",".join(f'{key}="{_prom_label(value)}"' for key, value in labels.items())
        lines.append(f"turnout_deployed_info{{{env_label},{rendered}}} 1")

    live, _ = _live_summary(rows)
    live = live or manifest.get("live_pool")
    family("turnout_live_pool_info", "The pool the load balancer routes to (value is always 1).")
    if live:
        lines.append(f'turnout_live_pool_info{{{env_label},pool="{_prom_label(live)}"}} 1')

    family("turnout_drift", "Number of drift findings between manifest, hosts and load balancer.")
    lines.append(f"turnout_drift{{{env_label}}} {len(drift_lines(rows, fleet))}")

    last_deploy = next(
        (entry for entry in reversed(manifest.get("history") or [])
         if entry.get("action") in _DEPLOY_ACTIONS),
        None,
    )
    finished = _epoch(last_deploy.get("finished_at")) if last_deploy else None
    family("turnout_last_deploy_timestamp_seconds",
           "When the last deploy or promote finished (Unix time).")
    if finished is not None:
        lines.append(
            f"turnout_last_deploy_timestamp_seconds{{{env_label}}} {_prom_value(finished)}"
        )
    family("turnout_last_deploy_success",
           "1 if the last deploy or promote succeeded (or awaits approval), else 0.")
    if last_deploy:
        success = last_deploy.get("result") in _DEPLOY_OK
        lines.append(f"turnout_last_deploy_success{{{env_label}}} {_prom_value(success)}")
    return "\n".join(lines) + "\n"
