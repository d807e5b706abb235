"""What a deploy, rollback or promote will do: the live and target pool, the hosts, the
versions, or why it is refused. Pure.

Written once and used by both sides: ``invoke --check`` prints :func:`render_plan` of it (facts
read over OpenSSH by turnout.facts), and the playbooks act on the same plan (facts read by
Ansible, planned by the ``turnout_plan`` action plugin through :func:`plan_for`). A refusal is
an InputError with one line naming the problem and the fix.

The pools come from the load balancers (turnout.traffic), what each pool holds and whether it
ever went live from the fleet's release state on them (turnout.fleetstate); each host's
release.json must agree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from turnout import fleetstate, traffic
from turnout.contracts import FIRST_POOL, POOLS, format_timestamp, other_pool
from turnout.errors import InputError

Releases = Mapping[str, Mapping[str, Any] | None]


@dataclass(frozen=True)
class FleetView:
    """What a plan is made from, however it was read: the inventory's pools, every load
    balancer (turnout.traffic.LbView), each app host's release.json (None or ``{"error": ...}``
    when unreadable) and the manifest (validated; only release notes are read from it)."""

    env: str
    pools: Mapping[str, list[str]]
    lbs: Mapping[str, traffic.LbView]
    releases: Releases
    manifest: Mapping[str, Any] = field(default_factory=dict)
    # hosts that get a pool's release but no traffic (groups blue_workers, green_workers)
    workers: Mapping[str, list[str]] = field(default_factory=dict)

    @classmethod
    def single(cls, env: str, pools: Mapping[str, list[str]], live_pool: str | None,
               releases: Releases, manifest: Mapping[str, Any] | None = None,
               state: Mapping[str, Any] | None = None,
               up: Mapping[str, tuple[str, ...]] | None = None) -> FleetView:
        """A view with one load balancer ``lb1`` (tests, and facts without server states)."""
        members = {pool: tuple(pools.get(pool) or ()) for pool in POOLS}
        return cls(env, pools, {"lb1": traffic.LbView("lb1", live_pool, live_pool,
                                                      up=up or {}, members=members,
                                                      state=state)},
                   releases, manifest or {})


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

    def runs(self, sha256: str | None) -> bool:
        """True when every host of the pool runs exactly the artifact ``sha256``."""
        return bool(self.hosts) and sha256 is not None and \
            all(sha == sha256 for sha in self.shas.values())


def pool_state(pool: str, hosts: list[str], releases: Releases) -> PoolState:
    def field_of(host: str, key: str) -> str | None:
        value = (releases.get(host) or {}).get(key)
        return value if isinstance(value, str) and value else None

    return PoolState(pool, tuple(hosts), {h: field_of(h, "version") for h in hosts},
                     {h: field_of(h, "sha256") for h in hosts})


def _check_inventory(view: FleetView) -> None:
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


def _agree(view: FleetView) -> traffic.Traffic:
    _check_inventory(view)
    return traffic.agree(view.env, view.lbs)


def _unrecorded(state: Mapping[str, Any], manifest: Mapping[str, Any],
                action: str) -> dict[str, Any] | None:
    """The last flip of the release state when it was ``action`` and this manifest has no
    record of its run: a run killed after its flip, before its record. Run again, it records
    what happened instead of moving traffic a second time."""
    history = state.get("history") or []
    if not history or history[-1].get("action") != action:
        return None
    recorded = {entry.get("id") for entry in manifest.get("history") or []}
    return dict(history[-1]) if history[-1].get("run_id") not in recorded else None


def _describe(release: Mapping[str, Any] | None, pool: str) -> str:
    """What a pool holds, for a refusal: '3.0 (staged by run R, awaiting approval)'."""
    if not release or not release.get("version"):
        return f"the {pool} pool holds no release"
    status = release.get("status") or "unknown"
    words = {"live": "live", "previous": "the previous live release",
             "rolled_back": "rolled back from", "staging": "being staged",
             "staged": "staged, never live", "awaiting_approval": "awaiting approval, never live",
             "failed": "failed its checks, never live", "flipped_back": "flipped back, never live",
             "canary_aborted": "its canary aborted, never live",
             "unknown": "of unknown history"}.get(status, status)
    return (f"the {pool} pool holds {release.get('version')} ({words}, run "
            f"{release.get('run_id') or '?'})")


# ------------------------------------------------------------------------------- deploy

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
    lb_pool: str = FIRST_POOL  # what the load balancers route to now
    # the fleet already runs the release but the manifest says otherwise (a run killed after
    # its flip): the run records it so the manifest agrees with the load balancers again
    manifest_behind: bool = False
    canary: tuple[int, ...] = ()
    live_hosts: tuple[str, ...] = ()
    release_notes: str | None = None
    resume: bool = False  # finishing a flip a killed run of this release left half done
    stage: bool = True
    artifact: str | None = None
    action: str = "deploy"


def plan_deploy(view: FleetView, version: str, sha256: str,
                canary: list[int] | tuple[int, ...] = (),
                release_notes: str | None = None, artifact: str | None = None) -> DeployPlan:
    """Where `version` goes: the idle pool; the routed pool of a new fleet; nowhere if live."""
    seen = _agree(view)
    state, pending = seen.state, seen.pending
    if pending:
        if pending.get("action") in ("deploy", "promote") and pending.get("sha256") == sha256:
            target = pending["to"]
            source = pending.get("from")
            live = pool_state(source, list(view.pools[source]), view.releases) if source else None
            return DeployPlan(
                env=view.env, live_pool=source, target_pool=target,
                target_hosts=tuple(view.pools[target]),
                from_version=live.version if live else None,
                from_sha256=live.sha256 if live else None, to_version=version,
                to_sha256=sha256, first_deploy=source is None, noop=False,
                idle_version=version, lb_pool=source or target, canary=tuple(canary),
                live_hosts=tuple(view.pools[source]) if source else (),
                release_notes=release_notes, resume=True, artifact=artifact)
        raise InputError(
            f"a killed {pending.get('action')} of {pending.get('version')} (run "
            f"{pending.get('run_id')}) left the flip to {pending.get('to')} unfinished: finish "
            f"it first (run it again) or undo it with 'invoke rollback --env {view.env}'")
    routed = seen.lb_pool
    live = pool_state(routed, list(view.pools[routed]), view.releases)
    idle_pool = other_pool(routed)
    idle = pool_state(idle_pool, list(view.pools[idle_pool]), view.releases)
    history = state.get("history") or []
    first = (seen.live is None and not history and not traffic.serving(view.lbs, routed)
             and live.empty)
    target = routed if first else idle_pool
    recorded = fleetstate.pool_release(state, routed) or {}
    if state.get("live"):
        noop = recorded.get("sha256") == sha256 and live.runs(sha256)
    else:  # a fleet that has no release state yet: the live pool's hosts are all there is
        noop = not first and live.consistent and live.version == version and \
            live.sha256 == sha256
    manifest_pools = view.manifest.get("pools") or {}
    manifest_live = manifest_pools.get(routed) or {}
    behind = noop and (view.manifest.get("live_pool") != routed
                       or manifest_live.get("version") != version
                       or manifest_live.get("sha256") != sha256)
    return DeployPlan(
        env=view.env, live_pool=None if first else routed, target_pool=target,
        target_hosts=tuple(view.pools[target]), from_version=None if first else live.version,
        from_sha256=None if first else live.sha256, to_version=version, to_sha256=sha256,
        first_deploy=first, noop=noop, idle_version=idle.version, lb_pool=routed,
        manifest_behind=behind, canary=tuple(canary), live_hosts=tuple(view.pools[routed]),
        release_notes=release_notes, artifact=artifact)


# ----------------------------------------------------------------------------- rollback

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
    stage: bool = False  # the target release is no longer on the idle pool: restage it
    resume: bool = False
    reason: str = ""
    lb_pool: str | None = None
    artifact: str | None = None  # set by the caller when the release must be restaged
    explicit: bool = False  # rollback --to: the release it leaves is not marked rolled back
    noop: bool = False
    converge: bool = False  # a killed rollback already flipped: only record it
    action: str = "rollback"


def plan_rollback(view: FleetView, to_version: str | None = None,
                  artifact: str | None = None) -> RollbackPlan:
    """Back to the release that was live before the current one, if it was verified live and
    is still warm on the idle pool; ``to_version``: any release that went live, restaged on
    the idle pool when it is no longer there. Refusals name what the idle pool holds."""
    seen = _agree(view)
    state, pending = seen.state, seen.pending
    env = view.env
    if not state.get("live") and not pending:
        raise InputError(f"nothing to roll back to in {env}: no release has gone live through "
                         "turnout yet (the load balancers hold no release state); deploy one")
    if pending:  # a killed flip: put every LB back where the flip started, or finish a rollback
        if pending.get("action") == "rollback":
            target = pending["to"]
            reason = f"finishing the rollback of run {pending.get('run_id')}"
        else:
            target = pending.get("from")
            reason = (f"undoing the unfinished flip of {pending.get('action')} run "
                      f"{pending.get('run_id')}")
            if target is None:
                raise InputError(f"nothing to roll back to in {env}: the unfinished flip of "
                                 f"run {pending.get('run_id')} was the first release")
        release = fleetstate.pool_release(state, target) or {}
        source = other_pool(target)
        current = pool_state(source, list(view.pools[source]), view.releases)
        hosts = pool_state(target, list(view.pools[target]), view.releases)
        if not hosts.runs(release.get("sha256")):
            raise InputError(f"cannot roll back in {env}: the {target} pool no longer runs "
                             f"{release.get('version')} on every host; deploy a version instead")
        return RollbackPlan(env=env, live_pool=source, target_pool=target,
                            target_hosts=tuple(view.pools[target]),
                            from_version=current.version, from_sha256=current.sha256,
                            to_version=release.get("version"),
                            to_sha256=release.get("sha256"), resume=True, reason=reason,
                            lb_pool=seen.lb_pool)
    live = seen.live
    idle_pool = other_pool(live)
    current = fleetstate.pool_release(state, live) or {}
    idle_release = fleetstate.pool_release(state, idle_pool) or {}
    done = _unrecorded(state, view.manifest, "rollback") if to_version is None else None
    if done and done.get("pool") == live:
        left = fleetstate.pool_release(state, idle_pool) or {}
        return RollbackPlan(env=env, live_pool=idle_pool, target_pool=live,
                            target_hosts=tuple(view.pools[live]),
                            from_version=left.get("version"), from_sha256=left.get("sha256"),
                            to_version=done.get("version"), to_sha256=done.get("sha256"),
                            noop=True, converge=True, lb_pool=seen.lb_pool,
                            reason=f"run {done.get('run_id')} rolled back to "
                                   f"{done.get('version')} but was killed before its record")
    if to_version is None:
        wanted = fleetstate.rollback_target(state)
        if wanted is None:
            raise InputError(f"nothing to roll back to in {env}: no verified release went live "
                             f"before {current.get('version')}; "
                             f"{_describe(idle_release, idle_pool)}")
    else:
        matches = [e for e in fleetstate.once_live(state) if e.get("version") == to_version]
        if not matches:
            went = ", ".join(sorted({e.get("version") for e in fleetstate.once_live(state)}))
            raise InputError(f"--to {to_version}: that release never went live in {env} "
                             f"(went live: {went or 'none'}); deploy it instead")
        wanted = matches[0]
        if wanted.get("sha256") == current.get("sha256"):
            raise InputError(f"--to {to_version}: it is already live in {env}")
    hosts = pool_state(idle_pool, list(view.pools[idle_pool]), view.releases)
    warm = (idle_release.get("sha256") == wanted.get("sha256")
            and idle_release.get("status") in (fleetstate.PREVIOUS, fleetstate.ROLLED_BACK)
            and hosts.runs(wanted.get("sha256")))
    if not warm and to_version is None:
        raise InputError(
            f"nothing to roll back to on the idle pool in {env}: "
            f"{_describe(idle_release, idle_pool)}"
            f"; the release live before {current.get('version')} is {wanted.get('version')}: "
            f"run 'invoke rollback --env {env} --to {wanted.get('version')}' to restage it "
            "with a smoke test")
    live_hosts = pool_state(live, list(view.pools[live]), view.releases)
    return RollbackPlan(env=env, live_pool=live, target_pool=idle_pool,
                        target_hosts=tuple(view.pools[idle_pool]),
                        from_version=current.get("version") or live_hosts.version,
                        from_sha256=current.get("sha256") or live_hosts.sha256,
                        to_version=wanted.get("version"), to_sha256=wanted.get("sha256"),
                        stage=not warm, lb_pool=seen.lb_pool,
                        artifact=None if warm else artifact, explicit=to_version is not None,
                        reason="" if warm else f"{wanted.get('version')} is no longer on the "
                                               f"{idle_pool} pool: restaging it")


# ------------------------------------------------------------------------------ promote

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
    resume: bool = False
    lb_pool: str | None = None
    noop: bool = False
    converge: bool = False  # a killed promote already flipped: only record it
    action: str = "promote"


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def plan_promote(view: FleetView, now: datetime, max_age_s: float,
                 version: str | None = None) -> PromotePlan:
    """Flip to exactly the release a deploy staged and left awaiting approval: the pool the
    release state marks ``awaiting_approval``, every host of it still on that artifact, its
    smoke results fresh. ``version`` (AWX passes turnout_version) must be it."""
    seen = _agree(view)
    state, env = seen.state, view.env
    pending = seen.pending
    resume = bool(pending and pending.get("action") == "promote")
    candidates = [(pool, fleetstate.pool_release(state, pool) or {}) for pool in POOLS]
    awaiting = [(pool, rel) for pool, rel in candidates
                if rel.get("status") == "awaiting_approval"]
    if resume:
        awaiting = [(pending["to"], fleetstate.pool_release(state, pending["to"]) or {})]
    done = _unrecorded(state, view.manifest, "promote")
    if not awaiting and done and done.get("pool") == seen.live:
        source = other_pool(seen.live)
        left = fleetstate.pool_release(state, source) or {}
        return PromotePlan(env=env, live_pool=source, target_pool=seen.live,
                           target_hosts=tuple(view.pools[seen.live]),
                           from_version=left.get("version"), from_sha256=left.get("sha256"),
                           to_version=done.get("version"), to_sha256=done.get("sha256"),
                           run_id=done.get("run_id") or "?", age_s=0.0, noop=True,
                           converge=True, lb_pool=seen.lb_pool)
    if not awaiting:
        raise InputError(f"nothing awaits approval in {env}: stage a release first with "
                         f"'invoke deploy --env {env} --version V --approval'")
    pool, release = awaiting[0]
    if pool == seen.live and not resume:
        raise InputError(f"the staged pool {pool} is already live in {env}: nothing to promote")
    if version not in (None, "") and str(version) != release.get("version"):
        raise InputError(f"turnout_version={str(version)[:64]} but the release awaiting approval "
                         f"is {release.get('version')}; deploy that version with approval first")
    for host in view.pools[pool]:
        found = view.releases.get(host) or {}
        if found.get("sha256") != release.get("sha256") or \
                found.get("version") != release.get("version"):
            raise InputError(
                f"the staged release changed on {host}: it runs {found.get('version') or '?'} "
                f"sha256 {(found.get('sha256') or '?')[:12]}, run {release.get('run_id')} staged "
                f"{release.get('version')} sha256 {(release.get('sha256') or '?')[:12]}; deploy "
                "again to re-stage")
    age = (now - _parse_time(release.get("since") or "1970-01-01T00:00:00Z")).total_seconds()
    if age > max_age_s and not resume:
        raise InputError(f"the smoke results of run {release.get('run_id')} are {age:.0f}s old "
                         f"(max {max_age_s:g}s, turnout_promote_max_age_s); deploy again to "
                         "re-stage and re-smoke")
    source = seen.live or other_pool(pool)
    current = fleetstate.pool_release(state, source) or {}
    notes = None
    for entry in reversed(view.manifest.get("history") or []):
        if entry.get("id") == release.get("run_id"):
            notes = entry.get("release_notes")
            break
    return PromotePlan(env=env, live_pool=source, target_pool=pool,
                       target_hosts=tuple(view.pools[pool]),
                       from_version=current.get("version"), from_sha256=current.get("sha256"),
                       to_version=release.get("version"), to_sha256=release.get("sha256"),
                       run_id=release.get("run_id") or "?", age_s=round(age, 1),
                       release_notes=notes, resume=resume, lb_pool=seen.lb_pool)


# ---------------------------------------------------------------------------- rendering

def render_plan(plan: DeployPlan | RollbackPlan | PromotePlan) -> str:
    """Human-readable plan, as `--check` prints it (and the playbooks show before acting)."""
    if isinstance(plan, PromotePlan) and plan.converge:
        return (f"promote plan for {plan.env}: {plan.to_version} is already live on "
                f"{plan.target_pool} (run {plan.run_id} promoted it but was killed before its "
                "record); record it")
    if isinstance(plan, PromotePlan):
        return (f"promote {plan.to_version} (sha256 {plan.to_sha256[:12]}, run {plan.run_id}, "
                f"smoked {plan.age_s:.0f}s ago) on {plan.target_pool}: "
                f"{', '.join(plan.target_hosts)}")
    if isinstance(plan, RollbackPlan) and plan.converge:
        return (f"rollback plan for {plan.env}: {plan.to_version} is already live on "
                f"{plan.target_pool} ({plan.reason}); record it")
    if isinstance(plan, RollbackPlan):
        lines = [
            f"rollback plan for {plan.env}:",
            f"  live pool      {plan.live_pool} ({plan.from_version})",
            f"  flip to        {plan.target_pool} ({plan.to_version}"
            + (", restaged first)" if plan.stage else ", still warm)"),
            f"  smoke first    {', '.join(plan.target_hosts)}",
        ]
        if plan.reason:
            lines.append(f"  because        {plan.reason}")
        return "\n".join(lines)
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
    if plan.resume:
        lines.insert(1, "  resuming       a killed run left this flip unfinished")
    return "\n".join(lines)


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
        view, inputs["version"], inputs["sha256"], inputs.get("canary") or (),
        inputs.get("release_notes"), inputs.get("artifact")),
    "rollback": lambda view, inputs, now: plan_rollback(view, inputs.get("to_version") or None,
                                                        inputs.get("artifact") or None),
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
    if planned.action == "deploy":  # the pool the LBs route to, even on a new fleet
        facts["live_pool"] = planned.lb_pool or planned.live_pool
    facts["live_version"] = planned.from_version
    facts["live_sha256"] = planned.from_sha256
    facts.setdefault("noop", False)
    facts.setdefault("manifest_behind", False)
    facts.setdefault("stage", False)
    facts.setdefault("resume", False)
    facts["canary"] = list(getattr(planned, "canary", ()))
    facts["text"] = render_plan(planned)
    return facts


def plan_for(action: str, view: FleetView, inputs: Mapping[str, Any] | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """:func:`plan` as facts, with a refusal carried instead of raised: ``{"refused": msg}``
    (the playbook records nothing and fails the run in preflight); "" when not refused."""
    try:
        planned = plan(action, view, inputs, now)
    except InputError as refusal:
        return {"action": action, "refused": str(refusal), "noop": False, "stage": False,
                "target_hosts": [], "target_workers": [], "canary": []}
    facts = as_facts(planned)
    facts["target_workers"] = list(view.workers.get(facts["target_pool"]) or [])
    seen = traffic.agree(view.env, view.lbs)
    facts["fleet_state"] = seen.state if seen.state.get("serial") else \
        seed_state(view, seen, format_timestamp(now or datetime.now(UTC)))
    facts["lbs_behind"] = seen.behind
    facts["refused"] = ""
    return facts


def seed_state(view: FleetView, seen: traffic.Traffic, at: str) -> dict[str, Any]:
    """The release state of a fleet that has none yet: what the LBs route to and what the
    hosts run (a seeded live release counts as verified; the idle pool's history is unknown)."""
    routed = seen.lb_pool
    pools = {pool: {"version": state.version, "sha256": state.sha256, "run_id": None}
             for pool in POOLS
             for state in [pool_state(pool, list(view.pools[pool]), view.releases)]
             if state.consistent and state.version}
    serving = traffic.serving(view.lbs, routed) and routed in pools
    return fleetstate.apply(fleetstate.empty(view.env), {
        "op": "seed", "live": routed if serving else None, "pools": pools, "at": at,
        "run_id": None, "verified": True})
