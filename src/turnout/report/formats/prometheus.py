"""Prometheus textfile-collector metrics (``--format prometheus``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from turnout.manifest.queries import host_entry as _manifest_host
from turnout.report.drift import Row, drift_lines, live_summary

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
    manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str | None = None,
    lbs: tuple = (),
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

    live, _ = live_summary(rows)
    live = live or manifest.get("live_pool")
    family("turnout_live_pool_info", "The pool the load balancer routes to (value is always 1).")
    if live:
        lines.append(f'turnout_live_pool_info{{{env_label},pool="{_prom_label(live)}"}} 1')

    if lbs:
        family("turnout_lb_live_pool_info",
               "The pool each load balancer routes to (value is always 1).")
        for row in lbs:
            if row.routes:
                lines.append(f'turnout_lb_live_pool_info{{{env_label},lb="{_prom_label(row.name)}",'
                             f'pool="{_prom_label(row.routes)}"}} 1')

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


def render(manifest: Mapping[str, Any], rows: list[Row], fleet: list[str], env: str,
           lbs: tuple = ()) -> str:
    return render_prometheus(manifest, rows, fleet, env=env, lbs=lbs)
