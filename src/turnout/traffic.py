"""Where traffic goes: what every load balancer routes to, agreed against the fleet's release
state (turnout.fleetstate). Pure.

The pools come from the load balancers, never from which hosts have a release file. All LBs
must route to one pool; the one exception is a flip that a killed run left half done (the
release state still holds it as ``pending``), which the next run finishes or undoes. Anything
else (an LB routing elsewhere, a map without an ``active`` entry, LBs whose backends differ) is
refused with one line naming the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout import fleetstate
from turnout.contracts import POOLS
from turnout.errors import InputError


@dataclass(frozen=True)
class LbView:
    """One load balancer as read by the discover phase (or turnout.facts)."""

    name: str
    live_pool: str | None  # what the runtime map routes to
    map_file_pool: str | None = None  # what the map file on disk says
    canary_pct: int = 0
    up: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # pool -> servers UP
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # pool -> servers
    state: Mapping[str, Any] | None = None  # this LB's copy of the fleet release state
    releases: Mapping[str, str] = field(default_factory=dict)  # release map: backend -> version
    error: str | None = None  # the LB could not be read at all
    state_error: str | None = None  # its release state file could not be read


def lb_view(name: str, facts: Mapping[str, Any] | None) -> LbView:
    """An LbView from turnout_lb's ``read`` result (the playbooks) or turnout.facts (invoke)."""
    facts = facts or {}
    if facts.get("error"):
        return LbView(name, None, error=str(facts["error"]))
    servers = (facts.get("stats") or {}).get("servers") or {}
    members = {pool: tuple(sorted(servers.get(f"be_{pool}") or {})) for pool in POOLS}
    up = {pool: tuple(sorted(n for n, f in (servers.get(f"be_{pool}") or {}).items()
                             if (f or {}).get("status") == "UP")) for pool in POOLS}
    canary = facts.get("canary") or {}
    return LbView(name=name, live_pool=facts.get("live_pool"),
                  map_file_pool=facts.get("map_file_pool"),
                  canary_pct=int(canary.get("pct") or 0), up=up, members=members,
                  state=facts.get("fleet_state"), releases=facts.get("releases") or {},
                  state_error=facts.get("fleet_state_error"))


@dataclass(frozen=True)
class Traffic:
    """The agreed picture: the committed live pool and how each LB routes right now."""

    live: str | None  # the pool traffic is committed to (None: a new fleet, nothing live)
    lb_pool: str  # the pool the LBs route to (or, mid-flip, the pool the flip started from)
    routes: dict[str, str]
    state: dict[str, Any]  # the newest fleet release state (empty for a fleet without one)
    behind: list[str]  # LBs whose copy of the state is older than the newest
    pending: dict[str, Any] | None  # a flip a killed run left unfinished

    @property
    def split(self) -> bool:
        return len(set(self.routes.values())) > 1


def agree(env: str, lbs: Mapping[str, LbView]) -> Traffic:
    """The traffic picture of ``lbs`` or InputError saying what is wrong and how to fix it."""
    if not lbs:
        raise InputError(f"the inventory of {env} has no host in group 'lb': add the load "
                         "balancer(s)")
    for lb in lbs.values():
        if lb.error:
            raise InputError(f"cannot read load balancer {lb.name}: {lb.error}; check it and "
                             "run the command again")
    state, behind = fleetstate.newest({name: lb.state for name, lb in lbs.items()})
    pending = state.get("pending")
    routes = {}
    for lb in lbs.values():
        if lb.live_pool not in POOLS:
            raise InputError(f"load balancer {lb.name}'s map routes to {lb.live_pool!r}, not "
                             "blue or green: run 'invoke provision' or fix its pool map")
        routes[lb.name] = lb.live_pool
    layouts = {name: tuple(sorted((pool, lb.members.get(pool, ())) for pool in POOLS))
               for name, lb in lbs.items()}
    if len(set(layouts.values())) > 1:
        detail = "; ".join(f"{name}: " + ", ".join(f"be_{p} {' '.join(m) or '-'}"
                                                    for p, m in layout)
                           for name, layout in sorted(layouts.items()))
        raise InputError(f"the load balancers of {env} have different pools ({detail}): run "
                         "'invoke provision' so every LB has the inventory's pools")
    pools_now = set(routes.values())
    committed = state.get("live")
    if len(pools_now) == 1:
        routed = pools_now.pop()
        finishing = pending and pending.get("to") == routed
        if committed not in (None, routed) and not finishing:
            raise InputError(
                f"every load balancer of {env} routes to {routed} but the release state says "
                f"{committed} is live and no flip is in progress: someone moved traffic by "
                f"hand; run 'invoke reconcile --env {env}' to record what the LBs serve")
        if finishing:
            live = committed
        else:  # a fleet without release state serves from the routed pool if it answers
            live = committed or (routed if serving(lbs, routed) else None)
        return Traffic(live=live, lb_pool=routed, routes=routes, state=state, behind=behind,
                       pending=pending)
    if pending and pools_now == {pending.get("from"), pending.get("to")}:
        return Traffic(live=pending.get("from"), lb_pool=pending.get("from"), routes=routes,
                       state=state, behind=behind, pending=pending)
    detail = ", ".join(f"{name} routes to {pool}" for name, pool in sorted(routes.items()))
    raise InputError(f"the load balancers of {env} disagree ({detail}) and no flip is in "
                     f"progress: run 'invoke provision --env {env}' to put every LB on the "
                     f"live pool ({committed or 'see invoke status'})")


def serving(lbs: Mapping[str, LbView], pool: str) -> bool:
    """True when some LB has a server of ``pool`` UP (the pool answers health checks)."""
    return any(lb.up.get(pool) for lb in lbs.values())


def provision_view(reads: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """What provisioning needs from the LBs that already run (turnout_lb ``read`` results,
    None for an LB without HAProxy yet): the pool a new LB starts on, whether that is the
    committed live pool (then every LB is put on it), and the newest release state."""
    views = {name: lb_view(name, read) for name, read in reads.items() if read}
    state, _ = fleetstate.newest({name: view.state for name, view in views.items()})
    pending = state.get("pending") or {}
    committed = pending.get("from") if pending else state.get("live")
    if committed in POOLS:
        return {"live_pool": committed, "committed": True, "state": state}
    routes = [view.live_pool for view in views.values() if view.live_pool in POOLS]
    pool = max(set(routes), key=routes.count) if routes else "blue"
    return {"live_pool": pool, "committed": False, "state": state}


def reconciled_state(env: str, lbs: Mapping[str, LbView], pools: Mapping[str, list[str]],
                     releases: Mapping[str, Mapping[str, Any] | None],
                     at: str) -> dict[str, Any]:
    """The release state rebuilt from what every LB routes to and what the hosts run (invoke
    reconcile): the routed pool is live, a flip in progress is dropped, history is kept. A
    pool whose hosts no longer run what the state says it holds becomes of unknown history.
    The LBs must agree (InputError otherwise). The serial is one higher than the newest copy."""
    routes = {name: lb.live_pool for name, lb in lbs.items()}
    if any(pool not in POOLS for pool in routes.values()) or len(set(routes.values())) != 1:
        detail = ", ".join(f"{name} routes to {pool}" for name, pool in sorted(routes.items()))
        raise InputError(f"cannot reconcile {env}: the load balancers do not all route to one "
                         f"pool ({detail}); run 'invoke provision --env {env}' first")
    routed = next(iter(routes.values()))
    state, _ = fleetstate.newest({name: lb.state for name, lb in lbs.items()})
    new = fleetstate.empty(env) if not state.get("serial") else dict(state)
    new["env"] = env
    new["pending"] = None
    new["pools"] = dict(new.get("pools") or {})
    for pool in POOLS:
        found = {((releases.get(h) or {}).get("version"), (releases.get(h) or {}).get("sha256"))
                 for h in pools.get(pool, [])}
        version, sha = found.pop() if len(found) == 1 else (None, None)
        known = new["pools"].get(pool) or {}
        if not version:
            new["pools"][pool] = None
        elif known.get("sha256") == sha and pool != routed:
            if known.get("status") == fleetstate.LIVE:  # it was live; traffic left it
                new["pools"][pool] = {**known, "status": fleetstate.PREVIOUS, "since": at}
            continue  # still what the state says it holds
        else:
            status = fleetstate.LIVE if pool == routed else "unknown"
            new["pools"][pool] = {"version": version, "sha256": sha,
                                  "run_id": known.get("run_id") if known.get("sha256") == sha
                                  else None, "status": status, "since": at,
                                  "verified_at": at if pool == routed else None}
    new["live"] = routed if new["pools"].get(routed) else None
    if new["live"]:
        live = new["pools"][routed]
        history = list(new.get("history") or [])
        if not history or history[-1].get("sha256") != live.get("sha256"):
            for entry in reversed(history):
                if not entry.get("left_at"):
                    entry["left_at"] = at
                    break
            history.append({"version": live["version"], "sha256": live["sha256"],
                            "pool": routed, "run_id": None, "action": "reconcile",
                            "live_at": at, "verified_at": at, "left_at": None,
                            "rolled_back": False})
        new["history"] = history[-fleetstate.HISTORY_MAX:]
    return fleetstate.bump(new, int(state.get("serial") or 0))
