"""The fixed-width host table with a summary line and every drift line (``invoke status``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.report.drift import Row, drift_lines, live_summary


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
    live, version = live_summary(rows)
    problems = drift_lines(rows, fleet)
    summary = (
        f"env {env or '?'} | live {live or 'none'} ({version or 'no version'}) | "
        f"{len(rows)} hosts | drift: {len(problems) if problems else 'none'}"
    )
    lines += ["", summary, *(f"  drift: {problem}" for problem in problems)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str) -> str:
    return render_table(rows, fleet, env=env)
