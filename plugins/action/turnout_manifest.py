"""Action plugin turnout_manifest: record one deploy/rollback event in the manifest.

Runs on the controller (the manifest lives beside the inventory). A thin adapter: argument
checking, then turnout.manifest.record_event, which validates, locks and writes atomically.
"""

from __future__ import annotations

import json

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from turnout.errors import TurnoutError


class ActionModule(ActionBase):
    """Append an event to the manifest's history and update its pool state."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "event", "validate_only"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation, args = self.validate_argument_spec(
            argument_spec={
                "path": {"type": "path", "required": True},
                "event": {"type": "dict"},
                "validate_only": {"type": "bool", "default": False},
            },
            required_one_of=[("event", "validate_only")],
        )
        del validation
        path = str(args["path"])
        if args["validate_only"]:
            return self._validate_only(result, path)
        # Plain dicts/strings: Ansible hands over tagged str/dict subclasses that YAML cannot dump.
        event = json.loads(json.dumps(args["event"]))
        # Late import: the controller venv has turnout installed; a clear error if it has not.
        try:
            from turnout import manifest
        except ImportError as error:  # pragma: no cover - environment problem
            result.update(failed=True, msg=f"turnout_manifest: cannot import turnout ({error}); "
                          "install turnout in the controller's Python environment")
            return result
        if self._task.check_mode:
            try:
                before = manifest.load(path)
                after = manifest.apply_event(before, event)
            except TurnoutError as error:
                result.update(failed=True, msg=to_text(error))
                return result
            result.update(changed=after != before, path=path, entry=after["history"][-1],
                          live_pool=after["live_pool"])
            return result
        try:
            before = manifest.load(path)
            after = manifest.record_event(path, event)
        except TurnoutError as error:
            result.update(failed=True, msg=to_text(error))
            return result
        entry = next(e for e in reversed(after["history"]) if e["id"] == event.get("id"))
        result.update(
            changed=after != before,
            path=path,
            entry=entry,
            live_pool=after["live_pool"],
            history_length=len(after["history"]),
        )
        return result

    @staticmethod
    def _validate_only(result, path):
        """Read and check the manifest (a preflight step): its live pool and pool versions."""
        from turnout import manifest

        try:
            data = manifest.load(path)
        except TurnoutError as error:
            result.update(failed=True, msg=to_text(error))
            return result
        result.update(changed=False, path=path, manifest={
            "live_pool": data["live_pool"],
            "pools": {pool: {"version": state["version"], "sha256": state["sha256"]}
                      for pool, state in data["pools"].items()}})
        return result
