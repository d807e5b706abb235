"""Action plugin turnout_release: upload the artifact unless the host already has it, then run
the turnout_release module.

For ``op: stage`` it first asks the host (``op: probe``) whether ``artifacts/<file>`` already
holds the artifact's sha256; only when it does not is the controller's copy transferred (to the
remote temp dir, then moved into place by the module, which checks the sha256 again). Every
other op goes straight to the module.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: turnout_release
short_description: Stage and activate one release on an app host (uploads only when needed)
description:
  - See the turnout_release module; C(src) is the artifact on the controller (stage only).
options:
  src: {description: The artifact on the controller (op stage)., type: path}
"""


class ActionModule(ActionBase):
    """Upload unless already there, then the module."""

    # A temp dir only when the artifact goes up (made below): with pipelining every other op
    # is one ssh call, not four (home, mkdir, module, cleanup).
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        src = args.pop("src", None)
        if args.get("op") != "stage" or not src:
            result.update(self._execute_module(module_name="turnout_release", module_args=args,
                                               task_vars=task_vars))
            return result
        probe = self._execute_module(
            module_name="turnout_release", task_vars=task_vars,
            module_args={"op": "probe", "root": args["root"], "artifact": args["artifact"],
                         "sha256": args["sha256"]})
        if probe.get("failed") or probe.get("unreachable"):
            result.update(probe)
            return result
        steps = []
        if not probe.get("present") and not self._task.check_mode:
            try:
                local = self._find_needle("files", src) if not os.path.isabs(src) else src
            except AnsibleError as error:
                result.update(failed=True, msg=f"turnout_release: {error}")
                return result
            tmp_dir = self._make_tmp_path()
            remote = self._connection._shell.join_path(tmp_dir, "artifact")
            self._transfer_file(local, remote)
            self._fixup_perms2((tmp_dir, remote))
            args["upload"] = remote
            steps.append("upload")
        staged = self._execute_module(module_name="turnout_release", module_args=args,
                                      task_vars=task_vars)
        staged["steps"] = [s for s in staged.get("steps", []) if s != "upload"]
        staged["steps"] = [*steps, *staged["steps"]] if steps else \
            ["artifact already on the host", *staged["steps"]]
        result.update(staged)
        if self._connection._shell.tmpdir:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
