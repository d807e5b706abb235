"""Action plugin turnout_notify: post one deploy event to the webhook; never fails the run.

A thin adapter over turnout.notify.notify (Slack-compatible payload, bounded timeout, no
redirects). Off unless a URL is configured: the ``url`` argument (inventory variable
turnout_webhook_url) or TURNOUT_WEBHOOK_URL in the controller's environment.
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
module: turnout_notify
short_description: Send a turnout deploy event to a Slack-compatible webhook
description:
  - Posts start, success, failure or rollback with env, version, who, duration and the report.
  - Never fails the task: an undelivered notification is reported as C(sent=false).
options:
  url: {description: Webhook URL; empty means TURNOUT_WEBHOOK_URL or off., type: str}
  event: {description: start, success, failure, rollback or approval., type: str, required: true}
  env: {description: Environment name., type: str, required: true}
  version: {description: Version being deployed., type: str}
  by: {description: Who runs it., type: str}
  action: {description: deploy, rollback or promote., type: str, default: deploy}
  duration_s: {description: Seconds the run took so far., type: float}
  result: {description: The run's result., type: str}
  message: {description: One line of detail., type: str}
  report_url: {description: Where the report is., type: str}
"""

EXAMPLES = r"""
- name: turnout | notify
  turnout_notify:
    url: "{{ turnout_webhook_url | default('') }}"
    event: success
    env: prod
    version: 1.4.2
    by: alice@ws1
"""

RETURN = r"""
sent: {description: Whether the webhook accepted the event., type: bool, returned: always}
"""

_ARGS = ("url", "event", "env", "version", "by", "action", "duration_s", "result", "message",
         "report_url")


class ActionModule(ActionBase):
    """Send one notification; the result is never failed and never changed."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(_ARGS)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = {k: self._task.args.get(k) for k in _ARGS}
        try:
            from turnout import notify
        except ImportError as error:  # pragma: no cover - environment problem
            result.update(changed=False, sent=False, msg=f"turnout not importable: {error}")
            return result
        url = notify.webhook_url(dict(os.environ), {notify.INVENTORY_VAR: args["url"] or ""})
        if not url or self._task.check_mode:
            result.update(changed=False, sent=False, msg="notifications are off")
            return result
        details = {k: args[k] for k in ("duration_s", "result", "message", "report_url")
                   if args[k] not in (None, "")}
        if details.get("duration_s") is not None:
            try:
                details["duration_s"] = float(details["duration_s"])
            except (TypeError, ValueError):
                details.pop("duration_s")
        try:
            sent = notify.notify(url, str(args["event"]), str(args["env"]),
                                 None if args["version"] in (None, "") else str(args["version"]),
                                 None if args["by"] in (None, "") else str(args["by"]),
                                 action=str(args["action"] or "deploy"), **details)
        except Exception as error:
            sent = False
            result["msg"] = f"notification not sent: {error}"
        result.update(changed=False, sent=bool(sent))
        return result
