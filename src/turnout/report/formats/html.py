"""A self-contained HTML page: summary, hosts, drift, recent history (``--format html``)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from turnout.report.drift import Row, drift_lines, live_summary
from turnout.report.formats.table import _COLUMNS, _smoke_cell

HISTORY_LIMIT = 20

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


def render_html(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str],
                lbs: tuple = ()) -> str:
    """A self-contained page: summary, ``table#hosts``, drift, ``table#history`` (newest first)."""
    env = str(manifest.get("env") or "?")
    live, version = live_summary(rows)
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
    if lbs:
        lb_head = "".join(f"<th>{name}</th>" for name in ("LOAD BALANCER", "ROUTES", "MAP FILE",
                                                          "CANARY", "RELEASE STATE"))
        lb_rows = "".join(
            "<tr>" + _cell(row.name) + _cell(row.routes) + _cell(row.map_file)
            + _cell(f"{row.canary_pct}%") + _cell(row.error or (
                f"serial {row.state_serial}, live {row.state_live or 'none'}"
                + (f", unfinished flip: {row.pending}" if row.pending else "")
                if row.state_serial else "none")) + "</tr>" for row in lbs)
        parts += ["<h2>Load balancers</h2>", '<table id="lbs">',
                  f"<thead><tr>{lb_head}</tr></thead>", f"<tbody>{lb_rows}</tbody>", "</table>"]
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


def render(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str,
           lbs: tuple = ()) -> str:
    return render_html(manifest, rows, fleet, lbs=lbs)
