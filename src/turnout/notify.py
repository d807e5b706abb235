"""Deploy notifications: Slack-compatible incoming-webhook JSON, sent best effort.

Off by default: a webhook URL comes only from ``TURNOUT_WEBHOOK_URL`` or the inventory
variable ``turnout_webhook_url``. The payload uses ``text`` plus legacy ``attachments`` (with
``fields``), which Slack, Mattermost and Rocket.Chat incoming webhooks all accept.
:func:`send` never raises: a notification that cannot be delivered is one log line, never a
failed deploy. Nothing is sent anywhere unless a URL was configured.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from turnout.errors import InputError

EVENTS = ("start", "success", "failure", "rollback", "approval")
ENV_VAR = "TURNOUT_WEBHOOK_URL"
INVENTORY_VAR = "turnout_webhook_url"
DEFAULT_TIMEOUT_S = 3.0
_SCHEMES = ("http", "https")
_MAX_REPLY = 64 * 1024

log = logging.getLogger("turnout.notify")

# event -> (emoji, attachment colour, headline template)
_STYLE: dict[str, tuple[str, str, str]] = {
    "start": (":arrow_forward:", "#439FE0", "{action} of {version} to {env} started"),
    "success": (":white_check_mark:", "#2EB67D", "{version} is live on {env}"),
    "failure": (":x:", "#E01E5A", "{action} of {version} to {env} failed"),
    "rollback": (":leftwards_arrow_with_hook:", "#ECB22E", "{env} rolled back to {version}"),
    "approval": (":double_vertical_bar:", "#8B5CF6",
                 "{version} is staged on {env} and awaits approval"),
}


def _escape(value: Any) -> str:
    """Text safe inside Slack mrkdwn: ``&``, ``<`` and ``>`` are control characters there."""
    text = "" if value is None else str(value)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _duration(seconds: float | int | None) -> str:
    if seconds is None or isinstance(seconds, bool) or seconds < 0:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s"


def _link(url: str | None) -> str | None:
    """``<url|open report>`` for an http(s) URL Slack can link; plain text otherwise."""
    if not url:
        return None
    if urllib.parse.urlsplit(url).scheme in _SCHEMES and not any(c in url for c in "<>| "):
        return f"<{url}|open report>"
    return _escape(url)


def build_payload(
    event: str,
    env: str,
    version: str | None,
    by: str | None,
    duration_s: float | None = None,
    report_url: str | None = None,
    result: str | None = None,
    message: str | None = None,
    *,
    action: str = "deploy",
) -> dict[str, Any]:
    """The incoming-webhook JSON for one deploy event: start, success, failure or rollback."""
    if event not in EVENTS:
        raise InputError(f"unknown notification event {event!r}; use one of {', '.join(EVENTS)}")
    emoji, colour, headline = _STYLE[event]
    title = headline.format(action=_escape(action), version=_escape(version or "?"),
                            env=_escape(env))
    text = f"{emoji} turnout: {title}" + (f" (by {_escape(by)})" if by else "")
    fields = [
        {"title": "Environment", "value": _escape(env), "short": True},
        {"title": "Version", "value": _escape(version or "-"), "short": True},
        {"title": "By", "value": _escape(by or "-"), "short": True},
        {"title": "Duration", "value": _duration(duration_s), "short": True},
        {"title": "Result", "value": _escape(result or event), "short": True},
    ]
    link = _link(report_url)
    if link:
        fields.append({"title": "Report", "value": link, "short": True})
    attachment: dict[str, Any] = {
        "fallback": text,
        "color": colour,
        "fields": fields,
        "footer": "turnout",
        "mrkdwn_in": ["text", "fields"],
    }
    if message:
        attachment["text"] = _escape(message)
    return {"text": text, "attachments": [attachment]}


def _redacted(url: str) -> str:
    """scheme://host[:port]/... : webhook paths and queries are secrets; never log them."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable url>"
    return f"{parts.scheme}://{host}{port}/..."


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook answers where it was asked; a redirect is an error, not a hop elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def send(url: str, payload: Mapping[str, Any], timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """POST ``payload`` as JSON to ``url``; True on a 2xx answer. Never raises.

    Any failure (a URL that is not http(s), DNS, refused connection, timeout, non-2xx
    answer, redirect) logs one warning line without the URL's secret path and returns False.
    ``timeout`` bounds the connect and each read, in seconds.
    """
    where = _redacted(url) if isinstance(url, str) else "<no url>"
    try:
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in _SCHEMES:
            raise ValueError("webhook URL must start with http:// or https://")
        if not urllib.parse.urlsplit(url).hostname:
            raise ValueError("webhook URL has no host")
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds (got {timeout!r})")
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8",
                     "User-Agent": "turnout-notify"},
        )
        opener = urllib.request.build_opener(_NoRedirect())
        with opener.open(request, timeout=timeout) as response:
            status = response.status
            response.read(_MAX_REPLY)
        if 200 <= status < 300:
            return True
        reason = f"HTTP {status}"
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        reason = " ".join(str(exc.reason).split())
    except Exception as exc:  # a notification must never fail the deploy
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    log.warning("notify: webhook %s not delivered (%s); the deploy is not affected", where,
                reason)
    return False


def webhook_url(
    environ: Mapping[str, str] | None = None,
    inventory_vars: Mapping[str, Any] | None = None,
) -> str | None:
    """The configured webhook URL: ``TURNOUT_WEBHOOK_URL``, else ``turnout_webhook_url``.

    None (notifications off) when neither is set or both are empty.
    """
    for value in ((environ or {}).get(ENV_VAR), (inventory_vars or {}).get(INVENTORY_VAR)):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def notify(url: str | None, event: str, env: str, version: str | None, by: str | None,
           **details: Any) -> bool:
    """Build and send one event if a URL is configured; False when off or undelivered.

    ``details`` are :func:`build_payload`'s optional fields (duration_s, report_url, result,
    message, action). Never raises, like :func:`send`.
    """
    if not url:
        return False
    try:
        payload = build_payload(event, env, version, by, **details)
    except (InputError, TypeError) as exc:
        log.warning("notify: %s; nothing was sent", exc)
        return False
    return send(url, payload)
