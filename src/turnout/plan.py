"""What a deploy, rollback or promote will do: the live and target pool, the hosts, the
versions, or why it is refused. Pure.

Written once and used by both sides: ``invoke --check`` prints :func:`render_plan` of it (facts
read over OpenSSH by turnout.facts), and the playbooks act on the same plan (facts read by
Ansible, planned by the ``turnout_plan`` action plugin through :func:`plan_for`). A refusal is
an InputError with one line naming the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from turnout.contracts import FIRST_POOL, POOLS, other_pool
from turnout.errors import InputError

Releases = Mapping[str, Mapping[str, Any] | None]


@dataclass(frozen=True)
class FleetView:
    """What a plan is made from, however it was read: the inventory's pools, the pool the
    load balancer routes to, each app host's release.json (None or ``{"error": ...}`` when
    unreadable) and the manifest (validated)."""

    env: str
    pools: Mapping[str, list[str]]
    live_pool: str | None
    releases: Releases
    manifest: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolState:
    """What the hosts of one pool report: the version if they all agree, else None."""

    pool: str
    hosts: tuple[str, ...]
    versions: dict[str, str | None]
    shas: dict[str, str | None]

    @property
    def empty(self) -> bool:
        return all(v is None for v in self.versions.values())

    @property
    def version(self) -> str | None:
        found = set(self.versions.values())
        return found.pop() if len(found) == 1 else None

    @property
    def sha256(self) -> str | None:
        found = set(self.shas.values())
        return found.pop() if len(found) == 1 else None

    @property
    def consistent(self) -> bool:
        return len(set(self.versions.values())) == 1 and len(set(self.shas.values())) == 1


def pool_state(pool: str, hosts: list[str], releases: Releases) -> PoolState:
    def field_of(host: str, key: str) -> str | None:
        value = (releases.get(host) or {}).get(key)
        return value if isinstance(value, str) and value else None

    return PoolState(pool, tuple(hosts), {h: field_of(h, "version") for h in hosts},
                     {h: field_of(h, "sha256") for h in hosts})


def _require_pools(view: FleetView) -> None:
    """Refuse a plan made from an inventory without both pools, or from a release.json that
    could not be read (a host that answers nothing must never count as an empty pool)."""
    for pool in POOLS:
        if not view.pools.get(pool):
            raise InputError(f"pool {pool} has no hosts in the inventory of {view.env}: add "
                             f"hosts to group '{pool}'")
    for pool in POOLS:
        for host in view.pools[pool]:
            release = view.releases.get(host)
            if isinstance(release, Mapping) and release.get("error"):
                raise InputError(f"cannot read release.json on {host}: {release['error']}; fix "
                                 "the host (or its release.json) and run the command again")


@dataclass(frozen=True)
class DeployPlan:
    env: str
    live_pool: str | None  # None on an empty fleet (nothing serves yet)
    target_pool: str
    target_hosts: tuple[str, ...]
    from_version: str | None
    from_sha256: str | None
    to_version: str
    to_sha256: str
    first_deploy: bool
    noop: bool
    idle_version: str | None
    lb_pool: str = FIRST_POOL  # what the load balancer routes to now
    # the fleet already runs the release but the manifest says otherwise (a run killed after
    # its flip): the run records it so the manifest agrees with the load balancer again
    manifest_behind: bool = False
    canary: tuple[int, ...] = ()
    live_hosts: tuple[str, ...] = ()
    release_notes: str | None = None
    action: str = "deploy"


def plan_deploy(env: str, pools: Mapping[str, list[str]], lb_live_pool: str | None,
                releases: Releases, version: str, sha256: str,
                manifest: Mapping[str, Any] | None = None,
                canary: list[int] | tuple[int, ...] = (),
                release_notes: str | None = None) -> DeployPlan:
    """Where `version` goes: the idle pool; blue on an empty fleet; nowhere if already live."""
    view = FleetView(env, pools, lb_live_pool, releases, manifest or {})
    if lb_live_pool not in POOLS:
        raise InputError(f"the load balancer's map routes to {lb_live_pool!r}, not blue or "
                         "green: run 'invoke provision' or fix /etc/haproxy/pool.map")
    _require_pools(view)
    live = pool_state(lb_live_pool, list(pools[lb_live_pool]), releases)
    first = live.empty
    target = FIRST_POOL if first else other_pool(lb_live_pool)
    idle = pool_state(other_pool(lb_live_pool), list(pools[other_pool(lb_live_pool)]), releases)
    noop = (not first and live.consistent and live.version == version
            and live.sha256 == sha256)
    recorded = (view.manifest.get("pools") or {}).get(lb_live_pool) or {}
    behind = noop and (view.manifest.get("live_pool") != lb_live_pool
                       or recorded.get("version") != version
                       or recorded.get("sha256") != sha256)
    return DeployPlan(
        env=env, live_pool=None if first else lb_live_pool, target_pool=target,
        target_hosts=tuple(pools[target]), from_version=None if first else live.version,
        from_sha256=None if first else live.sha256,
        to_version=version, to_sha256=sha256, first_deploy=first, noop=noop,
        idle_version=idle.version, lb_pool=lb_live_pool, manifest_behind=behind,
        canary=tuple(canary), live_hosts=tuple(pools[lb_live_pool]),
        release_notes=release_notes or None,
    )


@dataclass(frozen=True)
class RollbackPlan:
    env: str
    live_pool: str
    target_pool: str
    target_hosts: tuple[str, ...]
    from_version: str | None
    to_version: str
    to_sha256: str | None
    from_sha256: str | None = None
    action: str = "rollback"


def plan_rollback(env: str, pools: Mapping[str, list[str]], lb_live_pool: str | None,
                  releases: Releases) -> RollbackPlan:
    """Rollback = flip to the other (warm) pool; refuse when it has nothing consistent."""
    if lb_live_pool not in POOLS:
        raise InputError(f"nothing to roll back to in {env}: the load balancer routes to "
                         f"{lb_live_pool!r}; deploy first with 'invoke deploy'")
    _require_pools(FleetView(env, pools, lb_live_pool, releases))
    live = pool_state(lb_live_pool, list(pools[lb_live_pool]), releases)
    target = other_pool(lb_live_pool)
    previous = pool_state(target, list(pools[target]), releases)
    if live.empty:
        raise InputError(f"nothing to roll back to in {env}: nothing has been deployed yet")
    if previous.empty:
        raise InputError(f"nothing to roll back to in {env}: the {target} pool has no release "
                         "(only one deploy so far)")
    if not previous.consistent or previous.version is None:
        detail = ", ".join(f"{h}={v or 'none'}" for h, v in previous.versions.items())
        raise InputError(f"cannot roll back in {env}: the {target} pool's hosts disagree "
                         f"({detail}); deploy a version instead")
    return RollbackPlan(env=env, live_pool=lb_live_pool, target_pool=target,
                        target_hosts=tuple(pools[target]), from_version=live.version,
                        to_version=previous.version, to_sha256=previous.sha256,
                        from_sha256=live.sha256)


def render_plan(plan: DeployPlan | RollbackPlan | PromotePlan) -> str:
    """Human-readable plan, as `--check` prints it (and the playbooks show before acting)."""
    if isinstance(plan, PromotePlan):
        return (f"promote {plan.to_version} (sha256 {plan.to_sha256[:12]}, run {plan.run_id}, "
                f"smoked {plan.age_s:.0f}s ago) on {plan.target_pool}: "
                f"{', '.join(plan.target_hosts)}")
    if isinstance(plan, RollbackPlan):
        return "\n".join([
            f"rollback plan for {plan.env}:",
            f"  live pool      {plan.live_pool} ({plan.from_version})",
            f"  flip to        {plan.target_pool} ({plan.to_version}, still warm)",
            f"  smoke first    {', '.join(plan.target_hosts)}",
        ])
    if plan.noop:
        return (f"deploy plan for {plan.env}: {plan.to_version} is already live on "
                f"{plan.live_pool}; nothing to do")
    lines = [
        f"deploy plan for {plan.env}:",
        f"  live pool      {plan.live_pool or 'none (empty fleet: first release)'}",
        f"  from version   {plan.from_version or '-'}",
        f"  to version     {plan.to_version} (sha256 {plan.to_sha256[:12]})",
        f"  stage on       {plan.target_pool}: {', '.join(plan.target_hosts)}"
        + (f" (now {plan.idle_version})" if plan.idle_version and not plan.first_deploy
           else ""),
        "  then           smoke every host, "
        + (f"shift {', '.join(f'{s}%' for s in plan.canary)} of traffic, " if plan.canary
           else "")
        + f"flip HAProxy to {plan.target_pool}, verify through the LB, record",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ promote

STAGING_ACTIONS = ("deploy", "promote", "rollback")


@dataclass(frozen=True)
class PromotePlan:
    env: str
    live_pool: str | None
    target_pool: str
    target_hosts: tuple[str, ...]
    from_version: str | None
    from_sha256: str | None
    to_version: str
    to_sha256: str
    run_id: str
    age_s: float
    release_notes: str | None = None
    action: str = "promote"


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_promote(data: Mapping[str, Any], live_pool: str | None, host_releases: Releases,
                  now: datetime, max_age_s: float) -> dict[str, Any]:
    """The staged release a promote may flip to, or InputError saying why not (one line).

    `data` is the manifest, `live_pool` what the LB routes to now, `host_releases` each host's
    release.json (None if unreadable). The staged release is the last deploy that ended
    `awaiting_approval`, provided nothing was deployed, promoted or rolled back since, every
    staged host still runs exactly that artifact (sha256) and its smoke results are fresh.
    """
    env = data.get("env") or "?"
    runs = [e for e in data.get("history") or [] if e.get("action") in STAGING_ACTIONS
            and e.get("result") != "noop"]
    awaiting = runs[-1] if runs and runs[-1].get("result") == "awaiting_approval" else None
    if awaiting is None:
        raise InputError(f"nothing awaits approval in {env}: stage a release first with "
                         f"'invoke deploy --env {env} --version V --approval'")
    target = awaiting.get("to") or {}
    pool, version, sha256 = target.get("pool"), target.get("version"), target.get("sha256")
    run_id = awaiting.get("id")
    pool_hosts = ((data.get("pools") or {}).get(pool) or {}).get("hosts") or {}
    hosts = sorted(h for h, s in pool_hosts.items() if (s or {}).get("run_id") == run_id)
    if pool not in POOLS or not hosts:
        raise InputError(f"run {run_id} staged no hosts in {env}: deploy again")
    if live_pool == pool:
        raise InputError(f"the staged pool {pool} of run {run_id} is already live in {env}: "
                         "nothing to promote")
    for host in hosts:
        release = host_releases.get(host) or {}
        if release.get("sha256") != sha256 or release.get("version") != version:
            raise InputError(
                f"the staged release changed on {host}: it runs {release.get('version') or '?'} "
                f"sha256 {(release.get('sha256') or '?')[:12]}, run {run_id} staged {version} "
                f"sha256 {(sha256 or '?')[:12]}; deploy again to re-stage")
    age = (now - _parse_time(awaiting["finished_at"])).total_seconds()
    if age > max_age_s:
        raise InputError(f"the smoke results of run {run_id} are {age:.0f}s old (max "
                         f"{max_age_s:g}s, turnout_promote_max_age_s); deploy again to "
                         "re-stage and re-smoke")
    return {"run_id": run_id, "pool": pool, "version": version, "sha256": sha256,
            "hosts": hosts, "from_pool": (awaiting.get("from") or {}).get("pool") or live_pool,
            "from_version": (awaiting.get("from") or {}).get("version"),
            "from_sha256": (awaiting.get("from") or {}).get("sha256"),
            "release_notes": awaiting.get("release_notes"), "age_s": round(age, 1)}


def plan_promote(view: FleetView, now: datetime, max_age_s: float,
                 version: str | None = None) -> PromotePlan:
    """The promote of the staged release; ``version`` (AWX passes turnout_version) must be it."""
    staged = check_promote(view.manifest, view.live_pool, view.releases, now, max_age_s)
    if version not in (None, "") and str(version) != staged["version"]:
        raise InputError(f"turnout_version={str(version)[:64]} but the release awaiting approval "
                         f"is {staged['version']}; deploy that version with approval first")
    return PromotePlan(
        env=view.env, live_pool=staged["from_pool"], target_pool=staged["pool"],
        target_hosts=tuple(staged["hosts"]), from_version=staged["from_version"],
        from_sha256=staged["from_sha256"], to_version=staged["version"],
        to_sha256=staged["sha256"], run_id=staged["run_id"], age_s=staged["age_s"],
        release_notes=staged["release_notes"])


# ------------------------------------------------------------------------- smoke a pool

SMOKE_POOLS = (*POOLS, "live", "idle")


def resolve_pool(wanted: str, live_pool: str | None) -> str:
    """The pool ``invoke smoke --pool`` means: blue, green, or the live/idle one per the LB."""
    if wanted not in SMOKE_POOLS:
        raise InputError(f"invalid turnout_pool {str(wanted)[:20]}: use blue, green, live or idle")
    if wanted in POOLS:
        return wanted
    if live_pool not in POOLS:
        raise InputError(f"the load balancer routes to {live_pool!r}, so there is no {wanted} "
                         "pool: run 'invoke provision' or name the pool (blue or green)")
    return live_pool if wanted == "live" else other_pool(live_pool)


# ------------------------------------------------------------------------------- canary

def parse_canary(text: str) -> list[int]:
    """`--canary 10,50` -> [10, 50]: percentages of traffic, 1-99, strictly rising."""
    fix = "use --canary with rising percentages between 1 and 99, e.g. --canary 10,50"
    try:
        steps = [int(part) for part in str(text).split(",")]
    except ValueError:
        raise InputError(f"invalid --canary {str(text)[:40]!r}: {fix}") from None
    if not steps or any(not 1 <= step <= 99 for step in steps) or steps != sorted(set(steps)):
        raise InputError(f"invalid --canary {str(text)[:40]!r}: {fix}")
    return steps


# ------------------------------------------------------------------- one entry, both sides

Planner = Callable[[FleetView, Mapping[str, Any], datetime], Any]

PLANNERS: dict[str, Planner] = {
    "deploy": lambda view, inputs, now: plan_deploy(
        view.env, view.pools, view.live_pool, view.releases, inputs["version"],
        inputs["sha256"], view.manifest, inputs.get("canary") or (), inputs.get("release_notes")),
    "rollback": lambda view, inputs, now: plan_rollback(
        view.env, view.pools, view.live_pool, view.releases),
    "promote": lambda view, inputs, now: plan_promote(
        view, now, float(inputs.get("max_age_s", 3600)), inputs.get("version")),
}


def plan(action: str, view: FleetView, inputs: Mapping[str, Any] | None = None,
         now: datetime | None = None) -> DeployPlan | RollbackPlan | PromotePlan:
    """The plan of ``action`` (deploy, rollback, promote) on ``view`` (InputError: refused)."""
    if action not in PLANNERS:
        raise InputError(f"unknown action {action!r}; use one of {', '.join(PLANNERS)}")
    return PLANNERS[action](view, inputs or {}, now or datetime.now(UTC))


def as_facts(planned: DeployPlan | RollbackPlan | PromotePlan) -> dict[str, Any]:
    """The plan as the playbooks carry it (``turnout_plan``): plain data, the same keys for
    every action (``live_pool`` is the pool traffic comes from, ``to_*`` what goes live)."""
    facts = asdict(planned)
    facts["target_hosts"] = list(planned.target_hosts)
    facts["live_hosts"] = list(getattr(planned, "live_hosts", ()))
    facts["live_pool"] = getattr(planned, "lb_pool", None) or planned.live_pool
    facts["live_version"] = planned.from_version
    facts["live_sha256"] = planned.from_sha256
    facts.setdefault("noop", False)
    facts.setdefault("manifest_behind", False)
    facts["canary"] = list(getattr(planned, "canary", ()))
    facts["text"] = render_plan(planned)
    return facts


def plan_for(action: str, view: FleetView, inputs: Mapping[str, Any] | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """:func:`plan` as facts, with a refusal carried instead of raised: ``{"refused": msg}``
    (the playbook records nothing and fails the run in preflight); "" when not refused."""
    try:
        return {**as_facts(plan(action, view, inputs, now)), "refused": ""}
    except InputError as refusal:
        return {"action": action, "refused": str(refusal), "noop": False,
                "target_hosts": [], "canary": []}
