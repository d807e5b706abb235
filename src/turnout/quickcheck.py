"""The quick check of a rollback: what must hold before traffic goes back to the warm idle
pool, read from the load balancers in one round. Pure, stdlib only.

One ``turnout_lb`` ``quick`` run per load balancer reads its map, stats, release map, release
state and (on ``lb[0]``) the deploy lock, and asks every idle server for its version in
parallel (:func:`ask`, plus the team's extra checks). On the controller, :func:`releases` turns
those reads into what the plan reads from release.json on the full path, and :func:`verdict`
decides: every LB routes to the live pool with no canary and no flip pending, holds the newest
release state, names the target release for the idle backend in its release map and sees
every idle server UP; every idle server answers the target version (and passes the checks);
the lock is this run's. Anything else refuses the quick check, and the rollback falls back to
the full path (release.json on every host, the full smoke test): a refusal never flips.

Shipped to the load balancers as ``module_utils/turnout_quickcheck`` (a symlink).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

try:  # on the load balancer: shipped beside this file as module_utils
    from ansible.module_utils.turnout_contracts import POOLS, other_pool
    from ansible.module_utils.turnout_smoke import extra_check, reported_version
except ImportError:  # on the controller
    from turnout.contracts import POOLS, other_pool
    from turnout.smoke import extra_check, reported_version

# (status, body, headers) of one GET of a path on one server
Get = Callable[[str], tuple[int, str, Mapping[str, str]]]


def ask(version_check: Mapping[str, Any], checks: list[Mapping[str, Any]], get: Get,
        clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """One server's answer: the version it reports under the app's version check, each extra
    check's result and how long it all took: {status, version, checks, ms}."""
    started = clock()
    status, body, headers = get(str(version_check.get("path") or "/version"))
    extras = []
    for check in checks:
        c_status, c_body, _ = get(str(check.get("path") or "/"))
        extras.append(extra_check(check, c_status, c_body))
    return {"status": status, "version": reported_version(version_check, status, body, headers),
            "checks": extras, "ms": round((clock() - started) * 1000)}


def idle_hosts(live_pool: str | None, hosts: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The hosts ({name, address, pool}) of the pool this LB does not route to."""
    if live_pool not in POOLS:
        return []
    idle = other_pool(live_pool)
    return [host for host in hosts if host.get("pool") == idle]


def _pool_release(read: Mapping[str, Any], pool: str) -> Mapping[str, Any]:
    return ((read.get("fleet_state") or {}).get("pools") or {}).get(pool) or {}


def releases(reads: Mapping[str, Mapping[str, Any]], pools: Mapping[str, list[str]]
             ) -> dict[str, dict[str, Any] | None]:
    """What the plan reads as each host's release.json, from the LB side instead: a host of
    the pool the state says holds a release, answering that release's version to every LB,
    runs it (its sha256 from the state); any other host reports what it answered, with no
    sha256 (so the plan finds the pool not warm and the quick check refuses)."""
    found: dict[str, dict[str, Any] | None] = {}
    newest = max(reads.values(), key=lambda r: int((r.get("fleet_state") or {}).get("serial")
                                                   or 0), default={})
    for pool in POOLS:
        release = _pool_release(newest, pool)
        for host in pools.get(pool) or []:
            answered = {(r.get("answers") or {}).get(host, {}).get("version")
                        for r in reads.values() if r.get("answered_pool") == pool}
            if not answered:  # the live pool is not asked: the state is what it runs
                found[host] = ({"version": release.get("version"),
                                "sha256": release.get("sha256")} if release else None)
            elif answered == {release.get("version")} and release.get("version"):
                found[host] = {"version": release["version"], "sha256": release.get("sha256")}
            else:
                version = next(iter(answered)) if len(answered) == 1 else None
                found[host] = {"version": version, "sha256": None} if version else None
    return found


def _host_result(host: str, lbs: list[str], reads: Mapping[str, Mapping[str, Any]],
                 target: str, version: str | None) -> dict[str, Any]:
    """A host's smoke-shaped result {result, latency_ms, checks} from every LB's view."""
    backend = f"be_{target}"
    down = [f"{lb}: {(((reads[lb].get('stats') or {}).get('servers') or {}).get(backend) or {}).get(host, {}).get('status') or 'missing'}"  # noqa: E501
            for lb in lbs
            if ((((reads[lb].get("stats") or {}).get("servers") or {}).get(backend) or {})
                .get(host) or {}).get("status") != "UP"]
    up = {"name": "up", "ok": not down,
          "detail": (f"UP in HAProxy's health checks on {', '.join(lbs)}" if not down
                     else f"not UP in HAProxy's health checks ({'; '.join(down)})")}
    answers = [(reads[lb].get("answers") or {}).get(host) or {} for lb in lbs]
    reported = {a.get("version") for a in answers}
    ok_version = reported == {version} and version is not None
    got = ", ".join(sorted(str(v or a.get("error") or f"status {a.get('status')}")
                           for v, a in zip([a.get("version") for a in answers], answers,
                                           strict=True))) or "nothing"
    checks = [up, {"name": "version", "ok": ok_version,
                   "detail": f"expected {version}, got {got}" if not ok_version
                   else f"expected {version}, got {version} (asked from {', '.join(lbs)})"}]
    extras: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for check in answer.get("checks") or []:
            seen = extras.setdefault(str(check.get("name")), dict(check))
            if not check.get("ok"):
                seen.update(ok=False, detail=check.get("detail"))
    checks.extend(extras.values())
    return {"result": "passed" if all(c["ok"] for c in checks) else "failed",
            "latency_ms": max((int(a.get("ms") or 0) for a in answers), default=None),
            "checks": checks}


def verdict(planned: Mapping[str, Any], reads: Mapping[str, Mapping[str, Any] | None],
            lbs: list[str], run_id: str) -> dict[str, Any]:
    """Whether traffic may go back on the quick check alone: {ok, message, results}.
    ``planned`` is the rollback plan made from :func:`releases` (``refused`` set when the plan
    itself refused), ``reads`` each LB's ``quick`` result. ``results`` is per target host in
    the smoke test's shape, kept as the run's smoke results when ``ok``."""
    why: list[str] = []
    if planned.get("refused"):
        why.append(f"the plan refused: {planned['refused']}")
    for key, what in (("stage", "it restages a release"), ("resume", "a flip is pending"),
                      ("noop", "there is nothing to flip")):
        if planned.get(key):
            why.append(what)
    missing = [lb for lb in lbs if not (reads.get(lb) or {}).get("running")]
    if missing:
        why.append(f"no quick read from {', '.join(missing)}")
    if why:
        return {"ok": False, "message": "; ".join(why), "results": {}}
    target, live = planned["target_pool"], planned["live_pool"]
    version = planned.get("to_version")
    hosts = list(planned.get("target_hosts") or [])
    if planned.get("target_workers"):
        why.append(f"the {target} pool has workers (checked on the hosts only)")
    serials = {lb: int((reads[lb].get("fleet_state") or {}).get("serial") or 0) for lb in lbs}
    newest = max(serials.values(), default=0)
    for lb in lbs:
        read = reads[lb]
        if read.get("error"):
            why.append(f"{lb}: {read['error']}")
            continue
        if read.get("live_pool") != live or read.get("map_file_pool") != live:
            why.append(f"{lb} routes to {read.get('live_pool')} (map file "
                       f"{read.get('map_file_pool')}), not {live}")
        if int((read.get("canary") or {}).get("pct") or 0) != 0:
            why.append(f"{lb} has a canary share")
        if serials[lb] != newest:
            why.append(f"{lb}'s release state is behind (serial {serials[lb]} < {newest})")
        state_release = _pool_release(read, target)
        if state_release.get("sha256") != planned.get("to_sha256"):
            why.append(f"{lb}'s release state says the {target} pool holds "
                       f"{state_release.get('version')}, not {version}")
        named = (read.get("releases") or {}).get(f"be_{target}")
        if named != version:
            why.append(f"{lb}'s release map names {named or 'nothing'} for be_{target}, "
                       f"not {version}")
        if read.get("answered_pool") != target:
            why.append(f"{lb} asked the {read.get('answered_pool')} pool, not {target}")
        if read.get("version_kind") == "command":
            why.append("the version check is a command on the hosts")
    holders = [reads[lb].get("lock") for lb in lbs if "lock" in (reads[lb] or {})]
    if not holders or (holders[0] or {}).get("run_id") != run_id:
        held = (holders[0] or {}).get("run_id") if holders else None
        why.append(f"the deploy lock is not this run's (held by {held or 'nobody'})")
    results = {host: _host_result(host, lbs, reads, target, version) for host in hosts}
    failed = [host for host, res in results.items() if res["result"] != "passed"]
    for host in failed:
        why.append(f"{host}: " + "; ".join(str(c["detail"]) for c in results[host]["checks"]
                                          if not c["ok"]))
    if why:
        return {"ok": False, "message": "; ".join(why), "results": results}
    return {"ok": True, "results": results,
            "message": (f"quick check passed: {len(hosts)} {target} host(s) UP on "
                        f"{', '.join(lbs)} and answering {version}")}


def drift(planned: Mapping[str, Any], found: Mapping[str, Mapping[str, Any] | None]
          ) -> list[str]:
    """The audit after a quick rollback: one line per target host whose release.json
    (``found``, as the app_release role reads it) does not hold the release that went live."""
    want = planned.get("to_sha256")
    lines = []
    for host in planned.get("target_hosts") or []:
        release = found.get(host) or {}
        if release.get("sha256") != want or release.get("version") != planned.get("to_version"):
            lines.append(f"{host}: release.json holds {release.get('version') or 'nothing'} "
                         f"({str(release.get('sha256') or '-')[:12]}), the release state says "
                         f"{planned.get('to_version')} ({str(want or '-')[:12]}): drift, run "
                         "'invoke status' and redeploy or reconcile")
    return lines
