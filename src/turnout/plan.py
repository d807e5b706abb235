"""Preflight and dry-run plans: which pool is live, where a release goes, what changes. Pure.

The same rules are applied by the playbooks on the hosts; the plan is what `--check` prints and
what the real run is told to expect (`turnout_expected_live_pool`), so a fleet that changed
between planning and acting is refused rather than deployed on a wrong assumption.
"""

from __future__ import annotations

from dataclasses import dataclass
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
