"""turnout's command line: `invoke --list` shows every task, `invoke TASK --help` explains one.

Thin by design: each task checks its arguments and calls the turnout package; expected
failures print one line and exit 2 (bad input) or 1 (a failed run).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from invoke import Collection, Context, task

from turnout import cli, commands
from turnout.lab import config as lab_config
from turnout.lab import fleet

LAB_HELP = {
    "name": "lab name, 1-4 lowercase letters/digits (default 'lab'; env TURNOUT_LAB_NAME)",
    "subnet": "private /24 for the lab bridge (default 10.231.0.0/24; env TURNOUT_LAB_SUBNET)",
}


def _lab(name: str | None, subnet: str | None, app_hosts: int | str = 2,
         lbs: int | str = 1) -> lab_config.LabConfig:
    return lab_config.LabConfig(
        name=name or os.environ.get("TURNOUT_LAB_NAME", lab_config.DEFAULT_NAME),
        subnet=subnet or os.environ.get("TURNOUT_LAB_SUBNET", lab_config.DEFAULT_SUBNET),
        app_hosts=cli.int_option(app_hosts, "--app-hosts", 1, lab_config.MAX_APP_HOSTS),
        lbs=cli.int_option(lbs, "--lbs", 1, lab_config.MAX_LBS),
    )


def _lab_inventory(lab: lab_config.LabConfig, inventory: str | None) -> Path:
    if inventory:
        return Path(inventory).resolve()
    return cli.inventories_root() / ("lab" if lab.name == lab_config.DEFAULT_NAME else lab.name)


@task(positional=[], help={**LAB_HELP,
            "app_hosts": "hosts per pool, 1-10 (default 2)",
            "lbs": "load balancers (HAProxy hosts lb1..lbN), 1-3 (default 1)",
            "inventory": "directory to write hosts.yml into (default inventories/<name>)",
            "user": "connect as this user with passwordless sudo and become, as production "
                    "does (e.g. deploy; default root)"})
@cli.guarded
def lab_up(c: Context, app_hosts: str = "2", name: str = "", subnet: str = "",
           inventory: str = "", lbs: str = "1", user: str = "") -> None:
    """Boot the local lab (load balancers + blue/green app hosts as real systemd hosts);
    idempotent."""
    lab = dataclasses.replace(_lab(name, subnet, app_hosts, lbs), user=user or "root")
    changed = fleet.up(lab, _lab_inventory(lab, inventory))
    cli.say("lab: up" + ("" if changed else " (nothing changed)"))
    _print_status(lab)


@task(positional=[], help=LAB_HELP)
@cli.guarded
def lab_down(c: Context, name: str = "", subnet: str = "") -> None:
    """Stop every lab host and remove its mounts, veths and bridge; keep the base image cache."""
    lab = _lab(name, subnet)
    removed = fleet.down(lab)
    cli.say(f"lab: down ({len(removed)} removed: {', '.join(removed) or 'nothing was up'})")


def _print_status(lab: lab_config.LabConfig) -> bool:
    rows = fleet.status(lab)
    print(f"{'HOST':<9} {'GROUP':<6} {'ADDRESS':<15} {'RUNNING':<8} {'SSHD':<5} SYSTEMD")
    for row in rows:
        print(f"{row.name:<9} {row.group:<6} {row.address:<15} {'yes' if row.running else 'no':<8}"
              f" {'up' if row.sshd else 'down':<5} {row.systemd}")
    return all(r.running and r.sshd for r in rows)


@task(positional=[], help=LAB_HELP)
@cli.guarded
def lab_status(c: Context, name: str = "", subnet: str = "") -> None:
    """Show each lab host, its address, and whether systemd and sshd are up (exit 1 if not)."""
    lab = _lab(name, subnet)
    fleet.require_root()
    if not fleet.is_up(lab):
        cli.say(f"lab '{lab.name}' is not up: start it with 'invoke lab.up'")
        sys.exit(1)
    if not _print_status(lab):
        sys.exit(1)


@task(positional=["host"], help={**LAB_HELP, "host": "lab host name, e.g. blue1",
                                 "command": "run this command instead of a shell"})
@cli.guarded
def lab_ssh(c: Context, host: str, command: str = "", name: str = "", subnet: str = "") -> None:
    """Open an SSH session to a lab host (host key checked against the lab's known_hosts)."""
    argv = fleet.ssh_argv(_lab(name, subnet), host, command or None)
    os.execvp(argv[0], argv)


ENV_HELP = "environment: a directory under inventories/ (e.g. lab, staging, prod)"
VERBOSE_HELP = "show Ansible's full output instead of progress lines"


@task(positional=[], help={"version": "version to build, e.g. 1.4.2",
            "example": "which example service: app (the sample app, default), catalog (Flask "
                       "and gunicorn, wheels bundled) or site (busybox httpd)",
            "broken": "build a deliberately broken release of the sample app for tests: "
                      "unhealthy, wrong-version, crash or slow",
            "notes": "release notes text to include"})
@cli.guarded
def build(c: Context, version: str, broken: str = "", notes: str = "",
          example: str = "app") -> None:
    """Build dist/<example>-VERSION.tar.gz (byte-for-byte reproducible) and its .sha256."""
    cli.needs_checkout("build", "the example services' sources are in examples/")
    commands.build(version, broken=broken, notes=notes, example=example)


@task(positional=[],
      help={"env": "name of the new environment (inventories/<env>; must not exist yet)",
            "app": "the app's name (unit, user, /srv/<app>; default 'app')"})
@cli.guarded
def init(c: Context, env: str, app: str = "") -> None:
    """Write a new environment: hosts.yml with turnout's groups and group_vars/all.yml with the
    app definition commented key by key; never overwrites."""
    from turnout import scaffold
    files = scaffold.init_env(env, cli.inventories_root(), app)
    print(scaffold.next_steps(env, files))


@task(positional=[], help={"env": ENV_HELP, "verbose": VERBOSE_HELP})
@cli.guarded
def provision(c: Context, env: str, verbose: bool = False) -> None:
    """Configure HAProxy on the LB and the app service on every app host (site.yml)."""
    commands.provision(env, verbose=verbose)


@task(positional=[], help={"env": ENV_HELP,
            "version": "version to deploy; its artifact is dist/<name>-VERSION.tar.gz (the app "
                       "definition's artifact name) unless --artifact names another",
            "artifact": "the artifact to deploy: a path, or an http(s) URL fetched once into "
                        "dist/ (needs --sha256); any tarball layout",
            "sha256": "the artifact's sha256 (64 hex); default the .sha256 file beside it",
            "from": "deploy the artifact live on this environment instead (found in dist/ "
                    "by its sha256), e.g. --from staging",
            "approval": "stop after staging and smoke tests, print the release overview and "
                        "wait for 'invoke promote' (also: turnout_approval_required in the "
                        "inventory)",
            "canary": "shift traffic in steps before the flip, e.g. 10,50 (percent), "
                      "watching the LB's error counters for turnout_canary_watch_s after each; "
                      "errors send all traffic back and fail the deploy",
            "check": "print the plan (live pool, idle hosts, from/to version); change nothing",
            "verbose": VERBOSE_HELP})
@cli.guarded
def deploy(c: Context, env: str, version: str = "", from_: str = "", approval: bool = False,
           canary: str = "", check: bool = False, verbose: bool = False, artifact: str = "",
           sha256: str = "") -> None:
    """Stage VERSION on the idle pool, smoke-test it, flip HAProxy, verify, record."""
    commands.deploy(env, version, check=check, verbose=verbose, source_env=from_,
                    approval=approval, canary=canary, artifact=artifact, sha256=sha256)


@task(positional=[], help={"env": ENV_HELP, "check": "print what would be promoted; change nothing",
            "verbose": VERBOSE_HELP})
@cli.guarded
def promote(c: Context, env: str, check: bool = False, verbose: bool = False) -> None:
    """Flip to the release a deploy staged awaiting approval (refused if it changed or is stale)."""
    commands.promote(env, check=check, verbose=verbose)


@task(positional=[], help={"env": ENV_HELP, "check": "print the rollback plan; change nothing",
            "to": "go to this release instead (any release that went live; restaged on the "
                  "idle pool with a smoke test when it is no longer there; its artifact must "
                  "be in dist/)",
            "full-smoke": "skip the quick check from the load balancers (every idle server "
                          "UP and answering the release) and read release.json on every host "
                          "and run the full smoke test before the flip, as when the quick "
                          "check refuses",
            "verbose": VERBOSE_HELP})
@cli.guarded
def rollback(c: Context, env: str, check: bool = False, verbose: bool = False,
             to: str = "", full_smoke: bool = False) -> None:
    """Back to the release that was live before the current one (warm on the idle pool)."""
    commands.rollback(env, check=check, verbose=verbose, to=to, full_smoke=full_smoke)


@task(positional=[], help={"env": ENV_HELP, "pool": "blue, green, live or idle (default idle)",
            "verbose": VERBOSE_HELP})
@cli.guarded
def smoke(c: Context, env: str, pool: str = "idle", verbose: bool = False) -> None:
    """Smoke-test every host of one pool (health, exact version, custom checks)."""
    commands.smoke(env, pool=pool, verbose=verbose)


@task(positional=[], help={"env": ENV_HELP})
@cli.guarded
def status(c: Context, env: str) -> None:
    """Per-host versions from manifest, hosts and LB; exit 3 when they disagree (drift)."""
    code = commands.status(env)
    if code:
        sys.exit(code)


@task(positional=[], help={"env": ENV_HELP, "yes": "do not ask for confirmation (for CI)"})
@cli.guarded
def unlock(c: Context, env: str, yes: bool = False) -> None:
    """Remove the deploy lock of ENV left by a run that is gone; recorded in the history."""
    commands.unlock(env, yes=yes)


@task(positional=[], help={"env": ENV_HELP})
@cli.guarded
def reconcile(c: Context, env: str) -> None:
    """Rebuild the manifest's current state from the LB and the hosts (lost/corrupt manifest);
    exit 3 when an app host could not be reached (its pool's release is then unknown)."""
    code = commands.reconcile(env)
    if code:
        sys.exit(code)


@task(positional=[], help={"env": ENV_HELP,
            "format": "table, json, html, junit (smoke results) or prometheus "
                      "(textfile collector); default table",
            "output": "write to this file instead of stdout"})
@cli.guarded
def report(c: Context, env: str, format: str = "table", output: str = "") -> None:
    """The per-host deployed-version report: pool, live/idle, version, sha, when, who, drift."""
    commands.render_report(env, fmt=format, output=output or None)


BENCH_HELP = {
    "quick": "small run: 1 host per pool, one repeat each (what CI runs)",
    "name": "lab name for the benchmark (default 'b'; env TURNOUT_BENCH_LAB)",
    "subnet": "private /24 for it (default 10.231.4.0/24; env TURNOUT_BENCH_SUBNET)",
    "sizes": "app hosts per pool to measure deploys at, e.g. 1,10 (default 1,3,5,10; quick: 1)",
    "output": "directory for <date>.json/.md/.png (default bench/results)",
    "runs": "measured deploys per size, sizes interleaved (default 2; quick: 1)",
}


def _bench(parts: tuple[str, ...], quick: bool, name: str, subnet: str, output: str,
           sizes: str, runs: str = "") -> None:
    cli.needs_checkout("bench", "it runs the checkout's tasks and writes bench/results")
    from turnout import bench, bench_runner  # imported on use: matplotlib is slow to import

    chosen = [p for p in parts if not quick or p in bench.QUICK_PARTS] if len(parts) > 1 \
        else list(parts)
    path = bench_runner.run(
        chosen, quick,
        name or os.environ.get("TURNOUT_BENCH_LAB", "b"),
        subnet or os.environ.get("TURNOUT_BENCH_SUBNET", "10.231.4.0/24"),
        sizes=[cli.int_option(s, "--sizes", 1, 10) for s in sizes.split(",")] if sizes else None,
        out_dir=Path(output).resolve() if output else bench_runner.RESULTS,
        runs=cli.int_option(runs, "--runs", 1, 20) if runs else None,
        command="invoke " + " ".join(sys.argv[1:]))
    print(path.with_suffix(".md").read_text())
    cli.say(f"bench: wrote {path} (+ .md, .png)")


def _bench_task(parts: tuple[str, ...], doc: str):
    @task(positional=[], help=BENCH_HELP)
    @cli.guarded
    def bench_part(c: Context, quick: bool = False, name: str = "", subnet: str = "",
                   output: str = "", sizes: str = "", runs: str = "") -> None:
        _bench(parts, quick, name, subnet, output, sizes, runs)

    bench_part.__doc__ = doc
    bench_part.body.__doc__ = doc
    return bench_part


@task(positional=[], help={
    **LAB_HELP,
    "env": "the drill's environment name (its own inventory under .cache/chaos; default labcx)",
    "steps": "steps per seed, 1-10000 (default 20)",
    "seed": "seed, or several comma-separated (default 1); a seed replays the same sequence",
    "weights": "change step weights, e.g. kill=8,provision=0 (see docs/chaos.md for the kinds)",
    "output": "directory for chaos-<date>.json/.md (default bench/results)",
    "keep": "leave the lab up afterwards"})
@cli.guarded
def chaos(c: Context, env: str = "labcx", steps: str = "20", seed: str = "1", weights: str = "",
          name: str = "", subnet: str = "", output: str = "", keep: bool = False) -> None:
    """Randomized operator drill on its own lab (2 LBs): random deploys, broken releases,
    approvals, canaries, rollbacks, kills and faults under load, judged after every step;
    exit 1 on any violation of the invariant."""
    cli.needs_checkout("chaos", "it builds the sample app's releases from examples/")
    from turnout import chaos as drill
    from turnout import chaos_runner

    seeds = [cli.int_option(s, "--seed", 0, 2**31) for s in seed.split(",") if s.strip()]
    if not seeds:
        raise drill.ChaosError("--seed: give at least one whole number")
    runs = chaos_runner.on_lab(
        name or os.environ.get("TURNOUT_CHAOS_LAB", "cx"),
        subnet or os.environ.get("TURNOUT_CHAOS_SUBNET", "10.231.93.0/24"),
        env, seeds, cli.int_option(steps, "--steps", 1, 10000),
        drill.parse_weights(weights),
        Path(output).resolve() if output else chaos_runner.RESULTS, keep=keep,
        say=cli.say)
    bad = [r for r in runs if r["violations"] or r["failed_outside_haproxy_restarts"]]
    if bad:
        first = bad[0]
        raise drill.InvariantBroken(
            f"seed {first['seed']}: {len(first['violations'])} violations, "
            f"{first['failed_outside_haproxy_restarts']} failed requests outside HAProxy "
            f"restarts; first after {(first['first_violation'] or {}).get('step')}")


@task(positional=[], help={
    "output": "directory for the tarball (default build/collection)"})
@cli.guarded
def collection(c: Context, output: str = "") -> None:
    """Build the Ansible collection turnout.bluegreen with ansible-galaxy collection build
    (version = the project's); prints the tarball. Install it into your own Ansible repo with
    ansible-galaxy collection install <tarball> -p collections (README)."""
    cli.needs_checkout("collection", "it is built from the checkout's playbooks and roles")
    from turnout import collection as content

    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    out = Path(output).resolve() if output else cli.REPO_ROOT / "build" / "collection"
    tarball = content.build(cli.REPO_ROOT, out, str(galaxy) if galaxy.exists() else
                            "ansible-galaxy")
    print(tarball)


bench = Collection("bench")
bench.add_task(_bench_task(("deploy_scaling", "flip", "rollback", "load", "overhead", "tuning",
                            "baselines"),
                           "Every benchmark on a fresh lab; writes bench/results/<date>.json, "
                           ".md and .png."), "all", default=True)
for _part, _doc in (
        ("deploy_scaling", "Deploy wall time vs app hosts per pool (1, 3, 5, 10)."),
        ("flip", "Flip latency: Runtime API set map -> every response through the LB new."),
        ("rollback", "Wall time of 'invoke rollback', with a per-task profile."),
        ("load", "Failed requests across a deploy and a rollback under fixed-rate hey load."),
        ("overhead", "'invoke deploy' vs bare ansible-playbook doing the same deploy."),
        ("tuning", "Deploy time with each Ansible tuning switched off in turn."),
        ("baselines", "Naive in-place and serial rolling update under load, same hosts.")):
    bench.add_task(_bench_task((_part,), _doc), _part.replace("_", "-"))

lab = Collection("lab")
lab.add_task(lab_up, "up")
lab.add_task(lab_down, "down")
lab.add_task(lab_status, "status")
lab.add_task(lab_ssh, "ssh")

ns = Collection(init, build, collection, chaos, provision, deploy, promote, rollback, smoke,
                status, report, unlock, reconcile)
ns.add_collection(lab)
ns.add_collection(bench)
