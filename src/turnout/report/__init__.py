"""The deployed-version report: the drift model (``drift``) and one module per output format
(``formats/``), chosen from :data:`RENDERERS`. Pure: callers gather the facts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from turnout.report.drift import (
    EXIT_DRIFT,
    LbRow,
    Row,
    build_lb_rows,
    build_rows,
    drift_lines,
    fleet_drift,
    has_drift,
    live_pool,
    live_summary,
    release_state_drift,
)
from turnout.report.formats import html, json, junit, prometheus, table
from turnout.report.formats.html import render_html
from turnout.report.formats.json import render_json
from turnout.report.formats.junit import render_junit
from turnout.report.formats.prometheus import render_prometheus
from turnout.report.formats.table import render_table

Renderer = Callable[..., str]
# --format NAME -> render(manifest, rows, fleet, env)
RENDERERS: dict[str, Renderer] = {
    "table": table.render,
    "json": json.render,
    "html": html.render,
    "junit": junit.render,
    "prometheus": prometheus.render,
}


def render(fmt: str, manifest: Mapping[str, Any], rows: list[Row], fleet: list[str],
           env: str, lbs: list[LbRow] | tuple[LbRow, ...] = ()) -> str:
    """The report in format ``fmt`` (a key of :data:`RENDERERS`): render(manifest, rows, fleet,
    env, lbs=...)."""
    return RENDERERS[fmt](manifest, rows, fleet, env, lbs=lbs)


__all__ = [
    "EXIT_DRIFT", "RENDERERS", "LbRow", "Row", "build_lb_rows", "build_rows", "drift_lines",
    "fleet_drift", "has_drift", "live_pool", "live_summary", "release_state_drift", "render",
    "render_html", "render_json", "render_junit", "render_prometheus", "render_table",
]
