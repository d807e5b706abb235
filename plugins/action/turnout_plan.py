"""Action plugin turnout_plan: plan this run from what the earlier phases read.

A thin adapter over turnout.plan.plan_for, the same function ``invoke --check`` prints: it takes
what every load balancer said in the discover phase (``pool_switch_lb``), what each app host
runs (its ``app_release_read_result``), the inventory's pools and the manifest, and returns
``turnout_plan``. A refusal is carried (``turnout_plan.refused``), not raised, so the playbook
fails the run in preflight and records nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: turnout_plan
short_description: Plan a deploy, rollback or promote (returned as turnout_plan)
options:
  action: {description: deploy, rollback or promote., type: str, required: true}
  manifest: {description: Path of the manifest., type: str, required: true}
  dist_dir:
    description: Where built artifacts are (a rollback that restages finds its own there).
    type: str
  inputs:
    description: What a deploy ships (turnout_deploy) or, for a promote, {max_age_s}.
    type: dict
  app:
    description: The checked app definition (its artifact file name).
    type: dict
    default: {}
  quick:
    description: A rollback's quick check - plan from every LB's C(quick) read
      (C(pool_switch_quick_result)) instead of each host's release.json, and judge it
      (turnout.quickcheck); the verdict is returned as C(turnout_quick).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: turnout | plan the deploy
  turnout_plan:
    action: deploy
    manifest: "{{ turnout_run.manifest_path }}"
    inputs: "{{ turnout_deploy }}"
"""

RETURN = r"""
turnout_plan:
  description: The plan (turnout.plan.as_facts, plus C(refused)); kept as the fact turnout_plan.
  type: dict
  returned: always
turnout_quick:
  description: "The quick check's verdict {ok, message, results} (quick)."
  type: dict
  returned: when quick
"""


def _plain(value):
    return json.loads(json.dumps(value, default=str))


def _with_artifact(planned, dist_dir, app):
    """A rollback that must restage its release needs its artifact: found in dist/ by sha256
    (build once, deploy everywhere), else the plan is refused."""
    from turnout import artifact
    from turnout.errors import InputError

    try:
        found = artifact.find_by_sha256(planned["to_sha256"], dist_dir,
                                        str(app.get("artifact") or "{name}-{version}.tar.gz"),
                                        str(app.get("name") or "app"))
    except InputError as error:
        return {**planned, "refused": f"cannot restage {planned.get('to_version')}: {error}"}
    return {**planned, "artifact": str(found.path)}


class ActionModule(ActionBase):
    """Plan the run from the facts the discover phase set."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("action", "manifest", "inputs", "dist_dir", "app", "quick"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        from turnout import manifest, plan, quickcheck, release, traffic
        from turnout.contracts import POOLS
        from turnout.errors import InputError

        task_vars = task_vars or {}
        groups, hostvars = task_vars.get("groups") or {}, task_vars["hostvars"]
        args = self._task.args
        pools = {pool: list(groups.get(pool) or []) for pool in POOLS}
        lbs = {}
        for name in groups.get("lb") or []:
            read = _plain(hostvars[name].get("pool_switch_lb"))
            lbs[name] = traffic.lb_view(name, read or {"error": "not read in the discover "
                                                                "phase (unreachable?)"})
        workers = {pool: list(groups.get(f"{pool}_workers") or []) for pool in POOLS}
        quick = bool(args.get("quick"))
        reads = {name: _plain(hostvars[name].get("pool_switch_quick_result")) or {}
                 for name in groups.get("lb") or []}
        if quick:  # the LB side stands in for release.json (turnout.quickcheck.releases)
            releases = quickcheck.releases({n: r for n, r in reads.items() if r.get("running")},
                                           pools)
        else:
            releases = {host: release.current(_plain(hostvars[host].get(
                "app_release_read_result")))
                        for pool in POOLS for host in [*pools[pool], *workers[pool]]}
        try:
            data = manifest.load(args["manifest"])
        except InputError as error:
            planned = {"action": args["action"], "refused": str(error), "noop": False,
                       "target_hosts": [], "canary": []}
        else:
            env = task_vars.get("turnout_run", {}).get("env") or data["env"]
            view = plan.FleetView(env, pools, lbs, releases, data, workers)
            planned = plan.plan_for(str(args["action"]), view, _plain(args.get("inputs") or {}),
                                    datetime.now(UTC))
            if planned.get("stage") and not planned.get("artifact") and args.get("dist_dir") \
                    and not quick:
                planned = _with_artifact(planned, Path(args["dist_dir"]), args.get("app") or {})
        result.update(changed=False, turnout_plan=planned)
        if quick:
            planned["check"] = "quick"  # the manifest records how the rollback was proven
            run_id = str((task_vars.get("turnout_run") or {}).get("id") or "")
            result["turnout_quick"] = quickcheck.verdict(planned, reads,
                                                         list(groups.get("lb") or []), run_id)
        return result
