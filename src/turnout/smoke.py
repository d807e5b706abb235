"""The smoke test's judgement, host by host: health, the exact version, the team's checks, the
latency budget. Pure, stdlib only.

The ``turnout_smoke`` module (plugins/modules) makes the requests from the load balancer to
every host of a pool at once and ships this file as module_utils/turnout_smoke; the playbooks
keep the result per host as ``smoke_test_result`` {result, latency_ms, checks}.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


def reported_version(check: Mapping[str, Any], status: int, body: str,
                     headers: Mapping[str, str]) -> str | None:
    """The version an answer reports under the app definition's version check
    (turnout.appdef.VersionCheck as data): a JSON key, a response header, a regex on the body,
    or (kind command) the last line a command printed."""
    if status != 200:
        return None
    kind = check.get("kind", "json")
    if kind == "json":
        try:
            data: Any = json.loads(body)
        except ValueError:
            return None
        for part in str(check.get("key") or "version").split("."):
            data = data.get(part) if isinstance(data, Mapping) else None
        return data if isinstance(data, str) else None
    if kind == "header":
        lowered = {str(k).lower(): v for k, v in headers.items()}
        return lowered.get(str(check.get("header")).lower())
    if kind == "regex":
        match = re.search(str(check.get("pattern")), body)
        if not match:
            return None
        return match.group(1) if match.groups() else match.group(0)
    lines = body.strip().splitlines()
    return lines[-1].strip() if lines else None


def extra_check(check: Mapping[str, Any], status: int, body: str) -> dict[str, Any]:
    """One of the team's checks {name, path, status (200), contains}: {name, ok, detail}."""
    want = int(check.get("status", 200))
    text = str(check.get("contains") or "")
    body_ok = not text or text in body
    detail = f"status {status} (want {want})" + ("" if body_ok
                                                 else f", body lacks {json.dumps(text)}")
    return {"name": check.get("name"), "ok": status == want and body_ok, "detail": detail}


def result(health: dict[str, Any], version: dict[str, Any], extras: list[dict[str, Any]],
           latencies_s: list[float], samples_ok: int, samples: int, budget_ms: int
           ) -> dict[str, Any]:
    """A host's smoke_test_result from its checks; the latency check is the worst sample."""
    worst = round(max(latencies_s, default=0.0) * 1000)
    latency = {"name": "latency", "ok": samples_ok == samples and worst <= budget_ms,
               "detail": f"worst {worst} ms of {samples} samples ({samples_ok} answered 200; "
                         f"budget {budget_ms} ms)"}
    checks = [health, version, *extras, latency]
    return {"result": "passed" if all(c["ok"] for c in checks) else "failed",
            "latency_ms": worst, "checks": checks}


def version_check(expected: str, reported: str | None) -> dict[str, Any]:
    return {"name": "version", "ok": reported == expected,
            "detail": f"expected {expected}, got {reported or 'nothing'}"}
