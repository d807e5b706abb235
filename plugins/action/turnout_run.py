"""Action plugin turnout_run: start a run (its id, who, environment, manifest) on the controller.

A thin adapter over turnout.run.start, the rule invoke uses too: it reads the inventory's load
balancer host vars (turnout_inventory_env, turnout_manifest_path) and the play's variables
(turnout_run_id, turnout_deployed_by, awx_user_name, turnout_env, turnout_version) and returns
``turnout_run`` (the playbook keeps it as a fact). A missing ``lb`` group or a
``turnout_env`` of another environment fails
with one line.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime

from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: turnout_run
short_description: Start a turnout run (returned as turnout_run)
description:
  - Returns C(turnout_run) {id, by, env, manifest_path, started_at, action, version, lock_held,
    failed, phase, message}; every later phase reads and updates it.
  - The rule is C(turnout.run.start) (pure, unit-tested), shared with invoke.
options:
  action:
    description: deploy, rollback, promote, provision or smoke.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: turnout | start the run
  turnout_run:
    action: deploy
"""

RETURN = r"""
turnout_run:
  description: The run; the playbook keeps it as the fact turnout_run.
  type: dict
  returned: success
"""

_PLAY_VARS = ("turnout_run_id", "turnout_deployed_by", "awx_user_name", "tower_user_name",
              "turnout_env", "turnout_version", "turnout_manifest_path")
_LB_VARS = ("turnout_inventory_env", "turnout_manifest_path")


class ActionModule(ActionBase):
    """Start the run; fail with one line when the inventory or turnout_env is wrong."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("action",))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        from turnout import run
        from turnout.errors import InputError

        lbs = (task_vars.get("groups") or {}).get("lb") or []
        if not lbs:
            result.update(failed=True, msg="turnout: the inventory has no host in group 'lb'; "
                          "add the load balancer")
            return result
        lb_vars = task_vars["hostvars"][lbs[0]]
        play = {k: self._plain(task_vars.get(k)) for k in _PLAY_VARS if k in task_vars}
        lb = {k: self._plain(lb_vars.get(k)) for k in _LB_VARS if lb_vars.get(k) is not None}
        try:
            user = getpass.getuser()
        except OSError:
            user = "unknown"
        try:
            started = run.start(str(self._task.args.get("action")), play,
                                lb_vars.get("inventory_dir"), lb, dict(os.environ), user,
                                socket.gethostname(), datetime.now(UTC))
        except InputError as error:
            result.update(failed=True, msg=f"turnout: {error}")
            return result
        result.update(changed=False, turnout_run=started)
        return result

    def _plain(self, value):
        """A variable's value, templated, as plain JSON data."""
        return json.loads(json.dumps(self._templar.template(value), default=str))
