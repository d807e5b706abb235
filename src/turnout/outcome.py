"""What a run came to: which target hosts failed and why (:func:`judge`), and the event the
manifest records (:func:`event`). Pure; the playbooks call both through the turnout filters.

Per-host results come from the target hosts' facts: ``turnout_host_staged`` (deploy only),
``turnout_host_message`` (why a host failed) and ``smoke_test_result``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SKIPPED_SMOKE = {"result": "skipped", "latency_ms": None, "checks": []}
MESSAGE_LIMIT = 300
NO_FLIP = "no flip, the live pool is untouched"

HostResults = Mapping[str, Mapping[str, Any] | None]


def _truncate(text: Any, limit: int = MESSAGE_LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _smoke_passed(result: Mapping[str, Any] | None) -> bool:
    return ((result or {}).get("smoke") or {}).get("result") == "passed"


def judge(targets: list[str], results: HostResults, staging: bool) -> dict[str, Any]:
    """Sort the target hosts by outcome; ``phase`` and ``message`` say why the run must stop.

    ``staging``: the run staged the hosts (a deploy), so a host that did not report
    ``staged: true`` failed in phase stage. Then every staged host must have passed its smoke
    test. ``phase`` is None when every host passed.
    """
    host = {name: dict(results.get(name) or {}) for name in targets}
    staged = [h for h in targets if not staging or host[h].get("staged") is True]
    not_staged = [h for h in targets if h not in staged]
    failed = [h for h in staged if not _smoke_passed(host[h])]
    notes = []
    for name in targets:
        if host[name].get("message"):
            notes.append(f"{name}: {_truncate(host[name]['message'])}")
        elif staging and host[name].get("staged") is None:
            notes.append(f"{name}: unreachable or not run")
        elif name in failed and not staging:
            notes.append(f"{name}: not run")
    detail = " | ".join(notes)
    phase, message = None, ""
    if not_staged:
        phase = "stage"
        message = f"staging failed on {', '.join(not_staged)}: {NO_FLIP}; {detail}"
    elif failed:
        phase = "smoke"
        message = f"smoke test failed on {', '.join(failed)}: {NO_FLIP}; {detail}"
    return {"phase": phase, "message": message.strip().rstrip(";"), "staged": staged,
            "not_staged": not_staged, "failed": failed,
            "passed": [h for h in staged if h not in failed]}


def _result(run: Mapping[str, Any], switch: Mapping[str, Any]) -> str:
    if not run.get("failed"):
        return "success"
    return "flipped_back" if switch.get("result") == "flipped_back" else "failed"


def _endpoint(pool: Any, version: Any, sha256: Any) -> dict[str, Any]:
    return {"pool": pool or None, "version": version or None, "sha256": sha256 or None}


def _smoke_of(targets: list[str], results: HostResults, default: bool) -> dict[str, Any]:
    smoke = {}
    for name in targets:
        value = (results.get(name) or {}).get("smoke")
        if value is not None:
            smoke[name] = value
        elif default:
            smoke[name] = dict(SKIPPED_SMOKE)
    return smoke


def deploy_event(run: Mapping[str, Any], planned: Mapping[str, Any], results: HostResults,
                 switch: Mapping[str, Any], awaiting: bool,
                 manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest event of a deploy (without id/env/by/started_at/finished_at)."""
    failed = bool(run.get("failed"))
    noop = bool(planned.get("noop"))
    converge = noop and bool(planned.get("manifest_behind")) and not failed
    targets = list(planned.get("target_hosts") or []) if not noop else []
    live, target = planned.get("live_pool"), planned.get("target_pool")
    version, sha256 = planned.get("to_version"), planned.get("to_sha256")
    if noop and not failed and not converge:
        result = "noop"
    elif awaiting and not failed:
        result = "awaiting_approval"
    else:
        result = _result(run, switch)
    if failed:
        message = run.get("message") or "deploy failed"
    elif result == "awaiting_approval":
        message = (f"{version} is staged on {target} and awaits approval: invoke promote "
                   f"--env {run.get('env')}")
    elif result == "noop":
        message = f"{version} is already live on {live}"
    elif converge:
        message = (f"{version} was already live on {live} but the manifest said otherwise "
                   "(an interrupted run): recorded it")
    else:
        message = switch.get("message") or "deployed"
    if converge:
        recorded_live = manifest.get("live_pool")
        recorded = (manifest.get("pools") or {}).get(recorded_live or "none") or {}
        source = _endpoint(recorded_live, recorded.get("version"), recorded.get("sha256"))
    else:
        source = _endpoint(live, planned.get("live_version"), planned.get("live_sha256"))
    smoke = _smoke_of(targets, results, default=True)
    recorded_hosts = list(planned.get("live_hosts") or []) if converge else targets
    hosts = {
        name: {"version": version, "sha256": sha256,
               "smoke": smoke.get(name) or dict(SKIPPED_SMOKE)}
        for name in recorded_hosts
        if converge or (results.get(name) or {}).get("staged") is True
    }
    return {
        "action": "deploy", "result": result,
        "phase": run.get("phase") if failed else None,
        "message": message,
        "from": source,
        "to": _endpoint(live if noop else target, version, sha256),
        "smoke": smoke, "hosts": hosts,
        "lb_errors": switch.get("lb_errors"),
        "release_notes": planned.get("release_notes") or None,
    }


def rollback_event(run: Mapping[str, Any], planned: Mapping[str, Any], results: HostResults,
                   switch: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest event of a rollback."""
    failed = bool(run.get("failed"))
    return {
        "action": "rollback", "result": _result(run, switch),
        "phase": run.get("phase") if failed else None,
        "message": run.get("message") if failed else switch.get("message") or "rolled back",
        "from": _endpoint(planned.get("live_pool"), planned.get("live_version"),
                          planned.get("live_sha256")),
        "to": _endpoint(planned.get("target_pool"), planned.get("to_version"),
                        planned.get("to_sha256")),
        "smoke": _smoke_of(list(planned.get("target_hosts") or []), results, default=False),
        "lb_errors": switch.get("lb_errors"),
    }


def promote_event(run: Mapping[str, Any], planned: Mapping[str, Any], results: HostResults,
                  switch: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest event of a promote."""
    failed = bool(run.get("failed"))
    message = (run.get("message") if failed else
               f"promoted run {planned.get('run_id')}: {switch.get('message') or 'promoted'}")
    return {
        "action": "promote", "result": _result(run, switch),
        "phase": run.get("phase") if failed else None,
        "message": message,
        "from": _endpoint(planned.get("live_pool"), planned.get("live_version"),
                          planned.get("live_sha256")),
        "to": _endpoint(planned.get("target_pool"), planned.get("to_version"),
                        planned.get("to_sha256")),
        "smoke": _smoke_of(list(planned.get("target_hosts") or []), results, default=False),
        "lb_errors": switch.get("lb_errors"),
        "release_notes": planned.get("release_notes") or None,
    }


def event(run: Mapping[str, Any], planned: Mapping[str, Any] | None, results: HostResults,
          switch: Mapping[str, Any] | None = None, awaiting: bool = False,
          manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The event of the run's action (``run["action"]``)."""
    planned, switch = planned or {}, switch or {}
    action = run.get("action")
    if action == "deploy":
        return deploy_event(run, planned, results, switch, awaiting, manifest or {})
    if action == "rollback":
        return rollback_event(run, planned, results, switch)
    if action == "promote":
        return promote_event(run, planned, results, switch)
    raise ValueError(f"no event for action {action!r}")


def summary(evt: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """The one-line summary the playbook prints at the end of the run."""
    source, target = evt.get("from") or {}, evt.get("to") or {}
    return (f"{evt.get('action')} {run.get('id')}: {evt.get('result')} "
            f"({source.get('pool') or 'none'} {source.get('version') or '-'} -> "
            f"{target.get('pool') or 'none'} {target.get('version') or '-'}); "
            f"{evt.get('message')}; manifest {run.get('manifest_path')}")


def overview(run: Mapping[str, Any], planned: Mapping[str, Any],
             results: HostResults) -> list[str]:
    """The release overview of a deploy that stops awaiting approval, for the approver.

    The same lines whether the playbook prints them (before the stop) or invoke does (after).
    """
    targets = list(planned.get("target_hosts") or [])
    smoke = _smoke_of(targets, results, default=True)
    return overview_lines(run.get("env"), run.get("id"), planned.get("live_pool"),
                          planned.get("live_version"), planned.get("to_version"),
                          planned.get("to_sha256"), planned.get("target_pool"), smoke,
                          planned.get("release_notes"))


def overview_lines(env: Any, run_id: Any, live_pool: Any, live_version: Any, version: Any,
                   sha256: Any, pool: Any, smoke: Mapping[str, Any],
                   release_notes: str | None) -> list[str]:
    notes = (release_notes or "none").strip().replace("\n", "\n" + " " * 11)
    return [
        f"release awaiting approval in {env} (run {run_id})",
        f"  current  {live_version or 'nothing'} on {live_pool or '-'}",
        f"  new      {version} sha256 {sha256}",
        f"  hosts    {pool}: {', '.join(sorted(smoke)) or '-'}",
        "  smoke    " + (", ".join(f"{h}={(r or {}).get('result')}"
                                   for h, r in sorted(smoke.items())) or "-"),
        f"  notes    {notes}",
        f"  approve  invoke promote --env {env}  (or AWX 'turnout promote')",
    ]


def smoke_report(pool: str, hosts: list[str], smoke: Mapping[str, Any],
                 releases: Mapping[str, Any]) -> dict[str, Any]:
    """``invoke smoke``: one line per host of ``pool`` and the hosts that did not pass."""
    lines, failed = [], []
    for name in hosts:
        result = smoke.get(name) or {"result": "unreachable", "latency_ms": None, "checks": []}
        bad = "; ".join(str(c.get("detail")) for c in result.get("checks") or []
                        if not c.get("ok"))
        version = (releases.get(name) or {}).get("version") or "-"
        lines.append(f"{name} ({pool} {version}): {result.get('result')}, "
                     f"{result.get('latency_ms')} ms" + (f", {bad}" if bad else ""))
        if result.get("result") != "passed":
            failed.append(name)
    return {"lines": lines or [f"pool {pool} has no hosts"], "failed": failed,
            "ok": bool(hosts) and not failed}
