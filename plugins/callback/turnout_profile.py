"""Callback: per-task, per-host start/end times as JSON lines, for the benchmarks.

ansible-core 2.21 ships no profile_tasks (it lives in ansible.posix, which turnout does not
install); this records the raw timings and turnout.bench.top_tasks aggregates them.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: turnout_profile
type: aggregate
short_description: write per-task timings to TURNOUT_PROFILE_FILE (JSON lines)
description:
  - Enable with ANSIBLE_CALLBACKS_ENABLED=turnout_profile and set TURNOUT_PROFILE_FILE.
  - Each finished task result appends {task, host, start, end} (epoch seconds), with the
    task's action, its status (ok, changed, failed, skipped, unreachable) and the host it was
    delegated to, if any; the end of the playbook appends {rusage} with the CPU seconds of
    the ansible-playbook process itself (user, system), which forks and ssh do not count in.
requirements:
  - TURNOUT_PROFILE_FILE in the environment (nothing is written without it)
"""

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "turnout_profile"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("TURNOUT_PROFILE_FILE")
        self._started: dict[tuple[str, str], float] = {}
        self._task_start = 0.0

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start = time.time()

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start = time.time()

    def v2_runner_on_start(self, host, task):
        self._started[(host.get_name(), task._uuid)] = time.time()

    def _append(self, record) -> None:
        with open(self._path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _write(self, result, status: str) -> None:
        if not self._path:
            return
        host, task = result._host.get_name(), result._task
        start = self._started.pop((host, task._uuid), self._task_start)
        delegated = (result._result.get("_ansible_delegated_vars") or {}).get(
            "ansible_delegated_host")
        if status == "ok" and result._result.get("changed"):
            status = "changed"
        self._append({"task": task.get_name(), "host": host, "start": start, "end": time.time(),
                      "action": task.action, "status": status, "delegated_to": delegated})

    def v2_runner_on_ok(self, result):
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._write(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if self._path:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self._append({"rusage": {"user_s": round(usage.ru_utime, 3),
                                     "system_s": round(usage.ru_stime, 3)}})
