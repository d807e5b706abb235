"""Preflight and dry-run plans: which pool is live, where a release goes, what changes. Pure.

The same rules are applied by the playbooks on the hosts; the plan is what `--check` prints and
what the real run is told to expect (`turnout_expected_live_pool`), so a fleet that changed
between planning and acting is refused rather than deployed on a wrong assumption.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from turnout.errors import InputError

POOLS = ("blue", "green")
FIRST_POOL = "blue"


def other_pool(pool: str) -> str:
    return "green" if pool == "blue" else "blue"


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


def pool_state(pool: str, hosts: list[str], releases: dict[str, dict[str, Any] | None]
               ) -> PoolState:
    versions = {h: (releases.get(h) or {}).get("version") for h in hosts}
    shas = {h: (releases.get(h) or {}).get("sha256") for h in hosts}
    return PoolState(pool, tuple(hosts), versions, shas)


@dataclass(frozen=True)
class DeployPlan:
    env: str
    live_pool: str | None
    target_pool: str
    target_hosts: tuple[str, ...]
    from_version: str | None
    to_version: str
    to_sha256: str
    first_deploy: bool
    noop: bool
    idle_version: str | None


def plan_deploy(env: str, pools: dict[str, list[str]], lb_live_pool: str | None,
                releases: dict[str, dict[str, Any] | None], version: str, sha256: str
                ) -> DeployPlan:
    """Where `version` goes: the idle pool; blue on an empty fleet; nowhere if already live."""
    if lb_live_pool not in POOLS:
        raise InputError(f"the load balancer's map routes to {lb_live_pool!r}, not blue or "
                         "green: run 'invoke provision' or fix /etc/haproxy/pool.map")
    live = pool_state(lb_live_pool, pools[lb_live_pool], releases)
    first = live.empty
    target = FIRST_POOL if first else other_pool(lb_live_pool)
    idle = pool_state(other_pool(lb_live_pool), pools[other_pool(lb_live_pool)], releases)
    noop = (not first and live.consistent and live.version == version
            and live.sha256 == sha256)
    return DeployPlan(
        env=env, live_pool=None if first else lb_live_pool, target_pool=target,
        target_hosts=tuple(pools[target]), from_version=None if first else live.version,
        to_version=version, to_sha256=sha256, first_deploy=first, noop=noop,
        idle_version=idle.version,
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


def plan_rollback(env: str, pools: dict[str, list[str]], lb_live_pool: str | None,
                  releases: dict[str, dict[str, Any] | None]) -> RollbackPlan:
    """Rollback = flip to the other (warm) pool; refuse when it has nothing consistent."""
    if lb_live_pool not in POOLS:
        raise InputError(f"nothing to roll back to in {env}: the load balancer routes to "
                         f"{lb_live_pool!r}; deploy first with 'invoke deploy'")
    live = pool_state(lb_live_pool, pools[lb_live_pool], releases)
    target = other_pool(lb_live_pool)
    previous = pool_state(target, pools[target], releases)
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
                        to_version=previous.version, to_sha256=previous.sha256)


def render_plan(plan: DeployPlan | RollbackPlan) -> str:
    """Human-readable plan, as `--check` prints it."""
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
        "  then           smoke every host, flip HAProxy to "
        f"{plan.target_pool}, verify through the LB, record",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ promote

STAGING_ACTIONS = ("deploy", "promote", "rollback")


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_promote(data: dict[str, Any], live_pool: str | None,
                  host_releases: dict[str, dict[str, Any] | None], now: datetime,
                  max_age_s: float) -> dict[str, Any]:
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
