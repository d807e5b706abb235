"""Run the randomized operator drill on a lab: the steps src/turnout/chaos.py draws, as real
commands and real faults, under fixed-rate load through every LB, judged after every step.

Each command runs the way an operator runs it (``python -m invoke … `` in the checkout, its own
process group, output piped as on Jenkins), so a SIGKILL hits the controller exactly as a
killed terminal or CI agent would. Faults go through the lab itself (systemctl on the LB,
nspawn power off/on, the manifest file beside the inventory).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from turnout import chaos, cli, fleetlock
from turnout.chaos import Step, StepResult
from turnout.lab import fleet as lab_fleet
from turnout.lab.config import LabConfig, ssh_options
from turnout.probe import ProbeResult, TrafficProbe

LB_PORT = 80
GOOD = tuple(f"{n}.0.0-chaos" for n in range(1, 7))
BROKEN = {kind: f"9.{i}.0-chaos-{kind}" for i, kind in enumerate(chaos.BROKEN_VARIANTS, 1)}
COMMAND_TIMEOUT_S = 900
# the inventory vars the drill runs with: short canary watch (the canary step stops a host in it)
CHAOS_VARS = {"turnout_canary_watch_s": 20}
# the plain progress line that says a run's smoke test passed and it moved traffic: from here a
# killed run's release has gone live through the normal path
FLIP_MARKERS = (" flipped (",)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Command:
    argv: list[str]
    log: Path
    proc: subprocess.Popen[str]
    started: float = field(default_factory=time.monotonic)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Drill:
    """One lab, one env, one seed: set up, run the steps, judge, write results."""

    def __init__(self, config: LabConfig, inventories: Path, env: str, seed: int,
                 workdir: Path, say: Callable[[str], None] = print) -> None:
        self.config, self.inventories, self.env, self.seed = config, inventories, env, seed
        self.env_dir = inventories / env
        self.workdir = workdir
        self.say = say
        self.lbs = [h.name for h in config.hosts() if h.name.startswith("lb")]
        self.app_hosts = [h.name for h in config.hosts() if not h.name.startswith("lb")]
        self.proven: set[str] = set()
        self.broken = set(BROKEN.values())
        self.durations: dict[str, float] = {}
        self.drift_by: int | None = None
        self.powered_off: str | None = None
        self.powered_off_at: int | None = None  # the step that powered it off
        self.commands_run = 0

    # ------------------------------------------------------------ the lab

    def ssh(self, host: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        address = self.config.host(host).address
        return subprocess.run(["ssh", *ssh_options(self.config), f"root@{address}", command],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def lb_pools(self) -> dict[str, str]:
        """LB -> the pool its runtime map routes to (waits for an LB that is restarting)."""
        pools = {}
        for lb in self.lbs:
            deadline = time.monotonic() + 60
            while True:
                out = self.ssh(lb, "echo 'show map /etc/haproxy/pool.map' | "
                                   "socat stdio /run/haproxy/admin.sock")
                routes = [line.split()[-1] for line in out.stdout.splitlines()
                          if len(line.split()) == 3 and line.split()[1] == "active"]
                if out.returncode == 0 and routes:
                    pools[lb] = routes[0].removeprefix("be_")
                    break
                if time.monotonic() > deadline:
                    pools[lb] = f"unreadable ({out.stderr.strip()[:80]})"
                    break
                time.sleep(0.5)
        return pools

    def lock(self) -> str:
        held = []
        for lb in self.lbs:
            out = self.ssh(lb, "cat /var/lib/turnout/deploy.lock 2>/dev/null || true")
            if out.stdout.strip():
                held.append(f"{lb}: {out.stdout.strip()}")
        return "; ".join(held)

    def stale_lock(self, lock: str) -> bool:
        """Every LB's lock names a process of this controller that is gone (a killed run)."""
        for part in lock.split("; "):
            try:
                holder = json.loads(part.split(": ", 1)[1])
            except (IndexError, ValueError):
                return False
            if not isinstance(holder, dict) or not fleetlock.holder_is_dead(
                    holder, fleetlock.controller_identity()):
                return False
        return True

    def manifest(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load((self.env_dir / "manifest.yml").read_text())
        except (OSError, yaml.YAMLError):
            return {}
        return data if isinstance(data, dict) else {}

    def live(self) -> tuple[str, str]:
        data = self.manifest()
        pool = data.get("live_pool") or ""
        return pool, ((data.get("pools") or {}).get(pool) or {}).get("version") or ""

    def went_live(self) -> set[str]:
        """Releases the manifest's history records as moved live after their smoke test."""
        versions = set()
        for entry in self.manifest().get("history") or []:
            if entry.get("action") not in ("deploy", "promote", "rollback"):
                continue
            moved = entry.get("result") in ("success", "flipped_back") or (
                entry.get("result") == "failed" and entry.get("phase") in ("flip", "verify"))
            version = (entry.get("to") or {}).get("version")
            if moved and version:
                versions.add(version)
        return versions

    def state(self) -> dict[str, Any]:
        pool, version = self.live()
        hosts = {}
        for host in self.app_hosts:
            if host == self.powered_off:
                hosts[host] = "powered off"
                continue
            out = self.ssh(host, "readlink /srv/app/current 2>/dev/null || true", timeout=15)
            hosts[host] = Path(out.stdout.strip()).name or "-"
        return {"manifest_live": f"{pool} {version}", "lbs": self.lb_pools(),
                "hosts": hosts, "lock": self.lock()}

    # ------------------------------------------------------------ commands

    def start(self, *args: str) -> Command:
        self.commands_run += 1
        log = self.workdir / f"cmd-{self.commands_run:04d}-{args[0]}.log"
        argv = [sys.executable, "-m", "invoke", *args]
        env = {**os.environ, "TURNOUT_INVENTORIES": str(self.inventories),
               "TURNOUT_PROGRESS": "plain"}
        with log.open("w") as out:
            proc = subprocess.Popen(argv, cwd=cli.REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
        return Command(argv, log, proc)

    def finish(self, command: Command, record: list[dict[str, Any]]) -> int:
        try:
            code = command.proc.wait(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(command.proc.pid, signal.SIGKILL)
            code = command.proc.wait(timeout=30)
        seconds = time.monotonic() - command.started
        self.durations[command.argv[3]] = seconds
        self._note_flip(command)
        record.append({"argv": command.argv[3:], "exit": code, "seconds": round(seconds, 1),
                       "log": command.log.name,
                       "said": _last_error(command.output())})
        return code

    def run(self, record: list[dict[str, Any]], *args: str) -> int:
        return self.finish(self.start(*args), record)

    def kill(self, command: Command, record: list[dict[str, Any]]) -> None:
        os.killpg(command.proc.pid, signal.SIGKILL)
        command.proc.wait(timeout=30)
        self._note_flip(command)
        record.append({"argv": command.argv[3:], "exit": "SIGKILL",
                       "seconds": round(time.monotonic() - command.started, 1),
                       "log": command.log.name})

    def _note_flip(self, command: Command) -> None:
        """A run whose output shows it reached the flip had passed its smoke test: the release
        it deploys went live through the normal path even if the run is then killed."""
        out = command.output()
        if command.argv[3] == "deploy" and any(marker in out for marker in FLIP_MARKERS):
            version = command.argv[command.argv.index("--version") + 1]
            self.proven.add(version)

    # ------------------------------------------------------------ setup

    def setup(self) -> None:
        """Build the releases, provision, and deploy the first good one (checked)."""
        record: list[dict[str, Any]] = []
        for version in GOOD:
            self._check(self.run(record, "build", "--version", version), record)
        for kind, version in BROKEN.items():
            self._check(self.run(record, "build", "--version", version, "--broken", kind),
                        record)
        vars_file = self.env_dir / "group_vars" / "lb.yml"
        if (self.env_dir / "group_vars").is_symlink() or vars_file.exists():
            raise chaos.ChaosError(f"the chaos env needs its own group_vars directory without "
                                   f"lb.yml (it writes {vars_file})")
        vars_file.parent.mkdir(parents=True, exist_ok=True)
        vars_file.write_text(yaml.safe_dump(CHAOS_VARS))
        self._check(self.run(record, "provision", "--env", self.env), record)
        self._check(self.run(record, "deploy", "--env", self.env, "--version", GOOD[0]), record)
        self.proven |= self.went_live()

    @staticmethod
    def _check(code: int, record: list[dict[str, Any]]) -> None:
        if code != 0:
            raise chaos.ChaosError(f"chaos set-up failed: {record[-1]}")

    # ------------------------------------------------------------ steps

    def other_good(self, number: int) -> str:
        _, live = self.live()
        return chaos.pick([v for v in GOOD if v != live], number)

    def step(self, step: Step) -> StepResult:
        record: list[dict[str, Any]] = []
        back = self.power_back() if chaos.power_back_due(self.powered_off_at, step.index) else None
        if back:
            record.append({"fault": f"power on {back} (off for {chaos.POWER_OFF_STEPS} steps)"})
        before = self.state()
        live_before = before["manifest_live"]
        probes = [TrafficProbe(self.config.host(lb).address, LB_PORT, workers=2,
                               interval_s=0.05, max_seconds=COMMAND_TIMEOUT_S * 2)
                  for lb in self.lbs]
        started = time.monotonic()
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.wait_for(5)
        try:
            getattr(self, f"_{step.kind}")(step, record)
        finally:
            for probe in probes:
                probe.wait_for(probe.result.total + 10, timeout_s=60)
                probe.stop()
        seconds = time.monotonic() - started
        self.proven |= self.went_live()
        served = [_served(lb, probe.result) for lb, probe in zip(self.lbs, probes, strict=True)]
        violations, causes = chaos.judge_traffic(
            step, served, self.proven, self.broken, step.kind in chaos.RESTART_STEPS)
        status = self.run_status()
        if step.kind in chaos.DRIFT_CAUSES or self.powered_off or back:
            self.drift_by = step.index
        if status[0] == 0:
            self.drift_by = None
        after = self.state()
        lock = after["lock"]
        if lock and self.stale_lock(lock):
            # a SIGKILLed controller cannot release its lock; the next command here takes it
            # over at once (its holder is dead on this controller) — judged below when one
            # is refused for it
            after["lock"] = "left by the SIGKILLed run (dead on this controller)"
            lock = ""
        violations += chaos.judge_fleet(
            step, pools=after["lbs"], status_code=status[0], status_says=status[1],
            drift_explained_by=self.drift_by, lock=lock, command_running=False)
        violations += [chaos.Violation(step.index, f"{' '.join(c['argv'])} was refused for a "
                                                   f"lock with no other command running: "
                                                   f"{c['said']}")
                       for c in record if "deploy lock held by" in str(c.get("said"))]
        return StepResult(step=step, commands=record, seconds=round(seconds, 1),
                          live_before=live_before, live_after=after["manifest_live"],
                          requests=sum(p.result.total for p in probes),
                          failures_by_cause=dict(causes), status=status[0],
                          violations=[str(v) for v in violations],
                          state_before=before, state_after=after)

    def run_status(self) -> tuple[int, str]:
        command = self.start("status", "--env", self.env)
        code = command.proc.wait(timeout=300)
        out = command.output()
        drift = [line.strip() for line in out.splitlines() if line.strip().startswith("drift:")]
        return code, "; ".join(drift) if drift else " ".join(out.split())[-600:]

    def _deploy(self, step: Step, record: list) -> None:
        self.run(record, "deploy", "--env", self.env, "--version",
                 self.other_good(step.args["pick"]))

    def _deploy_broken(self, step: Step, record: list) -> None:
        code = self.run(record, "deploy", "--env", self.env, "--version",
                        BROKEN[step.args["broken"]])
        if code == 0:
            record[-1]["unexpected"] = "a broken release's deploy exited 0"

    def _deploy_approval(self, step: Step, record: list) -> None:
        code = self.run(record, "deploy", "--env", self.env, "--version",
                        self.other_good(step.args["pick"]), "--approval")
        if code == 0 and step.args["promote"]:
            self.run(record, "promote", "--env", self.env)

    def _canary_host_dies(self, step: Step, record: list) -> None:
        pool, _ = self.live()
        target = "green" if pool == "blue" else "blue"
        victims = [h for h in self.app_hosts if h.startswith(target) and h != self.powered_off]
        victim = chaos.pick(victims, step.args["host"]) if victims else None
        command = self.start("deploy", "--env", self.env, "--version",
                             self.other_good(step.args["pick"]), "--canary", "50")
        stopped = False
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while command.proc.poll() is None and time.monotonic() < deadline and victim:
            out = self.ssh(self.lbs[0], "echo 'show map /etc/haproxy/pool.map' | "
                                        "socat stdio /run/haproxy/admin.sock")
            if "canary_pct 50" in out.stdout:
                self.ssh(victim, "systemctl stop app.service")
                stopped = True
                break
            time.sleep(0.3)
        self.finish(command, record)
        record[-1]["stopped"] = victim if stopped else None
        if stopped:
            self.ssh(victim, "systemctl start app.service")

    def _rollback(self, step: Step, record: list) -> None:
        self.run(record, "rollback", "--env", self.env)

    def _rollback_to(self, step: Step, record: list) -> None:
        _, live = self.live()
        options = sorted(v for v in self.went_live() if v != live and v in GOOD)
        if not options:
            record.append({"skipped": "no other release has gone live yet"})
            return
        self.run(record, "rollback", "--env", self.env, "--to", chaos.pick(options,
                                                                           step.args["pick"]))

    def _provision(self, step: Step, record: list) -> None:
        self.run(record, "provision", "--env", self.env)

    def _kill(self, step: Step, record: list) -> None:
        name = step.args["command"]
        args = {"deploy": ("deploy", "--env", self.env, "--version",
                           self.other_good(step.args["pick"])),
                "rollback": ("rollback", "--env", self.env),
                "provision": ("provision", "--env", self.env),
                "promote": ("promote", "--env", self.env)}[name]
        command = self.start(*args)
        delay = step.args["at"] * self.durations.get(name, 20.0)
        deadline = time.monotonic() + delay
        while command.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if command.proc.poll() is None:
            self.kill(command, record)
        else:
            self.finish(command, record)
            record[-1]["note"] = "finished before the kill"
        if step.args["rerun"]:
            self.run(record, *args)

    def _haproxy_reload(self, step: Step, record: list) -> None:
        lb = chaos.pick(self.lbs, step.args["lb"])
        out = self.ssh(lb, "systemctl reload haproxy")
        record.append({"fault": f"systemctl reload haproxy on {lb}", "exit": out.returncode})

    def _haproxy_restart(self, step: Step, record: list) -> None:
        lb = chaos.pick(self.lbs, step.args["lb"])
        out = self.ssh(lb, "systemctl restart haproxy")
        record.append({"fault": f"systemctl restart haproxy on {lb}", "exit": out.returncode})

    def _host_power_cycle(self, step: Step, record: list) -> None:
        """Power an idle host off, so the next commands meet a missing host (the live pool keeps
        serving); it comes back at the next draw of this kind or after POWER_OFF_STEPS steps."""
        back = self.power_back()
        if back:
            record.append({"fault": f"power on {back}"})
            return
        pool, _ = self.live()
        idle = [h for h in self.app_hosts if not h.startswith(pool or "-")]
        victim = chaos.pick(idle, step.args["host"])
        lab_fleet.power_off(self.config, victim)
        self.powered_off, self.powered_off_at = victim, step.index
        record.append({"fault": f"power off {victim} (idle)"})

    def _manifest_lost(self, step: Step, record: list) -> None:
        path = self.env_dir / "manifest.yml"
        path.unlink(missing_ok=True)
        record.append({"fault": "manifest deleted"})
        self.run(record, "reconcile", "--env", self.env)

    def _manifest_corrupt(self, step: Step, record: list) -> None:
        path = self.env_dir / "manifest.yml"
        path.write_text("schema_version: 1\npools: [this is: not: valid\n")
        record.append({"fault": "manifest corrupted"})
        code = self.run(record, "deploy", "--env", self.env, "--version", GOOD[0])
        if code != 2:
            record[-1]["unexpected"] = "a deploy over a corrupt manifest was not refused (2)"
        self.run(record, "reconcile", "--env", self.env)

    def power_back(self) -> str | None:
        """Power the host this drill powered off back on; the host, or None if none was off."""
        back = self.powered_off
        if back:
            lab_fleet.power_on(self.config, back)
            self.powered_off = self.powered_off_at = None
        return back


def _served(lb: str, result: ProbeResult) -> chaos.Served:
    failures: Counter[str] = Counter()
    for sample in result.failures:
        failures[sample.error.split(":")[0] if sample.status == 0 else f"HTTP {sample.status}"] \
            += 1
    return chaos.Served(lb, Counter({v: n for v, n in result.versions.items() if v}), failures)


def _last_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("turnout: ")]
    return lines[-1][:300] if lines else ""


def run(config: LabConfig, inventories: Path, env: str, seed: int, steps: int,
        weights: dict[str, int] | None, workdir: Path, say: Callable[[str], None] = print,
        stop_at_first: bool = False, then: tuple[str, ...] = ()) -> dict[str, Any]:
    """Draw, set up, run every step, judge; the run's summary with every step's result.

    ``then``: step kinds run after the drawn ones (a scripted drill of a sequence the drawn
    ones once found), with arguments drawn from the same seed."""
    drawn = chaos.draw(seed, steps, weights)
    drawn += chaos.then_steps(seed, steps, then)
    workdir.mkdir(parents=True, exist_ok=True)
    drill = Drill(config, inventories, env, seed, workdir, say)
    started = time.monotonic()
    say(f"chaos: seed {seed}, {steps} steps: " + ", ".join(s.kind for s in drawn))
    drill.setup()
    results: list[StepResult] = []
    try:
        for step in drawn:
            result = drill.step(step)
            results.append(result)
            codes = ", ".join(str(c.get("exit", c.get("fault", c.get("skipped", "?"))))
                              for c in result.commands)
            say(f"chaos: {step.describe()}: [{codes}] {result.seconds:.0f}s, "
                f"{result.requests} requests, live {result.live_after}, status {result.status}"
                + (f", VIOLATIONS {result.violations}" if result.violations else ""))
            if result.violations and stop_at_first:
                break
    finally:
        drill.power_back()
    summary = chaos.summarize(seed, results, time.monotonic() - started)
    summary["sequence"] = [s.describe() for s in drawn]
    summary["results"] = [r.as_dict() for r in results]
    summary["lab"] = {"name": config.name, "lbs": len(drill.lbs), "app_hosts": config.app_hosts}
    return summary


def write_results(runs: list[dict[str, Any]], out_dir: Path) -> tuple[Path, Path]:
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"chaos-{when}"
    machine = f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    data = {"generated_at": _now(), "machine": machine, "runs": runs}
    json_path, md_path = base.with_suffix(".json"), base.with_suffix(".md")
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(json_path)
    tmp = md_path.with_suffix(".md.tmp")
    tmp.write_text(chaos.render_markdown(runs, when, machine))
    tmp.replace(md_path)
    return json_path, md_path


RESULTS = cli.REPO_ROOT / "bench" / "results"
WORK = cli.REPO_ROOT / ".cache" / "chaos"


def on_lab(name: str, subnet: str, env: str, seeds: list[int], steps: int,
           weights: dict[str, int] | None, out_dir: Path | None = RESULTS, keep: bool = False,
           say: Callable[[str], None] = print, then: tuple[str, ...] = ()
           ) -> list[dict[str, Any]]:
    """Boot a lab (2 LBs, 2 hosts per pool) with its own inventory, run one drill per seed on a
    freshly provisioned fleet, write the results (unless out_dir is None), bring it down."""
    config = LabConfig(name=name, subnet=subnet, app_hosts=2, lbs=2)
    runs = []
    try:
        for seed in seeds:
            work = WORK / f"{name}-{seed}"
            inventories = work / "inventories"
            env_dir = inventories / env
            lab_fleet.down(config)
            if work.exists():
                subprocess.run(["rm", "-rf", str(work)], check=True)
            (env_dir / "group_vars").mkdir(parents=True)
            (env_dir / "group_vars" / "all.yml").write_text(
                (cli.REPO_ROOT / "inventories" / "lab" / "group_vars" / "all.yml").read_text())
            lab_fleet.up(config, env_dir)
            runs.append(run(config, inventories, env, seed, steps, weights, work / "logs", say,
                            then=then))
            if out_dir is not None:
                json_path, _ = write_results(runs, out_dir)
                say(f"chaos: wrote {json_path} (+ .md)")
    finally:
        if not keep:
            lab_fleet.down(config)
    return runs
