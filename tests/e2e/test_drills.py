"""Failure drills on the lab: inject a fault into a real deploy, and prove with a concurrent
client counting every response through the LB that only releases that passed their smoke test
were ever served, and that the manifest, the hosts and the LB end up agreeing.

Each drill prints a DRILL line (injected fault, exit codes, responses, failures, manifest
state) so a run's -s output is the drill log. Tests build on one fleet, in order.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, invoke
from tests.e2e.test_bluegreen import LB_PORT, get_json, lb_address, lb_versions, snapshot, ssh
from turnout.lab import fleet as lab_fleet
from turnout.probe import ProbeResult, TrafficProbe

pytestmark = pytest.mark.e2e

D = [f"{n}.0.0-drill" for n in range(1, 10)]  # D[0] .. D[8], all healthy
BROKEN = "9.9.9-drill"
APP_HOSTS = ("blue1", "blue2", "green1", "green2")


def say(line: str) -> None:
    print(f"DRILL {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def drills(lab):
    """A provisioned lab with the drill artifacts built and D[0] live."""
    for version in D:
        invoke("build", "--version", version, check=True)
    invoke("build", "--version", BROKEN, "--broken", "unhealthy", check=True)
    invoke("provision", "--env", lab.env_name, env=lab.environ, check=True)
    invoke("deploy", "--env", lab.env_name, "--version", D[0], env=lab.environ, check=True)
    return lab


def manifest_of(lab) -> dict:
    return yaml.safe_load((lab.env_dir / "manifest.yml").read_text())


def probe(lab) -> TrafficProbe:
    return TrafficProbe(lb_address(lab), LB_PORT, workers=2, interval_s=0.02, max_seconds=900)


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


def served_only(result: ProbeResult, passing: set[str]) -> None:
    assert result.failures == [], result.summary()
    assert set(result.versions) <= passing, result.summary()


def live_pool(lab) -> str:
    out = ssh(lab, "lb1", "echo 'show map /etc/haproxy/pool.map' | "
              "socat stdio /run/haproxy/admin.sock")
    return "green" if "be_green" in out else "blue"


def lock_file(lab) -> str:
    return ssh(lab, "lb1", "cat /var/lib/turnout/deploy.lock 2>/dev/null || true").strip()


def assert_consistent(lab, version: str) -> None:
    """The LB, the live hosts, the manifest and `invoke status` all say `version`."""
    assert lb_versions(lab) == {version}
    data = manifest_of(lab)
    live = live_pool(lab)
    assert data["live_pool"] == live and data["pools"][live]["version"] == version, data
    status = invoke("status", "--env", lab.env_name, env=lab.environ)
    assert status.returncode == 0, status.stdout + status.stderr
    assert lock_file(lab) == "", "a finished run left its deploy lock"


class Run:
    """`invoke deploy` in its own process group, its stderr in a file we can watch."""

    def __init__(self, lab, version: str, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "deploy", "--env", lab.env_name, "--version",
             version], cwd=REPO, env={**os.environ, **lab.environ}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait(self, timeout: float = 900) -> int:
        return self.proc.wait(timeout=timeout)


# ------------------------------------------------------------------ corrupt manifest

def test_drill_corrupt_manifest_refused_then_reconciled(drills):
    path = drills.env_dir / "manifest.yml"
    good = manifest_of(drills)
    garbage = "schema_version: 1\nenv: labt\npools: [this is: not: valid\n"
    path.write_text(garbage)
    before = snapshot(drills)
    proc = invoke("deploy", "--env", drills.env_name, "--version", D[1], env=drills.environ)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("turnout: error:")]
    assert len(error) == 1 and "manifest" in error[0] and "reconcile" in error[0], proc.stderr
    assert snapshot(drills) == before and path.read_text() == garbage  # not overwritten
    rollback = invoke("rollback", "--env", drills.env_name, env=drills.environ)
    assert rollback.returncode == 2 and path.read_text() == garbage
    fixed = invoke("reconcile", "--env", drills.env_name, env=drills.environ)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    aside = sorted(drills.env_dir.glob("manifest.yml.corrupt-*"))
    assert aside and aside[-1].read_text() == garbage
    data = manifest_of(drills)
    assert data["live_pool"] == good["live_pool"]
    assert data["pools"][good["live_pool"]]["version"] == D[0]
    assert data["history"][-1]["action"] == "reconcile"
    assert invoke("status", "--env", drills.env_name, env=drills.environ).returncode == 0
    say(f"corrupt manifest: deploy exit {proc.returncode}, rollback exit {rollback.returncode}, "
        f"file untouched; reconcile exit 0, set aside as {aside[-1].name}, live "
        f"{data['live_pool']} {D[0]}, status exit 0")


def test_drill_lost_manifest_reconcile_keeps_nothing_but_the_fleet(drills):
    path = drills.env_dir / "manifest.yml"
    saved = path.read_text()
    path.unlink()
    status = invoke("status", "--env", drills.env_name, env=drills.environ)
    assert status.returncode == 3, status.stdout + status.stderr  # drift: manifest says nothing
    fixed = invoke("reconcile", "--env", drills.env_name, env=drills.environ)
    assert fixed.returncode == 0, fixed.stderr
    assert manifest_of(drills)["pools"][live_pool(drills)]["version"] == D[0]
    assert invoke("status", "--env", drills.env_name, env=drills.environ).returncode == 0
    # put the history back for the drills below (reconcile of a readable manifest keeps it)
    path.write_text(saved)
    assert invoke("reconcile", "--env", drills.env_name, env=drills.environ).returncode == 0
    kept = [entry["id"] for entry in yaml.safe_load(saved)["history"]]
    history = manifest_of(drills)["history"]
    assert [entry["id"] for entry in history[:-1]] == kept  # a readable history is kept
    assert history[-1]["action"] == "reconcile"
    say("lost manifest: status exit 3 (drift), reconcile exit 0, status exit 0")


# ------------------------------------------------------------------ the deploy lock

def test_drill_two_deploys_at_once_exactly_one_wins(drills, tmp_path):
    with probe(drills) as traffic:
        traffic.wait_for(20)
        runs = [Run(drills, D[1], tmp_path / "a.log"), Run(drills, D[1], tmp_path / "b.log")]
        codes = sorted(run.wait() for run in runs)
        traffic.wait_for(traffic.result.total + 20)
    assert codes == [0, 2], [run.output()[-2000:] for run in runs]
    loser = next(run for run in runs if run.proc.returncode == 2).output()
    assert "deploy lock held by" in loser and "(run 2026" in loser, loser
    served_only(traffic.result, {D[0], D[1]})
    assert_consistent(drills, D[1])
    say(f"two deploys at once: exit codes {codes}; loser said "
        f"{[line for line in loser.splitlines() if 'deploy lock held' in line][0][:160]!r}; "
        f"{traffic.result.summary()}, failures {len(traffic.result.failures)}")


def test_drill_corrupt_manifest_with_an_idle_host_down_is_reconciled(drills):
    """Found by `invoke chaos --seed 1` (200 steps, step 74): with an idle host powered off,
    reconcile failed on it and left the corrupt manifest, so every later command was refused.
    Now it rebuilds the manifest without that host, says so (exit 3), and a rollback to the
    pool it cannot vouch for is refused; once the host is back, reconcile is clean again.
    After the two deploys above, the idle pool holds the previous release (D[0]) warm."""
    path = drills.env_dir / "manifest.yml"
    live = live_pool(drills)
    idle = "blue" if live == "green" else "green"
    live_version = manifest_of(drills)["pools"][live]["version"]
    victim = idle_hosts(drills)[0]
    lab_fleet.power_off(drills.config, victim)
    try:
        path.write_text("schema_version: 1\npools: [this is: not: valid\n")
        with probe(drills) as traffic:
            traffic.wait_for(20)
            fixed = invoke("reconcile", "--env", drills.env_name, env=drills.environ)
            status = invoke("status", "--env", drills.env_name, env=drills.environ)
            rollback = invoke("rollback", "--env", drills.env_name, env=drills.environ)
            traffic.wait_for(traffic.result.total + 20)
        assert fixed.returncode == 3, fixed.stdout + fixed.stderr
        assert f"except {victim}: unreachable" in fixed.stderr, fixed.stderr
        data = manifest_of(drills)
        assert data["live_pool"] == live and data["pools"][live]["version"] == live_version
        assert data["pools"][idle]["version"] is None, data["pools"][idle]
        assert victim not in data["pools"][idle]["hosts"]
        entry = data["history"][-1]
        assert entry["action"] == "reconcile" and victim in entry["message"], entry
        assert status.returncode == 3 and f"{victim}: host unreachable" in status.stdout, \
            status.stdout + status.stderr
        assert rollback.returncode == 2, rollback.stdout + rollback.stderr
        refusal = rollback.stderr.strip().splitlines()[-1]
        served_only(traffic.result, {live_version})
        assert lb_versions(drills) == {live_version} and lock_file(drills) == ""
    finally:
        lab_fleet.power_on(drills.config, victim)
    again = invoke("reconcile", "--env", drills.env_name, env=drills.environ)
    assert again.returncode == 0, again.stdout + again.stderr
    back = manifest_of(drills)["pools"][idle]
    assert back["version"] == D[0] and set(back["hosts"]) == set(idle_hosts(drills)), back
    say(f"corrupt manifest, idle {victim} powered off: reconcile exit 3 naming it, idle pool "
        f"unknown, status exit 3, rollback exit {rollback.returncode} ({refusal[:160]!r}); "
        f"{traffic.result.summary()}; host back: reconcile exit 0")


def test_drill_lock_held_elsewhere_refused_then_unlocked(drills):
    foreign = {"owner": "jenkins:deploy-42", "run_id": "20261122T000000Z-abc", "action": "deploy",
               "version": "0.0.1", "env": "labt", "controller": "jenkins-agent-7", "pid": 4242,
               "started_at": "2099-01-01T00:00:00Z", "heartbeat_at": "2099-01-01T00:00:00Z"}
    ssh(drills, "lb1", f"echo '{json.dumps(foreign)}' > /var/lib/turnout/deploy.lock")
    before = snapshot(drills)
    proc = invoke("deploy", "--env", drills.env_name, "--version", D[2], env=drills.environ)
    assert proc.returncode == 2 and "jenkins:deploy-42" in proc.stderr, proc.stderr
    bare = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(drills.hosts_file),
         "playbooks/deploy.yml", "-e", f"turnout_version={D[2]}"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert bare.returncode != 0 and "deploy lock held by jenkins:deploy-42" in bare.stdout
    assert snapshot(drills) == before
    unlock = invoke("unlock", "--env", drills.env_name, env=drills.environ)  # stdin: no answer
    assert unlock.returncode == 2 and lock_file(drills) != ""
    unlock = invoke("unlock", "--env", drills.env_name, "--yes", env=drills.environ)
    assert unlock.returncode == 0 and lock_file(drills) == ""
    entry = manifest_of(drills)["history"][-1]
    assert entry["action"] == "unlock" and "jenkins:deploy-42" in entry["message"]
    say("lock held by another controller: invoke deploy exit 2, ansible-playbook exit "
        f"{bare.returncode}, nothing changed; unlock without --yes exit 2, with --yes exit 0, "
        "recorded in history")


# ------------------------------------------------------------------ hosts failing mid-deploy

def idle_hosts(lab) -> list[str]:
    idle = "blue" if live_pool(lab) == "green" else "green"
    return [f"{idle}1", f"{idle}2"]


def test_drill_idle_host_powered_off_mid_stage(drills, tmp_path):
    live_version = manifest_of(drills)["pools"][live_pool(drills)]["version"]
    victim = idle_hosts(drills)[1]
    history = len(manifest_of(drills)["history"])
    with probe(drills) as traffic:
        traffic.wait_for(20)
        run = Run(drills, D[3], tmp_path / "deploy.log")
        # the progress line of the stage phase ("== Stage | stage and activate ...")
        wait_until("the stage play", lambda: "== Stage | stage and activate" in run.output())
        lab_fleet.power_off(drills.config, victim)
        code = run.wait()
        traffic.wait_for(traffic.result.total + 20)
    try:
        assert code == 1, run.output()[-3000:]
        served_only(traffic.result, {live_version})
        data = manifest_of(drills)
        entry = data["history"][-1]
        assert len(data["history"]) == history + 1
        assert entry["result"] == "failed" and entry["phase"] == "stage", entry
        assert victim in entry["message"]
        assert data["pools"][data["live_pool"]]["version"] == live_version
        assert lock_file(drills) == ""
        say(f"idle host {victim} powered off mid-stage: exit {code}; recorded failed/stage; "
            f"{traffic.result.summary()}, failures {len(traffic.result.failures)}; "
            f"live stays {live_version}")
    finally:
        lab_fleet.power_on(drills.config, victim)


def test_drill_idle_host_never_healthy(drills):
    live_version = manifest_of(drills)["pools"][live_pool(drills)]["version"]
    victim = idle_hosts(drills)[0]
    dropin = "/etc/systemd/system/app.service.d/zz-drill.conf"
    ssh(drills, victim, f"mkdir -p {Path(dropin).parent} && printf '[Service]\\n"
        f"Environment=APP_PORT=9\\n' > {dropin} && systemctl daemon-reload")
    try:
        with probe(drills) as traffic:
            traffic.wait_for(20)
            proc = invoke("deploy", "--env", drills.env_name, "--version", D[2],
                          env=drills.environ)
            traffic.wait_for(traffic.result.total + 20)
    finally:
        ssh(drills, victim, f"rm -f {dropin} && systemctl daemon-reload && "
            "systemctl restart app.service")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    served_only(traffic.result, {live_version})
    entry = manifest_of(drills)["history"][-1]
    assert entry["result"] == "failed" and entry["phase"] == "smoke" and victim in entry["message"]
    assert lb_versions(drills) == {live_version}
    say(f"idle host {victim} never healthy (app on the wrong port): exit {proc.returncode}; "
        f"recorded failed/smoke; {traffic.result.summary()}, failures "
        f"{len(traffic.result.failures)}")


def test_drill_lb_unreachable_at_start(drills):
    before = snapshot(drills)
    lab_fleet.power_off(drills.config, "lb1")
    try:
        proc = invoke("deploy", "--env", drills.env_name, "--version", D[2], env=drills.environ,
                      timeout=300)
        bare = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(drills.hosts_file),
             "playbooks/deploy.yml", "-e", f"turnout_version={D[2]}"],
            cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    finally:
        lab_fleet.power_on(drills.config, "lb1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "lb1 unreachable" in proc.stderr and "nothing was changed" in proc.stderr
    assert bare.returncode != 0, bare.stdout
    wait_until("HAProxy back on lb1", lambda: _lb_answers(drills), 60)
    # hosts, LB map and manifest exactly as they were (show map prints the entry's memory
    # address, which a restarted HAProxy changes)
    assert _unaddressed(snapshot(drills)) == _unaddressed(before)
    say(f"LB powered off at the start: invoke exit {proc.returncode}, ansible-playbook exit "
        f"{bare.returncode}; hosts, LB and manifest unchanged after lb1 came back")


def _unaddressed(state: dict[str, str]) -> dict[str, str]:
    return {key: re.sub(r"0x[0-9a-f]+ ", "", value) for key, value in state.items()}


def _lb_answers(lab) -> bool:
    try:
        get_json(f"http://{lb_address(lab)}:{LB_PORT}/version")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ SIGKILL at each phase

def _stage_started(lab, version: str) -> Callable[[], bool]:
    hosts = idle_hosts(lab)
    return lambda: any(version in ssh(lab, h, "ls /srv/app/releases /srv/app/artifacts "
                                              "2>/dev/null || true") for h in hosts)


def _activated(lab, version: str) -> Callable[[], bool]:
    hosts = idle_hosts(lab)

    def check() -> bool:
        try:
            return get_json(f"http://{lab.config.host(hosts[0]).address}:8080/version")[
                "version"] == version
        except OSError:
            return False
    return check


def _flipped(lab, version: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return get_json(f"http://{lb_address(lab)}:{LB_PORT}/version")["version"] == version
        except OSError:
            return False
    return check


@pytest.mark.parametrize(("phase", "version_index"), [
    ("stage", 4), ("smoke", 5), ("after-flip", 6), ("record", 7)])
def test_drill_sigkill_then_rerun_converges(drills, tmp_path, phase, version_index):
    version = D[version_index]
    live_version = manifest_of(drills)["pools"][live_pool(drills)]["version"]
    with probe(drills) as traffic:
        traffic.wait_for(20)
        run = Run(drills, version, tmp_path / "killed.log")
        if phase == "stage":
            wait_until("stage to start", _stage_started(drills, version))
        elif phase == "smoke":
            wait_until("the new release to answer on an idle host", _activated(drills, version))
        elif phase == "after-flip":
            wait_until("the flip", _flipped(drills, version))
        else:
            wait_until("the record play", lambda: "record the run" in run.output())
        run.kill()
        killed_at = traffic.result.total
        after_kill = lb_versions(drills, 5)
        rerun = invoke("deploy", "--env", drills.env_name, "--version", version,
                       env=drills.environ)
        traffic.wait_for(traffic.result.total + 20)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    served_only(traffic.result, {live_version, version})
    assert after_kill <= {live_version, version}
    assert_consistent(drills, version)
    data = manifest_of(drills)
    say(f"SIGKILL during {phase}: LB served {sorted(after_kill)} right after the kill "
        f"({killed_at} responses so far); re-run exit {rerun.returncode}; "
        f"{traffic.result.summary()}, failures {len(traffic.result.failures)}; manifest live "
        f"{data['live_pool']} {version}, last entry {data['history'][-1]['result']}: "
        f"{(data['history'][-1]['message'] or '')[:100]!r}")


# ------------------------------------------------------------------ HAProxy after a flip

# Found a real race: a reload between "set map" and writing the file brought the old pool back,
# and one during the read-back failed the flip. pool_switch now writes the file first and loops
# "set map; show map" until the runtime map agrees.
def test_drill_haproxy_reload_and_restart_right_after_flip(drills, tmp_path):
    version = D[8]
    live_version = manifest_of(drills)["pools"][live_pool(drills)]["version"]
    with probe(drills) as traffic:
        traffic.wait_for(20)
        run = Run(drills, version, tmp_path / "deploy.log")
        wait_until("the flip", _flipped(drills, version))
        ssh(drills, "lb1", "systemctl reload haproxy")
        reload_done = traffic.result.total
        assert run.wait() == 0, run.output()[-3000:]
        traffic.wait_for(traffic.result.total + 20)
    served_only(traffic.result, {live_version, version})
    assert lb_versions(drills) == {version}
    reload_summary = traffic.result.summary()
    # a restart takes HAProxy down for a moment (refused connections are allowed), but it
    # must come back routing to the new pool: the map on disk and the server states agree
    with probe(drills) as traffic:
        traffic.wait_for(20)
        ssh(drills, "lb1", "systemctl restart haproxy")
        wait_until("HAProxy back", lambda: _lb_answers(drills), 60)
        traffic.wait_for(traffic.result.total + 50)
    assert set(traffic.result.versions) - {None} == {version}, traffic.result.summary()
    assert all(s.status == 0 for s in traffic.result.failures), traffic.result.summary()
    assert_consistent(drills, version)
    say(f"HAProxy reloaded right after the flip (at response {reload_done}): {reload_summary}, "
        f"failures 0; restarted: {traffic.result.summary()}, failures "
        f"{len(traffic.result.failures)} (connection refused while it restarted); LB, hosts "
        f"and manifest agree on {version}")
