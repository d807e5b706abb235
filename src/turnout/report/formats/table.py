"""The fixed-width host table with a summary line and every drift line (``invoke status``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.report.drift import LbRow, Row, drift_lines, live_summary


def _smoke_cell(row: Row) -> str:
    if row.staged:
        return f"{row.smoke or '-'} (staged)"
    return row.smoke or "-"


_COLUMNS = ("HOST", "POOL", "ROLE", "VERSION", "SHA256", "DEPLOYED_AT", "BY", "SMOKE", "LB")


def _cells(row: Row) -> list[str]:
    values = [row.host, row.pool, row.role, row.version, row.sha_short, row.deployed_at]
    values += [row.deployed_by, _smoke_cell(row), row.lb_status]
    return [value or "-" for value in values]


_LB_COLUMNS = ("LOAD BALANCER", "ROUTES", "MAP FILE", "CANARY", "RELEASE STATE")


def _lb_cells(row: LbRow) -> list[str]:
    if row.error:
        return [row.name, "-", "-", "-", f"unreachable: {row.error}"[:60]]
    state = (f"serial {row.state_serial}, live {row.state_live or 'none'}"
             if row.state_serial else "none")
    if row.pending:
        state += f", unfinished flip: {row.pending}"
    return [row.name, row.routes or "-", row.map_file or "-", f"{row.canary_pct}%", state]


def _grid(columns: tuple[str, ...], body: list[list[str]]) -> list[str]:
    widths = [max(len(text) for text in column) for column in zip(columns, *body, strict=False)]
    return ["  ".join(text.ljust(width) for text, width in zip(cells, widths, strict=True))
            for cells in [list(columns), *body]]


def render_table(rows: list[Row], fleet: list[str], *, env: str | None = None,
                 lbs: list[LbRow] | tuple[LbRow, ...] = ()) -> str:
    """Fixed-width host table, the load balancers, a summary line, then every drift line."""
    body = [_cells(row) for row in rows]
    grid = _grid(_COLUMNS, body)
    lines = [grid[0]]
    for row, line in zip(rows, grid[1:], strict=True):
        lines.append(line + ("  DRIFT" if row.drift else ""))
    if lbs:
        lines += ["", *_grid(_LB_COLUMNS, [_lb_cells(row) for row in lbs])]
    live, version = live_summary(rows)
    problems = drift_lines(rows, fleet)
    summary = (
        f"env {env or '?'} | live {live or 'none'} ({version or 'no version'}) | "
        f"{len(rows)} hosts | drift: {len(problems) if problems else 'none'}"
    )
    lines += ["", summary, *(f"  drift: {problem}" for problem in problems)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str,
           lbs: list[LbRow] | tuple[LbRow, ...] = ()) -> str:
    return render_table(rows, fleet, env=env, lbs=lbs)
