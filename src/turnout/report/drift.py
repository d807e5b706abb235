"""The drift model: one row per host from three sources of truth (manifest, the host's own
release.json, the load balancer), and every way they disagree. Pure.

Callers gather the facts (turnout.facts over OpenSSH) and pass them in; the formats in
turnout.report.formats render the rows. Any disagreement is drift, and ``has_drift`` makes it
an exit code (EXIT_DRIFT).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.contracts import POOLS, pool_of_backend
from turnout.manifest.queries import host_entry as _manifest_host

EXIT_DRIFT = 3
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
    return pool_of_backend(lb.get("active_backend"))


def live_pool(manifest: Mapping[str, Any], lb: LbInput) -> str | None:
    """The live pool: per the load balancer when it answers, else per the manifest."""
    return _lb_pool(lb) or manifest.get("live_pool")


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


def live_summary(rows: list[Row]) -> tuple[str | None, str | None]:
    """(live pool, its most common version) as the rows show it."""
    live_rows = [row for row in rows if row.role == "live"]
    if not live_rows:
        return None, None
    versions = Counter(row.version for row in live_rows if row.version)
    version = versions.most_common(1)[0][0] if versions else None
    return live_rows[0].pool, version
