#!/usr/bin/python
"""Module turnout_lock: the fleet-wide deploy lock file on the load balancer host.

A thin adapter: argument checking, then turnout.lock.apply (shipped as module_utils), which
decides with turnout.lock.decide and reads/writes the file under an exclusive flock.
Normally called through the turnout_lock action plugin, which adds the controller identity.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: turnout_lock
short_description: Acquire, heartbeat, release or break the turnout deploy lock
description:
  - Keeps C(/var/lib/turnout/deploy.lock) on the load balancer host, a JSON record of the run
    holding the environment (owner, run_id, action, version, env, controller, controller_id,
    pid, pid_start, ttl_s, started_at, heartbeat_at).
  - C(acquire) creates the file atomically (a fully written temp file hard-linked into place)
    or refuses with a one-line message starting C(deploy lock held) that names the holder.
    A holder whose heartbeat is older than the C(ttl_s) it wrote is recovered with a warning; a
    holder the caller proved dead is stolen by compare-and-swap on C(steal_run_id).
  - C(heartbeat) refreshes C(heartbeat_at) and fails when the run no longer holds the lock;
    C(release) removes the lock only when this run holds it; C(break) removes the lock, only
    while it is held by C(expect_run_id) when that is given.
  - The policy is C(turnout.lock.decide) (pure, unit-tested).
options:
  op:
    description: What to do.
    type: str
    choices: [read, acquire, heartbeat, release, break]
    required: true
  path:
    description: The lock file.
    type: path
    default: /var/lib/turnout/deploy.lock
  run_id:
    description: The run asking (required except for read and break).
    type: str
  owner:
    description: Who runs it (user@host or CI job).
    type: str
  action:
    description: deploy, rollback or promote (acquire).
    type: str
  version:
    description: The version being deployed, if any.
    type: str
  env:
    description: The environment.
    type: str
  controller:
    description: Host name of the controller running the playbook.
    type: str
  controller_id:
    description:
      - The controller's boot id and PID namespace (turnout.fleetlock.controller_id); a holder
        is judged dead by its pid only on a controller with the same host name and this id.
    type: str
  pid:
    description: PID of the ansible-playbook process on the controller.
    type: int
  pid_start:
    description: Start time of that process (/proc/PID/stat field 22), against PID reuse.
    type: str
  ttl_s:
    description:
      - Seconds without heartbeat after which this run's lock may be recovered by another
        controller; written into the lock record, and the holder's own value is what counts.
    type: int
    default: 900
  steal_run_id:
    description: Run id of a holder proven dead; acquire replaces it only if it still holds.
    type: str
  expect_run_id:
    description: For C(break), the run id of the holder shown to the person; another is kept.
    type: str
attributes:
  check_mode:
    support: none
author:
  - turnout
"""

EXAMPLES = r"""
- name: turnout | acquire the deploy lock
  turnout_lock:
    op: acquire
    run_id: "{{ turnout_run.id }}"
    owner: "{{ turnout_run.by }}"
    action: deploy
    version: 1.4.2
    env: prod
  delegate_to: "{{ groups['lb'][0] }}"
"""

RETURN = r"""
holder:
  description: The lock record after the operation (the refusing holder when refused).
  type: dict
  returned: always
previous:
  description: The lock record before the operation.
  type: dict
  returned: always
lock_warnings:
  description: Recovered stale locks and other notes (also emitted as warnings).
  type: list
  returned: always
lock_ok:
  description: False when the request was refused (the lock is held by another run).
  type: bool
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.turnout_lock import DEFAULT_TTL_S, LOCK_PATH, OPS, LockError, apply  # noqa: E402


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "op": {"type": "str", "required": True, "choices": list(OPS)},
            "path": {"type": "path", "default": LOCK_PATH},
            "run_id": {"type": "str"},
            "owner": {"type": "str"},
            "action": {"type": "str"},
            "version": {"type": "str"},
            "env": {"type": "str"},
            "controller": {"type": "str"},
            "controller_id": {"type": "str"},
            "pid": {"type": "int"},
            "pid_start": {"type": "str"},
            "ttl_s": {"type": "int", "default": DEFAULT_TTL_S},
            "steal_run_id": {"type": "str"},
            "expect_run_id": {"type": "str"},
        },
        supports_check_mode=False,
    )
    request = {k: v for k, v in module.params.items() if k != "path"}
    try:
        decision, previous = apply(request, module.params["path"])
    except (LockError, OSError) as error:
        module.fail_json(msg=f"turnout_lock: {error}")
    for warning in decision.warnings:
        module.warn(warning)
    result = {"changed": decision.changed, "holder": decision.record, "previous": previous,
              "msg": decision.message, "lock_warnings": decision.warnings,
              "lock_ok": decision.op != "refuse"}
    if decision.op == "refuse":
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
