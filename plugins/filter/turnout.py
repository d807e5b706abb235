"""turnout filters: one-line adapters over the turnout package, which decides and is tested.

turnout.contracts (paths, pools), turnout.haproxy (Runtime API parsing, map rendering, the
canary verdict), turnout.httpcheck (curl batches, smoke checks), turnout.plan (the smoke pool),
turnout.outcome (judgement, the manifest event, the overview), turnout.hooks and
turnout.artifact (release notes).
"""

from __future__ import annotations

from datetime import UTC, datetime

from ansible.errors import AnsibleFilterError

from turnout import (
    appdef,
    approval,
    contracts,
    fleetstate,
    haproxy,
    hooks,
    httpcheck,
    outcome,
    plan,
    quickcheck,
    release,
    traffic,
)
from turnout.errors import InputError

DOCUMENTATION = r"""
name: turnout
short_description: turnout's rules and decisions for the playbooks (blue-green flips)
description:
  - C(turnout_path) is a path every part of turnout shares (C(admin_socket), C(pool_map),
    C(release_map), C(lock)), or the override given as its argument.
  - C(turnout_other_pool) is the pool that is not the input (blue <-> green).
  - C(turnout_quick_drift) lists the target hosts whose release.json disagrees with a quick
    rollback's plan (the audit after the flip).
  - C(turnout_parse_show_map), C(turnout_active_pool), C(turnout_parse_show_stat),
    C(turnout_split_map_stat), C(turnout_error_counters), C(turnout_servers_up),
    C(turnout_server_states) read HAProxy Runtime API output; C(turnout_render_map) and
    C(turnout_render_release_map) write the map files.
  - C(turnout_canary_counters) / C(turnout_canary_check) take a canary baseline and judge a step.
  - C(turnout_curl_argv) / C(turnout_curl_batch) make and read one curl run of N requests;
    C(turnout_smoke_checks) judges the smoke test's extra checks.
  - C(turnout_collect) picks one fact of each listed host (a dict host -> value or None);
    C(turnout_releases) what each listed host runs, from this run's read (host -> release
    or None); C(turnout_release_current) the same for one read result;
    C(turnout_host_results) the per-host outcome (staged, message, smoke).
  - C(turnout_judge), C(turnout_event), C(turnout_event_summary), C(turnout_overview),
    C(turnout_smoke_report) are turnout.outcome's judgement, manifest event and reports.
  - C(turnout_smoke_pool) resolves blue, green, live or idle to a pool.
  - C(turnout_awaits_approval) applies the approval gate (turnout.approval.awaits).
  - C(turnout_hook_runs), C(turnout_hook_phase), C(turnout_host_hooks),
    C(turnout_hook_path), C(turnout_hooks_check) apply turnout.hooks.
  - The logic lives in the turnout Python package (src/turnout) with unit tests.
options:
  _input:
    description: Depends on the filter (see each function's docstring).
    required: true
"""

EXAMPLES = r"""
- name: pool_switch | read live pool
  ansible.builtin.set_fact:
    pool_switch_live_pool: "{{ pool_switch_map_result.stdout | turnout_active_pool }}"

- name: turnout | judge the target hosts
  ansible.builtin.set_fact:
    turnout_judgement: "{{ groups.turnout_target | turnout_judge(results, true) }}"
"""

RETURN = r"""
_value:
  description: See each filter in the description.
  type: raw
"""


def _wrap(func):
    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (InputError, ValueError) as error:
            raise AnsibleFilterError(str(error)) from error

    call.__name__ = func.__name__
    call.__doc__ = func.__doc__
    return call


def path(name, override=None):
    """turnout.contracts.PATHS[name], or ``override`` when one is given (inventory variable)."""
    if name not in contracts.PATHS:
        raise ValueError(f"unknown turnout path {name!r}; use one of {', '.join(contracts.PATHS)}")
    return str(override) if override else contracts.PATHS[name]


def error_counters(stats, backend=None):
    """{hrsp_5xx, eresp, econ} of ``backend``, or {backend: counters} for every pool backend."""
    if backend is None:
        return haproxy.all_error_counters(stats)
    return haproxy.error_counters(stats, backend)


def collect(hosts, hostvars, key):
    """{host: hostvars[host][key] or None} for each of ``hosts`` (facts other plays set)."""
    return {host: (hostvars[host] if host in hostvars else {}).get(key) for host in hosts or []}


def releases(hosts, hostvars):
    """{host: what it runs (release.json plus ``service``, {} for none) or None when this run
    did not read it} from each host's ``app_release_read_result`` (turnout.release.current)."""
    return {host: release.current((hostvars[host] if host in hostvars else {})
                                  .get("app_release_read_result"))
            for host in hosts or []}


def host_results(hosts, hostvars, smoke=None):
    """{host: {staged, message, smoke}} from each host's turnout_host_* facts and the smoke
    phase's results ({host: smoke_test_result}, else each host's own smoke_test_result)."""
    found = {}
    for host in hosts or []:
        facts = hostvars[host] if host in hostvars else {}
        found[host] = {"staged": outcome.staged(facts),
                       "message": facts.get("turnout_host_message"),
                       "smoke": (smoke or {}).get(host) or facts.get("smoke_test_result")}
    return found


def not_staged(hosts, hostvars):
    """The hosts whose staging failed this run (turnout_host_staged false): not smoke-tested."""
    return [host for host in hosts or []
            if (hostvars[host] if host in hostvars else {}).get("turnout_host_staged") is False]


def worker_smoke(command_result, unit_result=None):
    """A worker's smoke_test_result: its unit is active and its check command exits 0."""
    rc = (command_result or {}).get("rc")
    out = str((command_result or {}).get("stderr") or (command_result or {}).get("stdout") or "")
    checks = []
    if unit_result is not None:
        state = str((unit_result or {}).get("stdout") or "unknown").strip()
        checks.append({"name": "unit active", "ok": state == "active",
                       "detail": f"the unit is {state}"})
    checks.append({"name": "worker check", "ok": rc == 0,
                   "detail": "exit 0" if rc == 0 else f"exit {rc}: {out.strip()[-200:]}"})
    ok = all(check["ok"] for check in checks)
    return {"result": "passed" if ok else "failed", "latency_ms": None, "checks": checks}


def smoke_targets(hosts, hostvars):
    """[{name, address}] of ``hosts`` for the turnout_smoke module (address: ansible_host)."""
    return [{"name": host, "address": str((hostvars[host] if host in hostvars else {})
                                          .get("ansible_host") or host)}
            for host in hosts or []]


def command_versions(loop_result):
    """{host: last line printed} from a command-kind version check looped over the hosts."""
    found = {}
    for item in (loop_result or {}).get("results") or []:
        if item.get("rc") == 0 and str(item.get("stdout") or "").strip():
            found[item.get("item")] = str(item["stdout"]).strip().splitlines()[-1].strip()
    return found


def judge(targets, results, staging):
    """turnout.outcome.judge: which target hosts failed and why."""
    return outcome.judge(list(targets or []), results or {}, bool(staging))


def event(run, planned, results, switch=None, awaiting=False, manifest=None):
    """turnout.outcome.event: the manifest event of this run."""
    return outcome.event(run, planned, results or {}, switch or {}, bool(awaiting),
                         manifest or {})


def overview(run, planned, results):
    """turnout.outcome.overview: the release overview lines of a deploy awaiting approval."""
    return outcome.overview(run, planned, results or {})


def smoke_report(hosts, pool, smoke, releases):
    """turnout.outcome.smoke_report: one line per host and the hosts that failed."""
    return outcome.smoke_report(pool, list(hosts or []), smoke or {}, releases or {})


def fleet_next(state, point, run, planned, status=None, awaiting=False):
    """The release state after this point of the run (turnout.outcome.fleet_event applied with
    turnout.fleetstate.transition); unchanged when the point notes nothing."""
    event = outcome.fleet_event(str(point), run or {}, planned or {},
                                contracts.format_timestamp(datetime.now(UTC)),
                                awaiting=bool(awaiting), status=status)
    return fleetstate.transition(state, event) if event else state


def reconciled_state(reads, env, pools, releases):
    """turnout.traffic.reconciled_state from the LBs' discover results, now."""
    lbs = {name: traffic.lb_view(name, read or {"error": "not read"})
           for name, read in (reads or {}).items()}
    return traffic.reconciled_state(str(env), lbs, pools or {}, releases or {},
                                    contracts.format_timestamp(datetime.now(UTC)))


def app_def(value, overrides=None):
    """turnout.appdef.validate of turnout_app (with the role's own variables applied), as
    plain data without the secrets' values."""
    merged = dict(value or {})
    for key, item in (overrides or {}).items():
        if item not in (None, ""):
            merged[key] = item
    return appdef.validate(merged).as_facts()


def unit_text(app, pool, host, groups=()):
    """The systemd unit of the app on this host (turnout.release.unit); a host in a
    <pool>_workers group runs the definition's worker start command."""
    worker = any(str(group).endswith("_workers") for group in groups or ())
    return release.unit(app, str(pool), str(host), worker=worker)


def as_app_user(app, command):
    """argv running ``command`` (a shell line) in the release as the app's user: the worker
    check and a command-kind version check never run as root."""
    return ["setpriv", f"--reuid={app['user']}", f"--regid={app['user']}", "--init-groups",
            "--", "/bin/sh", "-c", str(command)]


def release_record(name, version, sha256, pool, by, run_id):
    """release.json of a release activated now (turnout.release.record)."""
    return release.record(str(name), str(version), str(sha256), str(pool),
                          contracts.format_timestamp(datetime.now(UTC)), str(by), str(run_id))


def pool_of_groups(groups):
    """The pool a host belongs to from its groups (blue, green, blue_workers, ...)."""
    for group in groups or []:
        pool = str(group).removesuffix("_workers")
        if pool in contracts.POOLS:
            return pool
    return "unknown"


def curl_argv(url, count, timeout):
    """argv of one curl run that GETs ``url`` ``count`` times (turnout.httpcheck.curl_argv)."""
    return httpcheck.curl_argv(url, count, timeout)


def hook_runs(name, run, planned=None, awaiting=False):
    """Whether hook ``name`` runs now (turnout.hooks.runs_now)."""
    run, planned = run or {}, planned or {}
    return hooks.runs_now(name, str(run.get("action")), bool(run.get("failed")),
                          run.get("phase"), bool(planned.get("noop")), bool(awaiting))


class FilterModule:
    """turnout filters."""

    def filters(self):
        return {name: _wrap(func) for name, func in {
            "turnout_path": path,
            "turnout_other_pool": contracts.other_pool,
            "turnout_parse_show_map": haproxy.parse_show_map,
            "turnout_active_pool": haproxy.active_pool,
            "turnout_render_map": haproxy.render_map,
            "turnout_render_release_map": haproxy.render_release_map,
            "turnout_parse_show_stat": haproxy.parse_show_stat,
            "turnout_error_counters": error_counters,
            "turnout_servers_up": haproxy.servers_up,
            "turnout_server_states": haproxy.server_states,
            "turnout_split_map_stat": haproxy.split_map_stat,
            "turnout_canary_counters": haproxy.canary_counters,
            "turnout_canary_check": haproxy.canary_check,
            "turnout_canary_bad": haproxy.canary_bad,
            "turnout_lb_facts": haproxy.lb_facts,
            "turnout_quick_drift": quickcheck.drift,
            "turnout_verify_failures": httpcheck.verify_failures,
            "turnout_curl_argv": curl_argv,
            "turnout_curl_batch": httpcheck.parse_batch,
            "turnout_smoke_checks": httpcheck.judge_checks,
            "turnout_collect": collect,
            "turnout_releases": releases,
            "turnout_release_current": release.current,
            "turnout_app_def": app_def,
            "turnout_as_app_user": as_app_user,
            "turnout_unit": unit_text,
            "turnout_env_file": release.env_file,
            "turnout_release_record": release_record,
            "turnout_pool_of_groups": pool_of_groups,
            "turnout_fleet_next": fleet_next,
            "turnout_flip_ready": outcome.flip_ready,
            "turnout_flip_result": outcome.flip_result,
            "turnout_flip_back_failed": outcome.back_failed,
            "turnout_host_results": host_results,
            "turnout_smoke_targets": smoke_targets,
            "turnout_not_staged": not_staged,
            "turnout_worker_smoke": worker_smoke,
            "turnout_command_versions": command_versions,
            "turnout_judge": judge,
            "turnout_event": event,
            "turnout_event_summary": outcome.summary,
            "turnout_overview": overview,
            "turnout_smoke_report": smoke_report,
            "turnout_smoke_pool": plan.resolve_pool,
            "turnout_provision_view": traffic.provision_view,
            "turnout_reconciled_state": reconciled_state,
            "turnout_awaits_approval": approval.awaits,
            "turnout_hook_runs": hook_runs,
            "turnout_hook_phase": hooks.phase_of,
            "turnout_host_hooks": hooks.host_hooks,
            "turnout_hook_path": lambda p, inv, proj: str(hooks.resolve(p, inv, proj)),
            "turnout_hooks_check": hooks.validate,
        }.items()}
