"""Action plugin turnout_app: check the app definition before any host changes.

A thin adapter over turnout.appdef.validate (the keys, their types and values, secrets that
would leak) plus the one check that needs the controller's files: every template the
definition names exists (relative paths are beside the inventory). Returns ``app``, the checked
definition without the secrets' values; a bad definition fails with one line naming the key.
"""

from __future__ import annotations


from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: turnout_app
short_description: Check turnout_app (docs/app.md) and return it complete
options:
  app: {description: The app definition (turnout_app)., type: raw}
  inventory_dir: {description: Where relative template sources are., type: str, required: true}
"""


class ActionModule(ActionBase):
    """Validate the app definition; fail with one line when it is bad."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("app", "inventory_dir"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        from turnout import appdef
        from turnout.errors import InputError

        try:
            app = appdef.validate(self._task.args.get("app"))
        except InputError as error:
            result.update(failed=True, msg=str(error))
            return result
        try:
            appdef.check_templates(app, str(self._task.args["inventory_dir"]))
        except InputError as error:
            result.update(failed=True, msg=str(error))
            return result
        result.update(changed=False, app=app.as_facts())
        return result
