"""What each user-facing command does, in order: check inputs, plan, act through a playbook,
report. The playbooks hold the safety (smoke before flip, flip back, record); this module adds
argument checking, the plan, progress (turnout.progress) and the report. tasks.py only calls these.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from turnout import artifact as artifacts
from turnout import (
    appdef,
    cli,
    examples,
    facts,
    fleetlock,
    hooks,
    lock,
    manifest,
    outcome,
    plan,
    progress,
    report,
    run,
    runner,
    traffic,
)
from turnout.contracts import POOLS, RUN_ID_TIME_FORMAT, format_timestamp, new_run_id
from turnout.errors import DeployFailed, InputError
from turnout.inventory import Environment, load_environment

DIST = cli.REPO_ROOT / "dist"
REPORT_FORMATS = tuple(report.RENDERERS)
SMOKE_POOLS = (*POOLS, "live", "idle")
DEFAULT_PROMOTE_MAX_AGE_S = 3600


def deployed_by(environ: dict[str, str] | None = None) -> str:
    """Who runs this (turnout.run.deployed_by, the rule the playbooks use too)."""
    try:
        user = getpass.getuser()
    except OSError:
        user = "unknown"
    return run.deployed_by({}, dict(os.environ if environ is None else environ), user,
                           socket.gethostname())


def environment(name: str) -> Environment:
    return load_environment(name, cli.inventories_root())


def _lock_refusal(result: runner.RunResult) -> str | None:
    """The playbook's one-line 'deploy lock held' refusal, if that is why the run failed."""
    for message in result.failure_messages:
        if lock.HELD_MARKER in message:
            return message[message.index(lock.HELD_MARKER):].strip()
    return None


def _run(playbook: str, env: Environment, extravars: dict[str, Any],
         verbose: bool = False) -> runner.RunResult:
    args = runner.build_run_args(playbook, env.hosts_file, extravars)
    if verbose:  # Ansible's own output, with the FAILED/UNREACHABLE lines
        return runner.run_playbook(args, on_line=cli.say, quiet=False)
    tracker = progress.Tracker(lbs=[h.name for h in env.lb],
                               app_hosts=[h.name for h in env.app_hosts() + env.worker_hosts()])
    with progress.display(tracker, say=cli.say) as show:
        return runner.run_playbook(args, on_event=show)


def _live_facts(env: Environment) -> facts.FleetFacts:
    fleet_facts = facts.gather(env)
    if fleet_facts.errors:
        raise DeployFailed(f"{'; '.join(fleet_facts.errors)}; nothing was changed: check the "
                           "load balancer host and run the command again")
    return fleet_facts


def _lb_views(env: Environment, fleet_facts: facts.FleetFacts) -> dict[str, traffic.LbView]:
    return {name: traffic.lb_view(name, lb.as_read()) for name, lb in fleet_facts.lbs.items()}


def _traffic(env: Environment, fleet_facts: facts.FleetFacts) -> traffic.Traffic:
    """Where traffic goes (every LB agreed with the release state), or the one-line refusal."""
    return traffic.agree(env.name, _lb_views(env, fleet_facts))


def provision(env_name: str, verbose: bool = False) -> None:
    """Configure the LBs and the app hosts (site.yml, under the deploy lock; live hosts one at
    a time, drained first when their change restarts the app); safe to re-run."""
    env = environment(env_name)
    app_of(env)  # a bad app definition: exit 2 before any host is touched
    _precheck_lock(env, "provision")
    result = _run("site", env, {"turnout_run_id": new_run_id(datetime.now(UTC)),
                                "turnout_deployed_by": deployed_by()}, verbose)
    _raise_if_lock_refused(env, result)
    if not result.ok:
        hosts = ", ".join(result.failed_hosts + result.unreachable_hosts) or "a host"
        raise DeployFailed(f"provisioning {env.name} failed on {hosts}: "
                           f"{'; '.join(result.failure_messages[:3])}")
    cli.say(f"provision: {env.name} is configured")


def live_artifact(env_name: str, dist: Path = DIST) -> artifacts.Artifact:
    """The artifact in `dist` whose sha256 is live on every host of `env_name`'s live pool."""
    source = environment(env_name)
    fleet_facts = _live_facts(source)
    live = _traffic(source, fleet_facts).live
    hosts = source.pool_names().get(live or "", [])
    shas = {(fleet_facts.hosts.get(h) or {}).get("sha256") for h in hosts}
    if not hosts or len(shas) != 1 or None in shas:
        raise InputError(f"--from {source.name}: its live pool {live or '(none)'} does not run one "
                         "release on every host; deploy it there first")
    app = app_of(source)
    return artifacts.find_by_sha256(shas.pop(), dist, app.artifact, app.name)


def check_hooks(env: Environment) -> dict[str, str]:
    """The environment's turnout_hooks, each resolved to a file (InputError when one is bad)."""
    lb_vars = env.lb[0].vars if env.lb else {}
    return hooks.validate(lb_vars.get("turnout_hooks"), env.hosts_file.parent, cli.REPO_ROOT)


def app_of(env: Environment) -> appdef.AppDef:
    """The environment's app definition (turnout_app), checked (InputError when bad)."""
    hosts = env.app_hosts()
    app = facts.host_app(hosts[0]) if hosts else appdef.validate(None)
    appdef.check_templates(app, str(env.hosts_file.parent))
    return app


def deploy(env_name: str, version: str = "", check: bool = False, verbose: bool = False,
           dist: Path = DIST, source_env: str = "", approval: bool = False,
           canary: str = "", artifact: str = "", sha256: str = "") -> None:
    """Stage, smoke-test, flip and record `version` on `env`'s idle pool.

    With `source_env`, the version is the artifact live on that environment (by sha256).
    With `artifact` (a path or an http(s) URL, `sha256` its checksum), that artifact instead
    of the one in `dist` named by the app definition.
    With `approval`, stop after the smoke tests and record awaiting_approval (see promote).
    With `canary` ("10,50"), shift that share of traffic first, watching the LB's errors.
    """
    env = environment(env_name)
    app = app_of(env)
    canary_steps = plan.parse_canary(canary) if canary else []
    if canary_steps and approval:
        raise InputError("--canary and --approval do not mix: promote flips at once; "
                         "use one of them")
    if sha256 and not artifact and not source_env:
        raise InputError("--sha256 goes with --artifact PATH_OR_URL: give both, or neither to "
                         "deploy the artifact in dist/")
    if source_env:
        if version or artifact:
            raise InputError("give --version (and --artifact) or --from, not both")
        if source_env == env_name:
            raise InputError(f"--from {source_env} is the environment being deployed")
        built = live_artifact(source_env, dist)
        version = built.version
        cli.say(f"deploy: {source_env} runs {version} (sha256 {built.sha256[:12]}); "
                f"deploying the same artifact to {env.name}")
    else:
        if not version:
            raise InputError("give --version VERSION (or --from ENV to deploy what runs there)")
        artifacts.validate_version(version)
        if artifact:
            built = artifacts.given(version, artifact, sha256, dist, app.artifact_name(version))
        else:
            built = artifacts.find_artifact(version, dist, app.artifact_name(version))
    check_hooks(env)
    deploy_plan = plan.plan("deploy", _view(env), {"version": version, "sha256": built.sha256,
                                                   "canary": canary_steps})
    print(plan.render_plan(deploy_plan))
    if check:
        cli.say("check: nothing was changed")
        return
    extravars: dict[str, Any] = {
        "turnout_version": version,
        "turnout_artifact": str(built.path),
        "turnout_artifact_sha256": built.sha256,
    }
    if approval:
        extravars["turnout_approval"] = True
    if canary_steps:
        extravars["turnout_canary"] = canary_steps
    run_id = _execute("deploy", env, extravars, f"deploy of {version} to {env.name}", verbose,
                      announce=f"{version} to {env.name}")
    entry = manifest.run_entry(manifest.load(env.manifest_path), run_id)
    if entry and entry.get("result") == "awaiting_approval":
        print(_overview(entry))
        cli.say(f"deploy {run_id}: {version} is staged on {env.name} and awaits approval: "
                f"invoke promote --env {env.name}")
        return
    cli.say(f"deploy {run_id}: {version} is live on {env.name}"
            + (" (it already was)" if deploy_plan.noop else ""))


def _view(env: Environment) -> plan.FleetView:
    """What the plan is made from, read over OpenSSH (the playbooks read the same with
    Ansible): a corrupt manifest or an unreachable load balancer stops here."""
    data = manifest.load(env.manifest_path)
    fleet_facts = _live_facts(env)
    return plan.FleetView(env.name, env.pool_names(), _lb_views(env, fleet_facts),
                          fleet_facts.hosts, data)


def _overview(entry: dict[str, Any]) -> str:
    """The release overview of a run awaiting approval (turnout.outcome.overview_lines)."""
    source, target = entry.get("from") or {}, entry.get("to") or {}
    return "\n".join(outcome.overview_lines(
        entry.get("env"), entry.get("id"), source.get("pool"), source.get("version"),
        target.get("version"), target.get("sha256"), target.get("pool"),
        entry.get("smoke") or {}, entry.get("release_notes")))


def promote(env_name: str, check: bool = False, verbose: bool = False) -> None:
    """Flip to exactly the release a deploy staged and left awaiting approval."""
    env = environment(env_name)
    lb_vars = env.lb[0].vars if env.lb else {}
    max_age = float(lb_vars.get("turnout_promote_max_age_s", DEFAULT_PROMOTE_MAX_AGE_S))
    staged = plan.plan("promote", _view(env), {"max_age_s": max_age})
    print(plan.render_plan(staged))
    if check:
        cli.say("check: nothing was changed")
        return
    run_id = _execute("promote", env, {}, f"promote of {staged.to_version} in {env.name}",
                      verbose)
    cli.say(f"promote {run_id}: {staged.to_version} is live on {env.name} "
            f"({staged.target_pool})")


def rollback(env_name: str, check: bool = False, verbose: bool = False, to: str = "",
             dist: Path = DIST, full_smoke: bool = False) -> None:
    """Back to the release live before the current one (warm on the idle pool), or with ``to``
    to any release that went live, restaged first when it is no longer there. The playbook
    checks the idle pool quickly from the load balancers unless ``full_smoke`` (or ``to``)."""
    env = environment(env_name)
    if to:
        artifacts.validate_version(to)
    rollback_plan = plan.plan("rollback", _view(env), {"to_version": to or None})
    extravars: dict[str, Any] = {"turnout_rollback_to": to} if to else {}
    if full_smoke:
        extravars["turnout_rollback_full_smoke"] = True
    if rollback_plan.stage:
        app = app_of(env)
        built = artifacts.find_by_sha256(rollback_plan.to_sha256 or "", dist, app.artifact,
                                         app.name)
        extravars["turnout_artifact"] = str(built.path)
    print(plan.render_plan(rollback_plan))
    if check:
        cli.say("check: nothing was changed")
        return
    run_id = _execute("rollback", env, extravars, f"rollback of {env.name}", verbose)
    cli.say(f"rollback {run_id}: {rollback_plan.to_version} is live on {env.name} "
            f"({rollback_plan.target_pool})")


def _execute(action: str, env: Environment, extravars: dict[str, Any], what: str,
             verbose: bool = False, announce: str = "") -> str:
    """Run one changing playbook (deploy, promote, rollback) the same way every time.

    Lock pre-check, a new run id, the playbook with the run id and who, a lock refusal inside
    the playbook as exit 2, the per-host report, then DeployFailed naming ``what`` if it
    failed. Returns the run id.
    """
    _precheck_lock(env, action)
    run_id = new_run_id(datetime.now(UTC))
    if announce:
        cli.say(f"{action} {run_id}: {announce}")
    result = _run(action, env, {**extravars, "turnout_run_id": run_id,
                                "turnout_deployed_by": deployed_by()}, verbose)
    _raise_if_lock_refused(env, result)
    print_report(env)
    if not result.ok:
        raise DeployFailed(_failure(what, env, run_id, result))
    return run_id


def _precheck_lock(env: Environment, action: str) -> None:
    """Fast path: refuse with exit 2 naming the holder before starting Ansible."""
    warning = fleetlock.precheck(env, action, deployed_by())
    if warning:
        cli.say(f"warning: {warning}")


def _raise_if_lock_refused(env: Environment, result: runner.RunResult) -> None:
    """A run that lost the race for the lock inside the playbook also exits 2."""
    if not result.ok and (refusal := _lock_refusal(result)):
        raise fleetlock.LockHeld(f"{env.name}: {refusal}")


def unlock(env_name: str, yes: bool = False, confirm=input) -> None:
    """Remove env's deploy lock (after confirmation) and record an unlock in the history."""
    env = environment(env_name)
    manifest.load(env.manifest_path)
    holder = fleetlock.read(env)
    if holder is None:
        cli.say(f"unlock: the deploy lock of {env.name} is not held; nothing to do")
        return
    cli.say(f"unlock: {env.name} is locked by {lock.describe(holder)}")
    if not yes:
        try:
            answer = confirm("Remove the lock? Only if that run is really gone [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            raise InputError("unlock not confirmed: nothing was changed (use --yes to skip "
                             "the question)")
    started = datetime.now(UTC)
    removed = fleetlock.force_release(env, expect_run_id=holder.get("run_id"))  # only that one
    stamp = format_timestamp(datetime.now(UTC))
    manifest.record_event(env.manifest_path, {
        "id": new_run_id(started), "action": "unlock", "result": "success",
        "env": env.name, "by": deployed_by(), "started_at": format_timestamp(started),
        "finished_at": stamp,
        "message": "removed the deploy lock of " + (lock.describe(removed) if removed
                                                     else "nobody (it was already free)"),
    })
    cli.say(f"unlock: removed the deploy lock of {env.name}; recorded in the manifest")


def reconcile(env_name: str, verbose: bool = False) -> int:
    """Rebuild the fleet's release state on the LBs (playbooks/reconcile.yml, under the lock)
    and the manifest's current state from what the LBs route to and each host's release.json.

    An app host that cannot be reached (powered off, network) does not stop it: its release is
    unknown, so its pool is recorded as holding no known release (a rollback to it is refused)
    and the command returns report.EXIT_DRIFT, naming the host, once both are written. Run it
    again when the host is back. An unreachable load balancer, or a host that failed, stops it."""
    env = environment(env_name)
    fleet_facts = _live_facts(env)
    views = _lb_views(env, fleet_facts)
    traffic.reconciled_state(env.name, views, env.pool_names(), fleet_facts.hosts, "")  # refuse
    _precheck_lock(env, "reconcile")
    result = _run("reconcile", env, {"turnout_run_id": new_run_id(datetime.now(UTC)),
                                     "turnout_deployed_by": deployed_by()}, verbose)
    _raise_if_lock_refused(env, result)
    app_hosts = {h.name for h in env.app_hosts() + env.worker_hosts()}
    unreachable = sorted(result.unreachable_hosts)
    only_app_hosts_unreachable = (bool(unreachable) and not result.failed_hosts
                                  and set(unreachable) <= app_hosts)
    if not result.ok and not only_app_hosts_unreachable:
        hosts = ", ".join(result.failed_hosts + unreachable)
        raise DeployFailed(f"reconcile of {env.name} failed{f' ({hosts})' if hosts else ''}: "
                           f"{'; '.join(result.failure_messages[:3]) or 'see the output'}")
    cli.say(f"reconcile: the release state on {', '.join(views)} matches what they route to")
    fleet_facts = _live_facts(env)
    path = env.manifest_path
    started = datetime.now(UTC)
    history: list[dict[str, Any]] = []
    moved: Path | None = None
    try:
        history = manifest.load(path)["history"]
    except InputError as error:
        history = _salvage_history(path)
        moved = path.with_name(f"{path.name}.corrupt-{started.strftime(RUN_ID_TIME_FORMAT)}")
        os.replace(path, moved)
        cli.say(f"reconcile: {error}")
        cli.say(f"reconcile: set the unreadable manifest aside as {moved}"
                f" ({len(history)} history entries kept)")
    rebuilt = manifest.reconciled(env.name, env.pool_names(), _traffic(env, fleet_facts).lb_pool,
                                  fleet_facts.hosts, history)
    manifest.write_atomic(path, rebuilt)
    live = rebuilt["live_pool"]
    live_state = rebuilt["pools"].get(live or "", {}) if live else {}
    stamp = format_timestamp(datetime.now(UTC))
    manifest.record_event(path, {
        "id": new_run_id(started), "action": "reconcile", "result": "success",
        "env": env.name, "by": deployed_by(), "started_at": format_timestamp(started),
        "finished_at": stamp,
        "to": {"pool": live, "version": live_state.get("version"),
               "sha256": live_state.get("sha256")},
        "message": "rebuilt the current state from the load balancer and release.json"
                   + (f"; the unreadable file is {moved.name}" if moved else "")
                   + (f"; unreachable, release unknown: {', '.join(unreachable)}"
                      if unreachable else ""),
    })
    print_report(env)
    if unreachable:
        cli.say(f"reconcile: {path} matches the fleet except {', '.join(unreachable)}: "
                "unreachable, so its pool holds no known release (a rollback to it is refused);"
                f" run 'invoke reconcile --env {env.name}' again once it is back")
        return report.EXIT_DRIFT
    cli.say(f"reconcile: {path} now matches the fleet")
    return 0


def _salvage_history(path: Path) -> list[dict[str, Any]]:
    """The valid history entries of an unreadable manifest (none if it is not even YAML)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    if not isinstance(raw, dict) or not isinstance(raw.get("history"), list):
        return []
    kept: list[dict[str, Any]] = []
    for entry in raw["history"]:
        probe = {**manifest.empty(path.parent.name), "history": [*kept, entry]}
        try:
            kept = manifest.validate(probe)["history"]
        except InputError:
            continue
    return kept


def smoke(env_name: str, pool: str = "idle", verbose: bool = False) -> None:
    """Smoke-test one pool's hosts; change nothing."""
    if pool not in SMOKE_POOLS:
        raise InputError(f"--pool must be one of {', '.join(SMOKE_POOLS)} (got {pool!r})")
    env = environment(env_name)
    app_of(env)
    result = _run("smoke", env, {"turnout_pool": pool}, verbose)
    if not result.ok:
        raise DeployFailed(f"smoke test of the {pool} pool of {env.name} failed: "
                           f"{'; '.join(result.failure_messages[:3])}")
    cli.say(f"smoke: every {pool} host of {env.name} passed")


def _failure(what: str, env: Environment, run_id: str, result: runner.RunResult) -> str:
    entry = manifest.run_entry(manifest.load(env.manifest_path), run_id)
    if entry:
        return (f"{what} failed in phase {entry.get('phase') or '?'} ({entry.get('result')}): "
                f"{entry.get('message') or 'see the report above'}")
    hosts = ", ".join(result.failed_hosts + result.unreachable_hosts) or "no host named"
    first = result.failure_messages[0] if result.failure_messages else "see the output above"
    return f"{what} failed ({hosts}): {first}"


def collect(env: Environment) -> tuple[dict[str, Any], list[report.Row], list[str],
                                      list[report.LbRow]]:
    """Manifest + live facts -> host rows, fleet-level drift, load balancer rows."""
    data = manifest.load(env.manifest_path)
    fleet_facts = facts.gather(env)
    lbs = {name: lb.as_report_input() for name, lb in fleet_facts.lbs.items()}
    rows = report.build_rows(data, fleet_facts.hosts, lbs, env.pool_names(), env.worker_names())
    fleet = report.fleet_drift(data, fleet_facts.hosts, lbs, env.pool_names())
    fleet += report.release_state_drift(
        {name: lb.fleet_state for name, lb in fleet_facts.lbs.items() if not lb.error},
        {name: lb.fleet_state_error for name, lb in fleet_facts.lbs.items()},
        fleet_facts.hosts, env.pool_names(),
        {name: lb.live_pool for name, lb in fleet_facts.lbs.items() if not lb.error})
    lb_rows = report.build_lb_rows(lbs, {name: lb.fleet_state
                                         for name, lb in fleet_facts.lbs.items()})
    return data, rows, [*fleet_facts.errors, *fleet], lb_rows


def print_report(env: Environment) -> None:
    try:
        _, rows, fleet, lbs = collect(env)
    except InputError as exc:  # a manifest problem must not hide the deploy's own outcome
        cli.say(f"report unavailable: {exc}")
        return
    print(report.render_table(rows, fleet, env=env.name, lbs=lbs))


def status(env_name: str) -> int:
    """Compare manifest, hosts and LB; return report.EXIT_DRIFT when they disagree."""
    env = environment(env_name)
    _, rows, fleet, lbs = collect(env)
    print(report.render_table(rows, fleet, env=env.name, lbs=lbs))
    if report.has_drift(rows, fleet):
        cli.say(f"status: drift in {env.name} (see above)")
        return report.EXIT_DRIFT
    return 0


def render_report(env_name: str, fmt: str = "table", output: str | None = None) -> int:
    """The per-host deployed-version report in one of report.RENDERERS' formats."""
    if fmt not in REPORT_FORMATS:
        raise InputError(f"--format must be one of {', '.join(REPORT_FORMATS)} (got {fmt!r})")
    env = environment(env_name)
    data, rows, fleet, lbs = collect(env)
    text = report.render(fmt, data, rows, fleet, env.name, lbs)
    if output:
        target = Path(output)
        if not target.parent.is_dir():
            raise InputError(f"--output directory {target.parent} does not exist: create it")
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text if text.endswith("\n") else text + "\n")
        os.replace(tmp, target)
        cli.say(f"report: wrote {target}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def build(version: str, broken: str | None = None, notes: str | None = None,
          dist: Path = DIST, example: str = "app") -> artifacts.Artifact:
    """Build dist/<example>-<version>.tar.gz (reproducible) and its .sha256."""
    built = examples.build(example or "app", version, dist, broken=broken or None,
                           notes=notes or None)
    print(f"{built.path}  sha256 {built.sha256}")
    return built
