"""Action plugin turnout_inputs: check what a deploy ships, on the controller, before anything
runs: the version's syntax, the artifact, its sha256, the canary steps.

A thin adapter over turnout.artifact.check_deploy_inputs and turnout.plan.parse_canary (the
checks invoke makes too). Returns ``turnout_deploy`` {version, artifact, sha256, canary,
release_notes}; bad input fails with one line naming the problem and the fix.
"""

from __future__ import annotations

from pathlib import Path

from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: turnout_inputs
short_description: Check a deploy's version, artifact and sha256 (returned as turnout_deploy)
options:
  version: {description: The version to deploy (turnout_version)., type: str}
  artifact:
    description: >-
      The artifact, a path or an http(s) URL (fetched into dist_dir once, sha256 required);
      default <dist_dir>/ and the app definition's artifact name (app-<version>.tar.gz).
    type: str
  sha256:
    description: Its expected sha256; default the first word of <artifact>.sha256.
    type: str
  dist_dir: {description: Where built artifacts are., type: str, required: true}
  canary: {description: Canary steps (list or "10,50")., type: raw}
  release_notes: {description: Release notes; default RELEASE_NOTES.md in the artifact., type: str}
  app: {description: The checked app definition (its artifact file name)., type: dict}
"""

EXAMPLES = r"""
- name: turnout | check what the deploy ships
  turnout_inputs:
    version: "{{ turnout_version | default(omit) }}"
    dist_dir: "{{ playbook_dir | dirname }}/dist"
"""

RETURN = r"""
turnout_deploy:
  description: What the deploy ships; the playbook keeps it as the fact turnout_deploy.
  type: dict
  returned: success
"""


class ActionModule(ActionBase):
    """Check the deploy's inputs; fail with one line when one is bad."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("version", "artifact", "sha256", "dist_dir", "canary",
                             "release_notes", "app"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        from turnout import artifact, plan
        from turnout.errors import InputError

        args = self._task.args
        canary = args.get("canary")
        app = args.get("app") or {}
        version = args.get("version")
        file_name = None
        if app and isinstance(version, str):
            file_name = str(app.get("artifact", "{name}-{version}.tar.gz")).format(
                name=app.get("name", "app"), version=version)
        try:
            shipped = artifact.check_deploy_inputs(version, args.get("artifact"),
                                                   args.get("sha256"), Path(args["dist_dir"]),
                                                   file_name)
            if canary in (None, "", []):
                steps = []
            else:
                text = ",".join(map(str, canary)) if isinstance(canary, list) else str(canary)
                steps = plan.parse_canary(text)
        except InputError as error:
            result.update(failed=True, msg=str(error))
            return result
        shipped["canary"] = steps
        shipped["release_notes"] = args.get("release_notes") or shipped["release_notes"]
        result.update(changed=False, turnout_deploy=shipped)
        return result
