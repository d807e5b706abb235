"""The benchmark's I/O: boot the lab, run deploys and baselines the way a user does, time them
under load from `hey`, and write the results (JSON, markdown, PNG). The arithmetic lives in
turnout.bench; this module only acts and measures.

Traffic goes only to the lab load balancer, at a fixed rate, bounded in time.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from turnout import bench, contracts
from turnout.artifact import find_artifact
from turnout.errors import InputError
from turnout.lab import fleet
from turnout.lab.config import LabConfig, inventory, ssh_options
from turnout.probe import TrafficProbe

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist"
RESULTS = REPO / "bench" / "results"
BASELINES = REPO / "bench" / "baselines"
BIN = Path(sys.executable).parent
LB_PORT = 80
LOAD_RATE_RPS = 100  # hey: fixed total rate during deploys, rollbacks and baselines
LOAD_WORKERS = 4
LOAD_MAX_S = 900  # hey's own bound; it is stopped as soon as the action ends
FLIP_REPEATS = 5
SCALING_RUNS = 2  # measured deploys per size in a full run (sizes interleaved, run by run)
CONTROLLER_CGROUP = "turnout.bench-controller"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Timed:
    seconds: float
    rc: int
    output: str
    started_at: float = 0.0  # wall clock (epoch) just before the process started


@dataclass
class BenchLab:
    """The lab under test and the inventory directories that describe subsets of it."""

    config: LabConfig
    root: Path  # TURNOUT_INVENTORIES
    full_env: str
    versions: Iterator[str] = field(default_factory=lambda: iter(()))

    @property
    def environ(self) -> dict[str, str]:
        return {"TURNOUT_INVENTORIES": str(self.root)}

    def hosts_file(self, env: str) -> Path:
        return self.root / env / "hosts.yml"

    @property
    def lb_address(self) -> str:
        return self.config.host("lb1").address


# --- running things -------------------------------------------------------------------------

def _timed(argv: list[str], env: dict[str, str] | None = None, timeout: float = 1200,
           cgroup: Path | None = None) -> Timed:
    """Run argv from the repository; in cgroup (its cgroup.procs) when given, so that every
    process it starts, ControlPersist masters included, is counted in that cgroup's CPU."""
    def enter() -> None:  # in the child, before exec
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    started_at = time.time()
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                          check=False, preexec_fn=enter if cgroup is not None else None)
    return Timed(round(time.monotonic() - started, 3), proc.returncode,
                 (proc.stdout + proc.stderr)[-4000:], started_at)


def invoke(lab: BenchLab, *args: str, env: dict[str, str] | None = None,
           cgroup: Path | None = None) -> Timed:
    """An invoke task as a user runs it (a new process from the repository)."""
    return _timed([sys.executable, "-m", "invoke", *args], {**lab.environ, **(env or {})},
                  cgroup=cgroup)


# --- CPU: the controller's and each lab host's cgroup, CPU pressure -------------------------

def _unified() -> Path | None:
    """The cgroup v2 hierarchy (hybrid hosts mount it at /sys/fs/cgroup/unified)."""
    for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (root / "cgroup.controllers").exists():
            return root
    return None


def _cpu_s(cgroup: Path | None) -> float | None:
    """usage_usec of a cgroup v2 directory's cpu.stat, in seconds (kept without the cpu
    controller enabled); None without one."""
    if cgroup is None:
        return None
    try:
        for line in (cgroup / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except OSError:
        return None
    return None


def _pressure_s() -> float | None:
    """Total time (s) some runnable task waited for a CPU, machine-wide (/proc/pressure/cpu)."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return None
    return None


def controller_cgroup() -> Path | None:
    root = _unified()
    if root is None:
        return None
    path = root / CONTROLLER_CGROUP
    path.mkdir(exist_ok=True)
    return path


def _host_cgroups(lab: BenchLab) -> dict[str, Path]:
    """Each lab host's own cgroup v2 directory (the one with cpu.stat), where fleet booted it."""
    found = {}
    for host in lab.config.hosts():
        with_cpu = [d for d in fleet.cgroup_dirs(host.machine) if (d / "cpu.stat").exists()]
        if with_cpu:
            found[host.name] = with_cpu[0]
    return found


def _ssh_wrappers(workdir: Path, log: Path) -> dict[str, str]:
    """ssh and sftp wrappers that log one line per call, so each target host's SSH commands
    (module runs with pipelining) and uploads can be counted; env for ansible."""
    wrappers = workdir / "ssh-wrappers"
    wrappers.mkdir(exist_ok=True)
    env = {"TURNOUT_SSH_LOG": str(log)}
    for tool, variable in (("ssh", "ANSIBLE_SSH_EXECUTABLE"), ("sftp", "ANSIBLE_SFTP_EXECUTABLE")):
        real = shutil.which(tool)
        if real is None:
            continue
        script = wrappers / tool
        script.write_text(f'#!/bin/sh\nprintf \'{tool} %s\\n\' "$*" >> "$TURNOUT_SSH_LOG"\n'
                          f'exec {real} "$@"\n')
        script.chmod(0o755)
        env[variable] = str(script)
    return env


def playbook(lab: BenchLab, env_name: str, path: Path, extravars: dict[str, Any],
             env: dict[str, str] | None = None) -> Timed:
    """Bare ansible-playbook with the repository's ansible.cfg, as AWX or CI would run it."""
    base = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_NOCOLOR": "True"}
    return _timed([str(BIN / "ansible-playbook"), "-i", str(lab.hosts_file(env_name)),
                   str(path), "-e", json.dumps(extravars)], {**base, **(env or {})})


def _check(what: str, timed: Timed) -> Timed:
    """A step that must succeed; one plain line per step done (bench output is a log)."""
    if timed.rc != 0:
        raise RuntimeError(f"{what} failed (rc {timed.rc}):\n{timed.output}")
    say(f"  {what}: {timed.seconds}s")
    return timed


def ssh(lab: BenchLab, host: str, command: str) -> str:
    """One command on a lab host over a persistent SSH master (the flip timing needs it fast)."""
    address = lab.config.host(host).address
    control = Path(tempfile.gettempdir()) / f".turnout-bench-{lab.config.name}-%C"
    argv = ["ssh", *ssh_options(lab.config), "-o", "ControlMaster=auto",
            "-o", f"ControlPath={control}", "-o", "ControlPersist=120", f"root@{address}", command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{host}: {command}: {proc.stderr.strip()}")
    return proc.stdout


SOCKET, POOL_MAP = contracts.PATHS["admin_socket"], contracts.PATHS["pool_map"]


def lb_runtime(lab: BenchLab, command: str) -> str:
    return ssh(lab, "lb1", f"echo '{command}' | socat stdio {SOCKET}")


def live_pool(lab: BenchLab) -> str:
    out = lb_runtime(lab, f"show map {POOL_MAP}")
    return "green" if "be_green" in out else "blue"


@contextmanager
def load(lab: BenchLab, result: dict[str, Any]) -> Iterator[None]:
    """Run hey against the lab LB at a fixed rate while the block runs; store its counts."""
    argv = bench.hey_argv(f"http://{lab.lb_address}:{LB_PORT}/version", LOAD_RATE_RPS,
                          LOAD_WORKERS, LOAD_MAX_S)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    time.sleep(1.0)  # let hey open its connections before the action starts
    try:
        yield
    finally:
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)  # hey stops and prints its report on SIGINT
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        result["load"] = bench.parse_hey(out, rate_rps=LOAD_RATE_RPS).as_dict()


# --- the lab --------------------------------------------------------------------------------

def _write_subset(lab: BenchLab, size: int) -> str:
    """An inventory dir with lb1 + blue1..N + green1..N of the booted lab; returns its name."""
    name = f"{lab.full_env}-{size}"
    env_dir = lab.root / name
    env_dir.mkdir(parents=True, exist_ok=True)
    if not (env_dir / "group_vars").exists():
        (env_dir / "group_vars").symlink_to(REPO / "inventories" / "lab" / "group_vars")
    subset = LabConfig(name=lab.config.name, subnet=lab.config.subnet, app_hosts=size,
                       state_root=lab.config.state_root)
    data = inventory(subset)  # the same hosts, addresses and keys, fewer app hosts
    (env_dir / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return name


def boot(name: str, subnet: str, app_hosts: int, workdir: Path) -> BenchLab:
    config = LabConfig(name=name, subnet=subnet, app_hosts=app_hosts)
    full_env = f"bench{name}"
    env_dir = workdir / full_env
    env_dir.mkdir(parents=True, exist_ok=True)
    (env_dir / "group_vars").symlink_to(REPO / "inventories" / "lab" / "group_vars")
    fleet.down(config)
    fleet.up(config, env_dir)
    return BenchLab(config=config, root=workdir, full_env=full_env)


def _versions(stamp: str) -> Iterator[str]:
    index = 0
    while True:
        index += 1
        version = f"9.{index}.0-b{stamp}"
        _check(f"build {version}", _timed([sys.executable, "-m", "invoke", "build",
                                            "--version", version, "--notes", "bench"]))
        yield version


def _artifact_vars(version: str) -> dict[str, str]:
    built = find_artifact(version, DIST)
    return {"bench_version": version, "bench_artifact": str(built.path),
            "bench_sha256": built.sha256}


def _deploy(lab: BenchLab, env_name: str, env: dict[str, str] | None = None) -> tuple[str, Timed]:
    version = next(lab.versions)
    return version, _check(f"invoke deploy {version} to {env_name}",
                           invoke(lab, "deploy", "--env", env_name, "--version", version, env=env))


# --- the parts ------------------------------------------------------------------------------

def _measured_deploy(lab: BenchLab, env_name: str, size: int, run: int,
                     workdir: Path) -> dict[str, Any]:
    """One blue-green deploy of a new release to the idle pool of a size's subset, with its
    wall time, the controller's CPU (cgroup), the ansible-playbook process's own CPU, each lab
    host's CPU, CPU pressure, and task executions and SSH commands per target host."""
    version = next(lab.versions)
    target_pool = contracts.other_pool(live_pool(lab))
    targets = [f"{target_pool}{index}" for index in range(1, size + 1)]
    profile, ssh_log = workdir / f"deploy-{size}-{run}.jsonl", workdir / f"ssh-{size}-{run}.log"
    env = {**_profile_env(profile), **_ssh_wrappers(workdir, ssh_log)}
    cgroup, hosts = controller_cgroup(), _host_cgroups(lab)
    before = {"controller": _cpu_s(cgroup), "pressure": _pressure_s(),
              **{name: _cpu_s(path) for name, path in hosts.items()}}
    timed = _check(f"invoke deploy {version} to {env_name} (run {run})",
                   invoke(lab, "deploy", "--env", env_name, "--version", version, env=env,
                          cgroup=cgroup))
    after = {"controller": _cpu_s(cgroup), "pressure": _pressure_s(),
             **{name: _cpu_s(path) for name, path in hosts.items()}}

    def delta(key: str) -> float | None:
        if before.get(key) is None or after.get(key) is None:
            return None
        return round(after[key] - before[key], 3)

    records = _read_profile(profile)
    tasks = bench.per_host_tasks(records, targets)
    addresses = {name: lab.config.host(name).address for name in targets}
    ssh_lines = ssh_log.read_text().splitlines() if ssh_log.exists() else []
    ssh_counts = bench.per_host_ssh(ssh_lines, addresses)
    host_cpu = {name: delta(name) for name in hosts}
    lab_cpu = round(sum(v for v in host_cpu.values() if v is not None), 3) if hosts else None
    controller = delta("controller")
    return {
        "hosts_per_pool": size, "run": run, "version": version, "rc": timed.rc,
        "deploy_s": timed.seconds, "controller_cpu_s": controller,
        "main_cpu_s": bench.main_process_cpu_s(records), "lab_cpu_s": lab_cpu,
        "total_cpu_s": round(controller + lab_cpu, 3)
        if controller is not None and lab_cpu is not None else None,
        "target_hosts_cpu_s": round(sum(host_cpu[n] or 0.0 for n in targets), 3),
        "lb_cpu_s": host_cpu.get("lb1"), "pressure_some_s": delta("pressure"),
        "tasks_per_target_host": max(tasks.values()) if tasks else None,
        "ssh_per_target_host": max(c["ssh"] for c in ssh_counts.values()) if targets else None,
        "sftp_per_target_host": max(c["sftp"] for c in ssh_counts.values()) if targets else None,
        "modules_per_target_host": max(c.get("module", 0) for c in ssh_counts.values())
        if targets else None,
        "tasks_by_host": tasks, "ssh_by_host": ssh_counts,
        # what ran on the first target host, in order (where the per-host cost comes from)
        "first_target_tasks": [r["task"] for r in bench.task_records(records)
                               if targets and r.get("host") == targets[0]
                               and r.get("status") != "skipped"],
        "loadavg": [round(x, 2) for x in os.getloadavg()]}


def part_deploy_scaling(lab: BenchLab, sizes: list[int], runs: int,
                        workdir: Path) -> list[dict[str, Any]]:
    """Blue-green deploys at each size, the sizes interleaved: run 1 at every size, then run
    2 at every size, ... (so a slow patch of the machine does not land on one size). Each
    measurement provisions its size's subset first (the LB's backends must hold exactly that
    subset's servers); the very first deploy of the fresh fleet is recorded, not fitted."""
    rows: list[dict[str, Any]] = []
    first_deploy_s = None
    for run in range(1, runs + 1):
        for size in sizes:
            env_name = _write_subset(lab, size)
            say(f"deploy scaling: {size}+{size} hosts, run {run}/{runs}, provisioning")
            _check("provision", invoke(lab, "provision", "--env", env_name))
            if first_deploy_s is None:
                first_deploy_s = _deploy(lab, env_name)[1].seconds
            row = _measured_deploy(lab, env_name, size, run, workdir)
            row["first_deploy_s"] = first_deploy_s if not rows else None
            rows.append(row)
            say(f"deploy scaling: {size}+{size} run {run}: {row['deploy_s']} s, controller "
                f"{row['controller_cpu_s']} CPU-s, lab hosts {row['lab_cpu_s']} CPU-s, "
                f"{row['tasks_per_target_host']} tasks, {row['modules_per_target_host']} module "
                f"runs and {row['ssh_per_target_host']} ssh calls per target host")
    return rows


def _history(lab: BenchLab, env_name: str) -> list[dict[str, Any]]:
    """The environment's manifest history, oldest first (empty when there is no manifest)."""
    manifest = lab.root / env_name / "manifest.yml"
    if not manifest.exists():
        return []
    return (yaml.safe_load(manifest.read_text()) or {}).get("history") or []


def _ensure_both_pools(lab: BenchLab, env_name: str, mixed: bool = False) -> None:
    """Leave the lab with a live pool and a complete warm idle pool (the previous release).

    ``mixed``: the deploy scaling ran smaller subsets between the deploys of this one, so the
    first hosts of its idle pool run another subset's release (rollback rightly refuses such a
    pool). Its last deploy was of this subset (the sizes interleave, largest last), so its live
    pool is whole: one more deploy makes that the warm previous release."""
    history = _history(lab, env_name)
    if len(history) < 2:
        _check("provision", invoke(lab, "provision", "--env", env_name))
        for _ in range(2 - len(history)):
            _deploy(lab, env_name)
    elif mixed:
        _deploy(lab, env_name)


def _current_versions(lab: BenchLab) -> dict[str, str]:
    versions = {}
    for pool in ("blue", "green"):
        out = ssh(lab, f"{pool}1", "cat /srv/app/release.json")
        versions[pool] = json.loads(out)["version"]
    return versions


def part_flip(lab: BenchLab, repeats: int) -> dict[str, Any]:
    """Flip with the Runtime API directly, under a polling client; flip back each time."""
    versions = _current_versions(lab)
    start_pool = live_pool(lab)
    api_ms: list[float] = []
    client_ms: list[float] = []
    failed = 0
    misses = 0
    lb_runtime(lab, f"show map {POOL_MAP}")  # open the SSH master first
    with TrafficProbe(lab.lb_address, LB_PORT, workers=4, max_seconds=120,
                      max_requests=200_000) as probe:
        probe.wait_for(20)
        pool = start_pool
        for _ in range(repeats * 2):
            target = "green" if pool == "blue" else "blue"
            issued = time.monotonic()
            out = ssh(lab, "lb1", f"a=$(date +%s%N); echo 'set map {POOL_MAP} active "
                                  f"be_{target}' | socat stdio {SOCKET}; "
                                  "b=$(date +%s%N); echo $((b-a))")
            api_ms.append(int(out.strip().splitlines()[-1]) / 1e6)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:  # poll until 20 new responses in a row
                tail = [s for s in list(probe.result.samples) if s.at >= issued]
                if len(tail) >= 20 and all(s.version == versions[target] for s in tail[-20:]):
                    break
                time.sleep(0.02)
            samples = [(s.at, s.status == 200 and s.version == versions[target])
                       for s in list(probe.result.samples)]
            latency = bench.flip_latency_s(samples, issued)
            if latency is None:
                misses += 1
            else:
                client_ms.append(latency * 1000)
            pool = target
    result = probe.result
    failed = len(result.failures)
    if live_pool(lab) != start_pool:
        raise RuntimeError("flip benchmark left the map on the wrong pool")
    return {"api_ms": bench.describe(api_ms), "client_ms": bench.describe(client_ms),
            "flips": repeats * 2, "misses": misses, "requests": result.total, "failed": failed,
            "note": "client_ms starts before the SSH call that runs socat on the LB, so it "
                    "includes one SSH round trip over a persistent master"}


def _profile_env(path: Path) -> dict[str, str]:
    return {"ANSIBLE_CALLBACKS_ENABLED": "turnout_profile", "TURNOUT_PROFILE_FILE": str(path)}


def _read_profile(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _traffic_moved_s(lab: BenchLab, env_name: str, timed: Timed) -> float | None:
    """Seconds from the rollback process's start to the instant its manifest entry records
    traffic on the old pool (``traffic_moved_at``: the last LB's map moved). The lab's LBs
    share the controller's kernel clock, so the two clocks agree."""
    history = _history(lab, env_name)
    last = history[-1] if history else {}
    if last.get("action") != "rollback":
        raise RuntimeError(f"the manifest's last entry is not this rollback: {last}")
    return bench.seconds_after(timed.started_at, last.get("traffic_moved_at"))


def part_rollback(lab: BenchLab, env_name: str, repeats: int, workdir: Path) -> dict[str, Any]:
    """``invoke rollback`` timed ``repeats`` times. A rollback goes to the release live before
    the current one, so a second one in a row would go further back (to a pool that no longer
    holds it, refused): each repeat after the first deploys a new release first, unmeasured."""
    seconds = []
    moved = []
    profile: list[dict[str, Any]] = []
    for index in range(repeats):
        if index:
            _deploy(lab, env_name)
        profile_file = workdir / f"rollback-{index}.jsonl"
        timed = _check("invoke rollback", invoke(lab, "rollback", "--env", env_name,
                                                 env=_profile_env(profile_file)))
        seconds.append(timed.seconds)
        moved.append(_traffic_moved_s(lab, env_name, timed))
        if index == 0:
            profile = _read_profile(profile_file)
    return {"invoke_s": bench.describe(seconds), "runs": seconds,
            "traffic_moved_s": bench.describe(m for m in moved if m is not None),
            "traffic_moved_runs": moved,
            "ansible_tasks_s": bench.profile_total(profile),
            "profile_top": bench.top_tasks(profile, 8)}


def part_load(lab: BenchLab, env_name: str, workdir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"deploy": {}, "rollback": {}}
    profile_file = workdir / "deploy-under-load.jsonl"
    with load(lab, result["deploy"]):
        version, timed = _deploy(lab, env_name, env=_profile_env(profile_file))
    result["deploy"].update({"seconds": timed.seconds, "version": version,
                             "profile_top": bench.top_tasks(_read_profile(profile_file), 8)})
    with load(lab, result["rollback"]):
        timed = _check("invoke rollback", invoke(lab, "rollback", "--env", env_name))
    result["rollback"]["seconds"] = timed.seconds
    result["rollback"]["traffic_moved_s"] = _traffic_moved_s(lab, env_name, timed)
    return result


def part_overhead(lab: BenchLab, env_name: str) -> dict[str, Any]:
    _, via_invoke = _deploy(lab, env_name)
    version = next(lab.versions)
    art = _artifact_vars(version)
    bare = _check("ansible-playbook deploy.yml", playbook(
        lab, env_name, REPO / "playbooks" / "deploy.yml",
        {"turnout_version": version, "turnout_artifact": art["bench_artifact"],
         "turnout_artifact_sha256": art["bench_sha256"]}))
    return {"invoke_s": via_invoke.seconds, "playbook_s": bare.seconds}


TUNING_VARIANTS: dict[str, dict[str, str]] = {
    "no pipelining": {"ANSIBLE_PIPELINING": "False"},
    "no ControlPersist": {"ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ServerAliveInterval=10"},
    "forks 5 (ansible default)": {"ANSIBLE_FORKS": "5"},
}


def _mitogen_env() -> dict[str, str] | None:
    """Mitogen's strategy, when it is installed in this venv (optional, never locked)."""
    try:
        import ansible_mitogen  # type: ignore[import-not-found]
    except ImportError:
        return None
    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear"}


def part_tuning(lab: BenchLab, env_name: str, tuned_s: float | None) -> dict[str, Any]:
    """Bare ansible-playbook deploys with one tuning switched off at a time; "tuned" is the
    repository's ansible.cfg (pipelining, ControlPersist 60s, forks 25), from the overhead part
    when it ran."""
    variants: dict[str, Any] = {}
    if tuned_s is None:
        version = next(lab.versions)
        art = _artifact_vars(version)
        tuned_s = _check("ansible-playbook deploy.yml", playbook(
            lab, env_name, REPO / "playbooks" / "deploy.yml",
            {"turnout_version": version, "turnout_artifact": art["bench_artifact"],
             "turnout_artifact_sha256": art["bench_sha256"]})).seconds
    variants["tuned"] = {"seconds": tuned_s, "rc": 0, "env": {}}
    chosen = dict(TUNING_VARIANTS)
    mitogen = _mitogen_env()
    if mitogen:
        chosen["mitogen (tuned + mitogen_linear)"] = mitogen
    for name, env in chosen.items():
        version = next(lab.versions)
        art = _artifact_vars(version)
        timed = playbook(lab, env_name, REPO / "playbooks" / "deploy.yml",
                         {"turnout_version": version, "turnout_artifact": art["bench_artifact"],
                          "turnout_artifact_sha256": art["bench_sha256"]}, env=env)
        variants[name] = {"seconds": timed.seconds, "rc": timed.rc, "env": env}
        if timed.rc != 0:
            variants[name]["output"] = timed.output[-1200:]
        say(f"tuning: {name}: {timed.seconds}s (rc {timed.rc})")
    gather = _timed([str(BIN / "ansible"), "-i", str(lab.hosts_file(env_name)), "all",
                     "-m", "ansible.builtin.setup"],
                    {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    return {"variants": variants, "fact_gathering_all_hosts_s": gather.seconds, "notes": [
        "no turnout play gathers facts (gathering = explicit, gather_facts: false); "
        f"one `setup` over the fleet costs {gather.seconds} s, which every deploy saves; "
        "with no facts gathered, fact caching has nothing to cache"]}


def part_baselines(lab: BenchLab, env_name: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name in ("inplace", "rolling"):
        pool = live_pool(lab)
        version = next(lab.versions)
        entry: dict[str, Any] = {"pool": pool, "version": version}
        with load(lab, entry):
            timed = playbook(lab, env_name, BASELINES / f"{name}.yml",
                             {"bench_pool": pool, **_artifact_vars(version)})
        entry.update({"seconds": timed.seconds, "rc": timed.rc})
        if timed.rc != 0:
            entry["output"] = timed.output[-1500:]
        result[name] = entry
        say(f"baseline {name}: {timed.seconds}s, {entry['load']['failed']} failed requests")
    return result


# --- outputs --------------------------------------------------------------------------------

def write_plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = bench.plot_data(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    scaling = data["scaling"]
    left.plot(scaling["hosts"], scaling["seconds"], marker="o")
    left.set_xlabel("app hosts per pool")
    left.set_ylabel("blue-green deploy wall time (s)")
    left.set_title("turnout deploy vs fleet size")
    left.set_ylim(bottom=0)
    left.grid(alpha=0.3)
    methods = data["methods"]
    if methods:
        labels = [m["label"] for m in methods]
        bars = right.bar(labels, [m["seconds"] for m in methods],
                         color=["tab:green", "tab:red", "tab:orange"][:len(methods)])
        for bar, method in zip(bars, methods, strict=True):
            right.annotate(f"{method['failed']} failed", (bar.get_x() + bar.get_width() / 2,
                                                         bar.get_height()),
                           ha="center", va="bottom", fontsize=9)
        right.set_ylabel("wall time under load (s)")
        right.set_title(f"upgrade of {max(scaling['hosts'] or [0])} live hosts")
    fig.suptitle(f"turnout bench {results.get('started_at', '')} "
                 f"(load avg {results['machine'].get('loadavg_start')})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write(results: dict[str, Any], stem: Path, plot: bool) -> None:
    """results -> <stem>.json and .md (and .png); derived ratios and targets recomputed."""
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    results["derived"] = bench.derived(results)
    results["targets"] = [vars(t) for t in bench.evaluate_targets(results)]
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(bench.render_markdown(results))
    if plot:
        try:
            write_plot(results, stem.with_suffix(".png"))
        except Exception as exc:  # a plot must never lose the measurements
            say(f"plot not written: {exc}")


def _machine() -> dict[str, Any]:
    import ansible.release

    return {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "ansible_core": ansible.release.__version__,
            "kernel": platform.release(), "load_tool": shutil.which("hey") and "hey"}


def run(parts: list[str], quick: bool, name: str, subnet: str, sizes: list[int] | None = None,
        out_dir: Path = RESULTS, runs: int | None = None,
        command: str = "", on_lab: Callable[[BenchLab], None] | None = None) -> Path:
    """Run the parts on a freshly booted lab; write <date>.json/.md/.png; return the JSON."""
    unknown = [p for p in parts if p not in bench.PARTS]
    if unknown:
        raise InputError(f"unknown benchmark part(s) {', '.join(unknown)}: "
                         f"choose from {', '.join(bench.PARTS)}")
    if not shutil.which("hey"):
        raise InputError("hey (the load generator) is missing: run 'make deps'")
    fleet.require_root()
    sizes = sorted(set(sizes or (bench.QUICK_SIZES if quick else bench.FULL_SIZES)))
    started = datetime.now(UTC)
    results = bench.new_results(started, quick, parts, sizes, _machine())
    results["command"] = command
    stem = out_dir / bench.results_name(started, quick)
    workdir = Path(tempfile.mkdtemp(prefix="turnout-bench-"))
    lab = boot(name, subnet, max(sizes), workdir)
    lab.versions = _versions(started.strftime("%H%M%S"))
    try:
        if on_lab:
            on_lab(lab)
        big = _write_subset(lab, max(sizes))
        if "deploy_scaling" in parts:
            results["deploy_scaling"] = part_deploy_scaling(
                lab, sizes, runs or (1 if quick else SCALING_RUNS), workdir)
            results["scaling_model"] = bench.scaling_model(results["deploy_scaling"],
                                                           os.cpu_count() or 1)
            _write(results, stem, plot=False)
        _ensure_both_pools(lab, big, mixed="deploy_scaling" in parts and len(sizes) > 1)
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("flip", lambda: part_flip(lab, 1 if quick else FLIP_REPEATS)),
            ("rollback", lambda: part_rollback(lab, big, 1 if quick else 2, workdir)),
            ("load", lambda: part_load(lab, big, workdir)),
            ("overhead", lambda: part_overhead(lab, big)),
            ("tuning", lambda: part_tuning(lab, big, (results.get("overhead") or {})
                                           .get("playbook_s"))),
            ("baselines", lambda: part_baselines(lab, big)),
        ]
        for part, action in steps:
            if part in parts:
                say(f"{part} ...")
                results[part] = action()
                results.setdefault("loadavg", {})[part] = [round(x, 2) for x in os.getloadavg()]
                _write(results, stem, plot=False)  # a stopped run keeps what it measured
    finally:
        _write(results, stem, plot=True)
        if os.environ.get("TURNOUT_KEEP_LAB") != "1":
            fleet.down(lab.config)
        shutil.rmtree(workdir, ignore_errors=True)
    return stem.with_suffix(".json")
