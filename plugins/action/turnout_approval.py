"""Action plugin turnout_approval: the approval gate's inputs, with the inventory's own word.

Extra vars beat every other variable in Ansible, so ``hostvars[lb].turnout_approval_required``
is whatever ``-e`` (or an AWX "prompt on launch") says. This plugin reads that variable of the
load balancer host as the inventory gives it (host and group vars, group_vars/ and host_vars/
files, without the extra vars) and hands it with the run's request to turnout.approval.gate,
which decides: required by the inventory OR required for this run OR requested. A value that
is not a yes/no fails with one line (the playbook calls this in preflight).
"""

from __future__ import annotations

import json

from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: turnout_approval
short_description: Decide the approval gate of a deploy (returned as turnout_approval_gate)
description:
  - Returns C(turnout_approval_gate) {waits, required, requested, why}
    (turnout.approval.gate); C(turnout_awaits_approval) applies it to the run and plan.
  - The load balancer's C(turnout_approval_required) is read from the inventory beneath the
    extra vars, so a launch-time extra var can close the gate but never open one the
    inventory closed.
options:
  host:
    description: The inventory host whose setting counts (the first load balancer).
    type: str
    required: true
  requested: {description: The run's turnout_approval., type: raw}
"""

EXAMPLES = r"""
- name: turnout | decide the approval gate
  turnout_approval:
    host: "{{ groups.lb[0] }}"
    requested: "{{ turnout_approval | default(omit) }}"
  register: turnout_approval_result
"""

RETURN = r"""
turnout_approval_gate:
  description: The gate (turnout.approval.gate); the playbook keeps it as a fact.
  type: dict
  returned: success
"""

NAME = "turnout_approval_required"


class ActionModule(ActionBase):
    """The gate from the run's request, the inventory's setting and the run's variables."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("host", "requested"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        from turnout import approval
        from turnout.errors import InputError

        task_vars = task_vars or {}
        host = str(self._task.args.get("host") or "")
        try:
            inventory_value = self._inventory_value(task_vars, host)
        except LookupError as error:
            result.update(failed=True, msg=str(error))
            return result
        as_given = self._plain((task_vars.get("hostvars") or {}).get(host, {}).get(NAME))
        try:
            decided = approval.gate(self._plain(self._task.args.get("requested")),
                                    inventory_value, as_given)
        except InputError as error:
            result.update(failed=True, msg=str(error))
            return result
        result.update(changed=False, turnout_approval_gate=decided)
        return result

    def _inventory_value(self, task_vars, host):
        """``turnout_approval_required`` of ``host`` as the inventory says, extra vars aside."""
        hostvars = task_vars.get("hostvars")
        manager = getattr(hostvars, "_variable_manager", None)
        inventory = getattr(hostvars, "_inventory", None)
        if manager is None or inventory is None or not hasattr(manager, "_extra_vars"):
            raise LookupError("cannot read the inventory beneath the extra vars with this "
                              "ansible-core; the approval gate cannot be decided")
        found = inventory.get_host(host)
        if found is None:
            raise LookupError(f"host {host!r} is not in the inventory")
        saved = manager._extra_vars
        try:  # this worker process runs only this task: nothing else sees the change
            manager._extra_vars = {}
            value = manager.get_vars(host=found, include_hostvars=False).get(NAME)
        finally:
            manager._extra_vars = saved
        return self._plain(value)

    def _plain(self, value):
        """A variable's value, templated, as plain JSON data."""
        if value is None:
            return None
        return json.loads(json.dumps(self._templar.template(value), default=str))
