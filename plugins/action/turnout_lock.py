"""Action plugin turnout_lock: add the controller's identity, recover dead local holders.

Runs the turnout_lock module on the (delegated) load balancer host. Before an acquire it
reads the lock and, if the holder ran on THIS controller (the same host name and the same
turnout.fleetlock.controller_id: boot id and PID namespace) and its ansible-playbook process
is gone (turnout.fleetlock.holder_is_dead), asks the module to steal it by compare-and-swap on
the holder's run id. A holder on another controller is only recovered after its TTL.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Fill controller, controller_id, pid and pid_start; a dead local holder -> steal_run_id."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        try:
            from turnout import fleetlock
        except ImportError as error:  # pragma: no cover - environment problem
            result.update(failed=True, msg=f"turnout_lock: cannot import turnout ({error})")
            return result
        args = dict(self._task.args)
        pid = os.getppid()  # the worker's parent: the ansible-playbook process
        identity = fleetlock.controller_identity()
        args.setdefault("controller", identity["controller"])
        if identity["controller_id"]:
            args.setdefault("controller_id", identity["controller_id"])
        args.setdefault("pid", pid)
        args.setdefault("pid_start", fleetlock.process_start(pid))
        if args.get("op") == "acquire" and "steal_run_id" not in args:
            read = self._execute_module(module_name="turnout_lock",
                                        module_args={"op": "read", **({"path": args["path"]}
                                                     if "path" in args else {})},
                                        task_vars=task_vars)
            if read.get("failed") or read.get("unreachable"):
                result.update(read)
                return result
            holder = read.get("holder")
            if fleetlock.holder_is_dead(holder, identity):
                args["steal_run_id"] = holder["run_id"]
        result.update(self._execute_module(module_name="turnout_lock", module_args=args,
                                           task_vars=task_vars))
        return result
