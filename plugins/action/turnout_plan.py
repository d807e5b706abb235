"""Action plugin turnout_plan: plan this run from what the earlier phases read.

A thin adapter over turnout.plan.plan_for, the same function ``invoke --check`` prints: it takes
the pool the load balancer routes to (``pool_switch_live_pool`` of lb[0]), each app host's
``app_release_current``, the inventory's pools and the manifest, and returns
``turnout_plan``. A refusal is carried (``turnout_plan.refused``), not raised, so the playbook
fails the run in preflight and records nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: turnout_plan
short_description: Plan a deploy, rollback or promote (returned as turnout_plan)
options:
  action: {description: deploy, rollback or promote., type: str, required: true}
  manifest: {description: Path of the manifest., type: str, required: true}
  inputs:
    description: What a deploy ships (turnout_deploy) or, for a promote, {max_age_s}.
    type: dict
    default: {}
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
"""


def _plain(value):
    return json.loads(json.dumps(value, default=str))


class ActionModule(ActionBase):
    """Plan the run from the facts the discover phase set."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("action", "manifest", "inputs"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        from turnout import manifest, plan
        from turnout.contracts import POOLS
        from turnout.errors import InputError

        task_vars = task_vars or {}
        groups, hostvars = task_vars.get("groups") or {}, task_vars["hostvars"]
        args = self._task.args
        pools = {pool: list(groups.get(pool) or []) for pool in POOLS}
        lb = (groups.get("lb") or [None])[0]
        live = hostvars[lb].get("pool_switch_live_pool") if lb else None
        releases = {host: _plain(hostvars[host].get("app_release_current"))
                    for pool in POOLS for host in pools[pool]}
        try:
            data = manifest.load(args["manifest"])
        except InputError as error:
            planned = {"action": args["action"], "refused": str(error), "noop": False,
                       "target_hosts": [], "canary": []}
        else:
            env = task_vars.get("turnout_run", {}).get("env") or data["env"]
            view = plan.FleetView(env, pools, live, releases, data)
            planned = plan.plan_for(str(args["action"]), view, _plain(args.get("inputs") or {}),
                                    datetime.now(UTC))
        result.update(changed=False, turnout_plan=planned)
        return result
