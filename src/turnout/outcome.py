"""What a run came to: which target hosts failed and why (:func:`judge`), and the event the
manifest records (:func:`event`). Pure; the playbooks call both through the turnout filters.

Per-host results come from the target hosts' variables: whether the host staged (deploy only:
:func:`staged`, from what app_release registered, or ``turnout_host_staged: false`` when its
stage failed), ``turnout_host_message`` (why a host failed) and ``smoke_test_result``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout import release

SKIPPED_SMOKE = {"result": "skipped", "latency_ms": None, "checks": []}
MESSAGE_LIMIT = 300
NO_FLIP = "no flip, the live pool is untouched"

HostResults = Mapping[str, Mapping[str, Any] | None]


def staged(host_vars: Mapping[str, Any]) -> bool | None:
    """Whether this run staged the release on a host: False when its stage failed (the stage
    phase's rescue sets ``turnout_host_staged: false``), True only on positive evidence from
    what app_release registered this run (``app_release_stage_result`` found the release already
    active, or it staged and ``app_release_activate_result`` activated it), else None (the host
    was unreachable or never ran the stage). Registered results live for one run only, so a
    cached fact of an earlier run can never count as this run's stage."""
    noted = host_vars.get("turnout_host_staged")
    if noted is not None:
        return bool(noted)
    stage = host_vars.get("app_release_stage_result")
    if not release.succeeded(stage):
        return None
    if stage.get("already_active"):
        return True
    return True if release.succeeded(host_vars.get("app_release_activate_result")) else None


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
        smoke = host[name].get("smoke") or {}
        failing = "; ".join(str(c.get("detail")) for c in smoke.get("checks") or []
                            if not c.get("ok"))
        if host[name].get("message"):
            notes.append(f"{name}: {_truncate(host[name]['message'])}")
        elif name in failed and failing:
            notes.append(f"{name}: {_truncate(failing)}")
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
    targets = [*(planned.get("target_hosts") or []), *(planned.get("target_workers") or [])] \
        if not noop else []
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
    if failed:
        message = run.get("message")
    elif planned.get("converge"):
        message = (f"{planned.get('to_version')} was already live on "
                   f"{planned.get('target_pool')}: {planned.get('reason')}; recorded it")
    else:
        message = switch.get("message") or "rolled back"
    return {
        "action": "rollback", "result": _result(run, switch),
        "phase": run.get("phase") if failed else None,
        "message": message,
        "from": _endpoint(planned.get("live_pool"), planned.get("live_version"),
                          planned.get("live_sha256")),
        "to": _endpoint(planned.get("target_pool"), planned.get("to_version"),
                        planned.get("to_sha256")),
        "smoke": _smoke_of([*(planned.get("target_hosts") or []),
                            *(planned.get("target_workers") or [])], results, default=False),
        "lb_errors": switch.get("lb_errors"),
        **({"traffic_moved_at": switch["traffic_moved_at"]}
           if switch.get("traffic_moved_at") and not failed else {}),
        # how the target was proven before the flip: the quick check, or the full path
        **({} if planned.get("converge") else {"check": planned.get("check") or "full"}),
    }


def promote_event(run: Mapping[str, Any], planned: Mapping[str, Any], results: HostResults,
                  switch: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest event of a promote."""
    failed = bool(run.get("failed"))
    if failed:
        message = run.get("message")
    elif planned.get("converge"):
        message = (f"run {planned.get('run_id')} promoted {planned.get('to_version')} but was "
                   "killed before its record: recorded it")
    else:
        message = f"promoted run {planned.get('run_id')}: {switch.get('message') or 'promoted'}"
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


# ------------------------------------------------------------------ the release state

def fleet_event(op: str, run: Mapping[str, Any], planned: Mapping[str, Any], at: str,
                awaiting: bool = False, status: str | None = None) -> dict[str, Any] | None:
    """The fleet release state event of this point of the run (turnout.fleetstate), or None
    when there is nothing to note: ``stage`` (the target pool is about to change), ``judged``
    (it failed its checks), ``awaiting`` (it waits for approval), ``begin``/``commit``/
    ``abort`` (the flip)."""
    if planned.get("refused") or planned.get("noop"):
        return None
    failed = bool(run.get("failed"))
    base = {"run_id": run.get("id"), "at": at}
    target = planned.get("target_pool")
    if op == "stage":
        if failed or not planned.get("stage") or planned.get("resume"):
            return None
        return {**base, "op": "stage", "pool": target, "version": planned.get("to_version"),
                "sha256": planned.get("to_sha256")}
    if op == "judged":
        if not failed or run.get("phase") not in ("stage", "smoke") or not planned.get("stage"):
            return None
        return {**base, "op": "failed", "pool": target, "status": "failed"}
    if op == "awaiting":
        return {**base, "op": "awaiting", "pool": target} if awaiting and not failed else None
    if op == "begin":
        action = planned.get("action")
        if action == "rollback" and planned.get("explicit"):
            action = "rollback_to"  # an explicit --to: what it leaves is not "rolled back"
        return {**base, "op": "begin", "to": target, "action": action}
    if op == "commit":
        return {**base, "op": "commit", "verified_at": at}
    if op == "abort":
        return {**base, "op": "abort", "status": status or "flipped_back"}
    raise ValueError(f"unknown fleet state point {op!r}")


# ---------------------------------------------------------------------------- the flip

def flip_ready(lbs: list[str], outcomes: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """Whether every load balancer is ready to flip (the target pool UP, the flip noted):
    {ok, message}. An LB that reported nothing was unreachable."""
    bad = [f"{lb}: {(outcomes.get(lb) or {}).get('message') or 'unreachable'}"
           for lb in lbs if not (outcomes.get(lb) or {}).get("ready")]
    if not bad:
        return {"ok": True, "message": ""}
    return {"ok": False, "message": f"not every load balancer is ready, no flip: "
                                    f"{'; '.join(_truncate(b) for b in bad)}"}


def flip_result(lbs: list[str], outcomes: Mapping[str, Mapping[str, Any] | None],
                planned: Mapping[str, Any], requests: int) -> dict[str, Any]:
    """The flip across every load balancer, all or nothing: {result, phase, message,
    flip_back, canary_aborted, lb_errors}. ``result`` is success only when every LB switched
    and verified; otherwise every LB goes back (``flip_back``; result flipped_back, or failed
    when none had switched) and the run fails. A load balancer that cannot go back turns it
    into failed (turnout.outcome.back_failed)."""
    source, target = planned.get("lb_pool") or planned.get("live_pool"), \
        planned.get("target_pool")
    bad = {lb: outcomes.get(lb) or {} for lb in lbs
           if not (outcomes.get(lb) or {}).get("verified")}
    before: dict[str, dict[str, int]] = {}
    after: dict[str, dict[str, int]] = {}
    for lb in lbs:
        found = outcomes.get(lb) or {}
        for side, into in (("before", before), ("after", after)):
            for backend, counters in (found.get(side) or {}).items():
                into.setdefault(backend, {})
                for key, value in counters.items():
                    into[backend][key] = into[backend].get(key, 0) + int(value or 0)
    lb_errors = {"before": before, "after": after} if before or after else None
    moved = sorted(str(m) for m in ((outcomes.get(lb) or {}).get("moved_at") for lb in lbs) if m)
    if not bad:
        return {"result": "success", "phase": None, "flip_back": False,
                "canary_aborted": False, "lb_errors": lb_errors,
                # the last LB's map routing to the target: all traffic has moved
                "traffic_moved_at": moved[-1] if len(moved) == len(lbs) else None,
                "message": (f"traffic moved from {source or 'none'} to {target} on "
                            f"{', '.join(lbs)}; {requests} requests through each report "
                            f"{planned.get('to_version')}")}
    switched = any((outcomes.get(lb) or {}).get("switched") for lb in lbs)
    canary = any((o or {}).get("canary_aborted") for o in bad.values())
    detail = "; ".join(f"{lb}: {_truncate(o.get('message') or 'unreachable')}"
                       for lb, o in sorted(bad.items()))
    back = source in ("blue", "green") and source != target and switched
    return {"result": "flipped_back" if back else "failed",
            "phase": "verify" if switched else "flip",
            "flip_back": back, "canary_aborted": canary, "lb_errors": lb_errors,
            "message": (f"{'verify' if switched else 'flip'} failed on "
                        f"{', '.join(sorted(bad))}: {detail}"
                        + (f"; flipped every load balancer back to {source}" if back else ""))}


def back_failed(switch: Mapping[str, Any], lb: str, reason: str) -> dict[str, Any]:
    """The flip result once ``lb`` could not be put back on the pool traffic came from."""
    return {**switch, "result": "failed",
            "message": f"{switch.get('message')}; {lb} could not go back: {_truncate(reason)}"}
