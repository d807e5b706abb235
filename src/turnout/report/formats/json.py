"""A stable machine-readable report (``--format json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from turnout.report.drift import LbRow, Row, drift_lines, live_summary


def render_json(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str],
                lbs: list[LbRow] | tuple[LbRow, ...] = ()) -> str:
    """A stable machine-readable report (keys in a fixed order, 2-space indent)."""
    live, version = live_summary(rows)
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
        "load_balancers": [asdict(row) for row in lbs],
        "fleet_drift": list(fleet),
        "drift": problems,
        "last": history[-1] if history else None,
    }
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def render(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str,
           lbs: list[LbRow] | tuple[LbRow, ...] = ()) -> str:
    return render_json(manifest, rows, fleet, lbs)
