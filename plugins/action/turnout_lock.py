"""Action plugin turnout_lock: the controller's side of the deploy lock around the module.

Runs the turnout_lock module on the (delegated) load balancer host, and around it:

- fills in who holds the lock: this controller's host name and identity
  (turnout.fleetlock.controller_identity: boot id and PID namespace), the ansible-playbook pid
  and its start time;
- before an acquire, reads the lock and, if its holder ran on THIS controller (same host name
  and identity) and its ansible-playbook process is gone (turnout.fleetlock.holder_is_dead),
  asks the module to steal it by compare-and-swap on the holder's run id. A holder elsewhere
  is only recovered after the TTL it wrote;
- after an acquire, refreshes the lock once over OpenSSH with the connection Ansible used for
  that host, then starts the run's heartbeat (turnout.heartbeat), which refreshes it every
  ttl/3 seconds until the run ends; if that first refresh fails the lock is released again and
  the acquire fails, so a lock nobody can keep alive is never held;
- at a heartbeat, starts the heartbeat again if it died; before a release, stops it.
"""

from __future__ import annotations

import os
import shlex

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    """Identity, dead local holders, the run's heartbeat; the module does the file."""

    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        try:
            from turnout import fleetlock, heartbeat
        except ImportError as error:  # pragma: no cover - environment problem
            result.update(failed=True, msg=f"turnout_lock: cannot import turnout ({error})")
            return result
        args = dict(self._task.args)
        op = args.get("op")
        identity = fleetlock.controller_identity()
        pid = os.getppid()  # the worker's parent: the ansible-playbook process
        args.setdefault("controller", identity["controller"])
        if identity["controller_id"]:
            args.setdefault("controller_id", identity["controller_id"])
        args.setdefault("pid", pid)
        args.setdefault("pid_start", fleetlock.process_start(pid))
        if op == "acquire" and "steal_run_id" not in args:
            read = self._lock({"op": "read", **({"path": args["path"]} if "path" in args
                                                 else {})}, task_vars)
            if read.get("failed") or read.get("unreachable"):
                result.update(read)
                return result
            holder = read.get("holder")
            if fleetlock.holder_is_dead(holder, identity):
                args["steal_run_id"] = holder["run_id"]
        stopped = None
        if op == "release" and args.get("run_id"):
            stopped = heartbeat.stop(str(args["run_id"]))  # no refresh after the release
        result.update(self._lock(args, task_vars))
        if stopped:
            result["heartbeat"] = {k: stopped.get(k) for k in
                                   ("status", "beats", "failures", "max_gap_s", "last_error")}
        held = (not result.get("failed") and not result.get("unreachable")
                and result.get("lock_ok"))
        if op in ("acquire", "heartbeat") and held:
            self._keep_alive(op, args, task_vars, result, heartbeat)
        return result

    def _lock(self, module_args, task_vars):
        return self._execute_module(module_name="turnout_lock", module_args=module_args,
                                    task_vars=task_vars)

    def _keep_alive(self, op, args, task_vars, result, heartbeat):
        """Start the run's heartbeat after an acquire (or again, after a heartbeat)."""
        try:
            spec = self._heartbeat_spec(args, heartbeat)
            if op == "acquire":
                first = heartbeat.beat(spec)
                if not first.ok:
                    raise heartbeat.HeartbeatError(
                        f"the deploy lock's heartbeat cannot refresh the lock on {spec.where} "
                        f"({first.message})")
                result["heartbeat_pid"] = heartbeat.start(spec)
            elif heartbeat.ensure(spec):
                self._display.warning("turnout_lock: the deploy lock's heartbeat had stopped; "
                                      "started it again")
        except heartbeat.HeartbeatError as error:
            if op != "acquire":
                self._display.warning(f"turnout_lock: {error}")
                return
            released = self._lock({**args, "op": "release"}, task_vars)
            note = ("released it again" if released.get("lock_ok") and
                    not released.get("failed") else "could not release it: run invoke unlock")
            result.update(failed=True, lock_ok=False, changed=True,
                          msg=f"turnout_lock: {error}; {note}. It runs as Ansible connects "
                              "(OpenSSH, BatchMode, host key checked, sudo -n when become): "
                              "fix that connection and run again")

    def _heartbeat_spec(self, args, heartbeat):
        """How the heartbeat reaches the lock: the connection Ansible uses for the LB."""
        connection = self._connection
        transport = str(getattr(connection, "transport", "") or "")
        name = str(self._task.delegate_to or "")
        become = bool(self._play_context.become)
        method = str(self._play_context.become_method or "sudo")
        if become and method.rsplit(".", 1)[-1] != "sudo":
            raise heartbeat.HeartbeatError(f"the deploy lock's heartbeat becomes root with sudo; "
                                           f"{name} uses become_method {method}")
        common = {"run_id": str(args["run_id"]), "owner": str(args["owner"]),
                  "env": str(args["env"]), "controller": str(args["controller"]),
                  "controller_id": args.get("controller_id"), "pid": int(args["pid"]),
                  "pid_start": args.get("pid_start"), "ttl_s": int(args.get("ttl_s", 900)),
                  "become": become, "become_user": self._play_context.become_user}
        if args.get("path"):
            common["lock_path"] = str(args["path"])
        if transport.rsplit(".", 1)[-1] == "local":
            return heartbeat.Spec(local=True, **common)
        if transport.rsplit(".", 1)[-1] != "ssh":
            raise heartbeat.HeartbeatError(f"the deploy lock's heartbeat reaches the load "
                                           f"balancer with OpenSSH; {name} uses connection "
                                           f"{transport or '?'}")

        def option(key):
            try:
                return connection.get_option(key)
            except KeyError:
                return None

        ssh_args = [arg for key in ("ssh_args", "ssh_common_args", "ssh_extra_args")
                    for arg in shlex.split(str(option(key) or ""))]
        port = option("port")
        control_dir = option("control_path_dir")
        return heartbeat.Spec(
            host={"name": name, "address": str(option("host") or name),
                  "user": option("remote_user"), "port": int(port) if port else None,
                  "key_file": option("private_key_file"), "ssh_args": ssh_args},
            control_dir=os.path.expandvars(os.path.expanduser(str(control_dir)))
            if control_dir else None, **common)
