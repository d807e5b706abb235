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


LbsInput = Mapping[str, LbInput]


def as_lbs(lbs: LbsInput | LbInput) -> dict[str, LbInput]:
    """Every LB's input by name; a single LB's input (or None) is named "lb"."""
    if lbs is None or (isinstance(lbs, Mapping)
                       and ({"active_backend", "servers", "error"} & set(lbs))):
        return {"lb": lbs}
    return dict(lbs)


def _lb_answered(lb: LbInput) -> bool:
    """True if the load balancer's facts were collected (not None, no ``error``)."""
    return bool(lb) and not lb.get("error")


def _lb_pool(lb: LbInput) -> str | None:
    """The pool the load balancer routes to, from ``active_backend`` ``be_<pool>``."""
    if not _lb_answered(lb):
        return None
    return pool_of_backend(lb.get("active_backend"))


def live_pool(manifest: Mapping[str, Any], lbs: LbsInput | LbInput) -> str | None:
    """The live pool: per the load balancers when they answer and agree, else the manifest's."""
    routed = {_lb_pool(lb) for lb in as_lbs(lbs).values() if _lb_answered(lb)}
    routed.discard(None)
    return routed.pop() if len(routed) == 1 else manifest.get("live_pool")


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
    servers: Mapping[str, Mapping[str, Any] | None],
    lbs: Mapping[str, LbInput],
) -> list[str]:
    """Every way the host, its manifest entry, the inventory and the LBs disagree."""
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
            drift.append(f"{facts.get('unit') or 'app.service'} is {service or 'unknown'}")
        host_pool = facts.get("pool")
        if host_pool is not None and host_pool != pool:
            drift.append(f"host release.json says pool {host_pool}, inventory says {pool}")
    if manifest_pool is not None and manifest_pool != pool:
        drift.append(f"manifest lists host under {manifest_pool}, inventory says {pool}")
    for name, lb in lbs.items():
        if not _lb_answered(lb):
            continue
        server = servers.get(name)
        if server is None:
            if role == "live":
                where = "the lb" if name == "lb" else name
                drift.append(f"live host is not a server in {where} (expected in be_{pool})")
        else:
            backend = server.get("backend")
            if backend is not None and backend != f"be_{pool}":
                drift.append(f"{name} has host in {backend}, inventory says be_{pool}")
            status = str(server.get("status") or "")
            if role == "live" and status.upper().startswith(_UNHEALTHY):
                drift.append(f"{name} reports {status} for a live host")
    return drift


def _lb_status(servers: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    """One cell for the host's state on every LB: "UP", or "lb1 UP, lb2 DOWN" when they differ."""
    states = {name: (server or {}).get("status") for name, server in servers.items()}
    found = {s for s in states.values() if s}
    if not found:
        return None
    if len(found) == 1 and all(states.values()):
        return found.pop()
    return ", ".join(f"{name} {state or '-'}" for name, state in states.items())


def build_rows(
    manifest: Mapping[str, Any],
    host_facts: HostInput,
    lbs: LbsInput | LbInput,
    inventory_pools: InventoryPools,
    workers: InventoryPools | None = None,
) -> list[Row]:
    """One row per inventory host (blue first, each pool's workers after it, role "worker"),
    then hosts only the manifest still lists."""
    lbs = as_lbs(lbs)
    live = live_pool(manifest, lbs)
    servers_of = {name: (lb.get("servers") or {}) if lb and _lb_answered(lb) else {}
                  for name, lb in lbs.items()}
    workers = workers or {}
    placed: list[tuple[str, str, bool]] = [
        (host, pool, True) for pool in POOLS
        for host in [*inventory_pools.get(pool, []), *workers.get(pool, [])]
    ]
    worker_hosts = {host for pool in POOLS for host in workers.get(pool, [])}
    in_inventory = {host for host, _, _ in placed}
    for pool in POOLS:
        recorded_hosts = ((manifest.get("pools") or {}).get(pool) or {}).get("hosts") or {}
        placed.extend((host, pool, False) for host in recorded_hosts if host not in in_inventory)
    rows = []
    for host, pool, listed in placed:
        manifest_pool, recorded = _manifest_host(manifest, host)
        facts = host_facts.get(host)
        servers = {name: members.get(host) for name, members in servers_of.items()
                   if _lb_answered(lbs[name])}
        role = "worker" if host in worker_hosts else "live" if pool == live else "idle"
        drift = _host_drift(pool, role, facts, host in host_facts, manifest_pool, recorded,
                            {} if role == "worker" else servers, lbs)
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
                lb_status=_lb_status(servers),
                drift=drift,
                staged=bool(recorded.get("staged")),
            )
        )
    return rows


def fleet_drift(
    manifest: Mapping[str, Any],
    host_facts: HostInput,
    lbs: LbsInput | LbInput,
    inventory_pools: InventoryPools,
) -> list[str]:
    """Drift that belongs to the fleet, not to one host: the LBs and the live pool."""
    lbs = as_lbs(lbs)
    drift: list[str] = []
    recorded_live = manifest.get("live_pool")
    routes = {}
    for name, lb in lbs.items():
        if not lb:
            drift.append(f"{'load balancer' if name == 'lb' else name} unreachable")
            continue
        if lb.get("error"):
            drift.append(f"{'load balancer' if name == 'lb' else name} unreachable: "
                         f"{' '.join(str(lb['error']).split())}")
            continue
        backend = lb.get("active_backend")
        routed = _lb_pool(lb)
        routes[name] = routed
        if routed is None:
            drift.append(f"{name} routes to unknown backend {backend!r}")
        elif routed != recorded_live:
            drift.append(f"{name} routes to {routed} but manifest says {recorded_live or 'none'}")
        on_disk = lb.get("map_file_pool")
        if "map_file_pool" in lb and routed and on_disk != routed:
            drift.append(f"{name}'s map file says {on_disk or 'nothing'} but it routes to "
                         f"{routed} at runtime: a reload would move traffic; run "
                         "'invoke provision' (it rewrites the map from the release state)")
        canary = lb.get("canary") or {}
        if int(canary.get("pct") or 0) != 0:
            drift.append(f"{name} sends {canary.get('pct')}% of requests to "
                         f"{canary.get('backend') or '?'} (a canary share at runtime: a canary "
                         "runs, or a killed run left it; the next deploy, rollback or promote "
                         "ends it)")
    if len(set(routes.values()) - {None}) > 1:
        drift.append("the load balancers disagree: " + ", ".join(
            f"{name} routes to {pool}" for name, pool in sorted(routes.items())))
    for pool in POOLS:
        found = {}
        for host in inventory_pools.get(pool, []):
            release = host_facts.get(host) or {}
            if release.get("version") and not release.get("error"):
                found[host] = f"{release.get('version')} {_short(release.get('sha256'))}"
        if len(set(found.values())) > 1:
            drift.append(f"pool {pool}'s hosts run different releases: " + ", ".join(
                f"{host}={value.split()[0]}" for host, value in sorted(found.items())))
    live = live_pool(manifest, lbs)
    if live is not None and not inventory_pools.get(live):
        drift.append(f"live pool {live} has no hosts in the inventory")
    return drift


def release_state_drift(states: Mapping[str, Mapping[str, Any] | None],
                        errors: Mapping[str, str | None], host_facts: HostInput,
                        inventory_pools: InventoryPools,
                        routes: Mapping[str, str | None]) -> list[str]:
    """Drift of the fleet's release state (turnout.fleetstate) on the LBs: copies missing,
    unreadable or behind, a flip a killed run left unfinished, a live pool the LBs do not
    route to, a pool whose hosts do not run what the state says it holds."""
    from turnout import fleetstate

    drift = []
    for name, error in sorted(errors.items()):
        if error:
            drift.append(f"{name}: {error}")
    best, behind = fleetstate.newest(dict(states))
    if not best.get("serial"):
        return drift
    for name in behind:
        have = (states.get(name) or {}).get("serial")
        drift.append(f"{name}'s copy of the release state is "
                     + (f"behind (serial {have}, newest {best['serial']})" if have
                        else "missing") + ": the next deploy, rollback or promote writes it")
    pending = best.get("pending")
    if pending:
        drift.append(f"the release state holds an unfinished flip to {pending.get('to')} "
                     f"({pending.get('action')} of {pending.get('version')}, run "
                     f"{pending.get('run_id')}): a run is flipping, or was killed; run it "
                     "again to finish it or 'invoke rollback' to undo it")
    live = best.get("live")
    for name, routed in sorted(routes.items()):
        if live and routed and routed != live and not pending:
            drift.append(f"{name} routes to {routed} but the release state says {live} is live")
    for pool in POOLS:
        release = (best.get("pools") or {}).get(pool) or {}
        if not release.get("sha256") or release.get("status") == "staging":
            continue
        for host in inventory_pools.get(pool, []):
            facts = host_facts.get(host) or {}
            if facts.get("error"):
                continue
            if facts.get("sha256") != release.get("sha256"):
                drift.append(f"{host} runs {facts.get('version') or 'nothing'} but the release "
                             f"state says pool {pool} holds {release.get('version')}")
    return drift


@dataclass
class LbRow:
    """One load balancer as the report shows it."""

    name: str
    routes: str | None  # the pool its runtime map routes to
    map_file: str | None  # the pool its map file says
    canary_pct: int
    state_serial: int | None  # its copy of the release state
    state_live: str | None
    pending: str | None  # "deploy 2.0 -> green (run R)" when a flip is unfinished
    error: str | None = None


def build_lb_rows(lbs: Mapping[str, Mapping[str, Any] | None],
                  states: Mapping[str, Mapping[str, Any] | None]) -> list[LbRow]:
    """One row per load balancer: what it routes to, on disk and at runtime, its canary share
    and its copy of the fleet's release state."""
    rows = []
    for name, lb in lbs.items():
        if not _lb_answered(lb):
            rows.append(LbRow(name, None, None, 0, None, None, None,
                              error=str((lb or {}).get("error") or "unreachable")))
            continue
        state = states.get(name) or {}
        pending = state.get("pending")
        rows.append(LbRow(
            name=name, routes=_lb_pool(lb), map_file=lb.get("map_file_pool"),
            canary_pct=int((lb.get("canary") or {}).get("pct") or 0),
            state_serial=state.get("serial"), state_live=state.get("live"),
            pending=(f"{pending.get('action')} {pending.get('version')} -> {pending.get('to')} "
                     f"(run {pending.get('run_id')})") if pending else None))
    return rows


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
