"""Batches of HTTP requests made by one ``curl`` run, parsed.

Pure: no I/O. One ``curl`` process given the same URL N times makes N requests (on one
keep-alive connection) and prints ``--write-out`` after each: one module run on the remote
host instead of N. :data:`WRITE_OUT` is the format; :func:`parse_batch` reads the output.
"""

from __future__ import annotations

import json
from typing import Any

MARK = "@@turnout"
# After each transfer: a newline (the body may not end in one), the mark, status and seconds.
WRITE_OUT = "\n" + MARK + " %{http_code} %{time_total}\n"


def curl_argv(url: str, count: int, timeout: float | int) -> list[str]:
    """argv of one curl run that GETs ``url`` ``count`` times and marks each response."""
    if int(count) < 1:
        raise ValueError("count must be at least 1")
    return ["curl", "--silent", "--show-error", "--max-time", str(timeout),
            "--write-out", WRITE_OUT, *([url] * int(count))]


def _version(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("version") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def parse_batch(text: str, expected: int | None = None) -> list[dict[str, Any]]:
    """curl output with :data:`WRITE_OUT` -> [{"status", "seconds", "version", "body"}].

    ``status`` is 0 when curl got no HTTP answer (its ``000``). With ``expected``, requests that
    curl never reported (it gave up early) are added as status 0, so a short batch is a failed one.
    """
    results: list[dict[str, Any]] = []
    body_lines: list[str] = []
    for line in (text or "").split("\n"):
        if line.startswith(MARK + " "):
            parts = line.split()
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            try:
                seconds = float(parts[2]) if len(parts) > 2 else 0.0
            except ValueError:
                seconds = 0.0
            body = "\n".join(body_lines).strip()
            results.append({"status": status, "seconds": seconds,
                            "version": _version(body) if status == 200 else None,
                            "body": body[:200]})
            body_lines = []
        else:
            body_lines.append(line)
    if expected is not None:
        while len(results) < int(expected):
            results.append({"status": 0, "seconds": 0.0, "version": None, "body": ""})
    return results


def judge_checks(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The smoke test's extra checks judged from ``uri`` loop results: each ``item`` is a
    check {name, path, status (default 200), contains (optional text)} and the result has
    the answer's ``status`` and ``content``. -> [{"name", "ok", "detail"}]."""
    judged = []
    for res in results or []:
        check = res.get("item") or {}
        want = int(check.get("status", 200))
        got = int(res.get("status", -1) if res.get("status") is not None else -1)
        text = check.get("contains") or ""
        body_ok = not text or text in str(res.get("content") or "")
        detail = f"status {got} (want {want})" + ("" if body_ok
                                                   else f", body lacks {json.dumps(text)}")
        judged.append({"name": check.get("name"), "ok": got == want and body_ok,
                       "detail": detail})
    return judged


def verify_failures(responses: list[dict[str, Any]], expected: str,
                    check: dict[str, Any] | None = None, backend: str | None = None) -> list[str]:
    """What is wrong with the responses through a load balancer after a flip: each one that
    was not a 200, or did not report ``expected`` under the app's version ``check`` (a
    command-kind check cannot be asked over HTTP: the response must come from ``backend``)."""
    from turnout import smoke

    check = check or {"kind": "json", "key": "version"}
    bad = []
    for response in responses or []:
        status = response.get("status")
        if status != 200:
            bad.append(str(status if status else response.get("error") or "no answer"))
            continue
        if check.get("kind") == "command":
            if backend and response.get("backend") != backend:
                bad.append(f"served by {response.get('backend') or '?'}")
            continue
        found = smoke.reported_version(check, 200, str(response.get("body") or ""),
                                       response.get("headers") or {})
        if found is None and check.get("kind", "json") == "json" and "body" not in response:
            found = response.get("version")
        if found != expected:
            bad.append(str(found or "?"))
    return bad
