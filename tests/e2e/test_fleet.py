"""Two load balancers and the fleet's release state, on the lab, under load through both:
deploy, rollback, promote and a canary abort move both LBs or neither; an LB that dies in the
middle of a flip comes back on the pool the flip started from; a controller killed at each
step of a rollback or a promote leaves traffic on a healthy pool and the re-run converges; a
rollback never puts a release live that did not go live before.

Tests in this module run in order on one fleet (the session lab, environment 'labf').
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, invoke
from tests.e2e.test_bluegreen import get_json, ssh
from turnout.lab import fleet as lab_fleet
from turnout.probe import TrafficProbe

pytestmark = pytest.mark.e2e

ENV = "labf"
F = [f"{n}.0.0-fleet" for n in range(1, 8)]
LBS = ("lb1", "lb2")
STATE = "/var/lib/turnout/fleet-state.json"


def say(line: str) -> None:
    print(f"FLEET {line}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def fleet(lab):
    """The session lab (two LBs) as environment 'labf', provisioned, F[0] live."""
    assert [h.name for h in lab.config.hosts() if h.group == "lb"] == list(LBS)
    for version in F:
        invoke("build", "--version", version, check=True)
    env_dir = lab.inventories / ENV
    (env_dir / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(lab.hosts_file, env_dir / "hosts.yml")
    (env_dir / "group_vars" / "all" / "main.yml").symlink_to(
        REPO / "inventories" / "lab" / "group_vars" / "all.yml")
    set_vars(lab, {})
    invoke("provision", "--env", ENV, env=lab.environ, check=True)
    run("deploy", lab, "--version", F[0], check=True)
    return lab


def set_vars(lab, values: dict) -> None:
    path = lab.inventories / ENV / "group_vars" / "all" / "test.yml"
    path.write_text("---\n" + (yaml.safe_dump(values) if values else "{}\n"))


def run(command: str, lab, *args: str, check: bool = False):
    return invoke(command, "--env", ENV, *args, env=lab.environ, check=check, timeout=900)


def address(lab, lb: str) -> str:
    return lab.config.host(lb).address


def versions_through(lab, lb: str, count: int = 10) -> set[str]:
    return {get_json(f"http://{address(lab, lb)}/version")["version"] for _ in range(count)}


def state_on(lab, lb: str) -> dict:
    text = ssh(lab, lb, f"cat {STATE} 2>/dev/null || true").strip()
    return json.loads(text) if text else {}


def manifest(lab) -> dict:
    return yaml.safe_load((lab.inventories / ENV / "manifest.yml").read_text())


def assert_fleet_on(lab, version: str) -> None:
    """Both LBs serve ``version`` only, hold the same release state naming it live, the
    manifest agrees, status exits 0, and no lock is left."""
    for lb in LBS:
        assert versions_through(lab, lb) == {version}, lb
    states = [state_on(lab, lb) for lb in LBS]
    assert states[0] == states[1], "the LBs' release states differ"
    live = states[0]["live"]
    assert states[0]["pools"][live]["version"] == version and states[0]["pending"] is None
    data = manifest(lab)
    assert data["live_pool"] == live and data["pools"][live]["version"] == version
    status = run("status", lab)
    assert status.returncode == 0, status.stdout + status.stderr
    assert ssh(lab, "lb1", "cat /var/lib/turnout/deploy.lock 2>/dev/null || true").strip() == ""


class Probes:
    """One TrafficProbe per load balancer, all running while the block runs."""

    def __init__(self, lab, lbs=LBS, workers: int = 2) -> None:
        self.stack = ExitStack()
        self.probes = {lb: TrafficProbe(address(lab, lb), 80, workers=workers,
                                        interval_s=0.02, max_seconds=900) for lb in lbs}

    def __enter__(self) -> Probes:
        for probe in self.probes.values():
            self.stack.enter_context(probe)
        for probe in self.probes.values():
            probe.wait_for(20)
        return self

    def __exit__(self, *exc) -> None:
        for probe in self.probes.values():
            probe.wait_for(probe.result.total + 10)
        self.stack.close()

    def __getitem__(self, lb: str):
        return self.probes[lb].result


class Background:
    """An invoke command in its own process group, its stderr in a file we can watch."""

    def __init__(self, lab, log: Path, *argv: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", *argv[:1], "--env", ENV, *argv[1:]], cwd=REPO,
            env={**os.environ, **lab.environ}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait(self, timeout: float = 900) -> int:
        return self.proc.wait(timeout=timeout)


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)


def test_a_deploy_moves_both_load_balancers_under_load(fleet):
    with Probes(fleet) as traffic:
        proc = run("deploy", fleet, "--version", F[1])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for lb in LBS:
        assert traffic[lb].failures == [], (lb, traffic[lb].summary())
        assert set(traffic[lb].versions) == {F[0], F[1]}, (lb, traffic[lb].summary())
    assert_fleet_on(fleet, F[1])
    say(f"deploy through 2 LBs: {traffic['lb1'].summary()} / {traffic['lb2'].summary()}")


def test_a_rollback_moves_both_back_and_never_undoes_itself(fleet):
    with Probes(fleet) as traffic:
        proc = run("rollback", fleet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for lb in LBS:
        assert traffic[lb].failures == [], (lb, traffic[lb].summary())
    assert_fleet_on(fleet, F[0])
    again = run("rollback", fleet)
    assert again.returncode == 2, again.stderr
    assert f"holds {F[1]} (rolled back from" in again.stderr, again.stderr
    assert versions_through(fleet, "lb1") == {F[0]}


def test_rollback_refuses_an_unapproved_release_then_promote_moves_both(fleet):
    staged = run("deploy", fleet, "--version", F[2], "--approval")
    assert staged.returncode == 0, staged.stderr
    refused = run("rollback", fleet)
    assert refused.returncode == 2
    assert f"holds {F[2]} (awaiting approval, never live" in refused.stderr, refused.stderr
    assert all(versions_through(fleet, lb) == {F[0]} for lb in LBS)
    with Probes(fleet) as traffic:
        proc = run("promote", fleet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for lb in LBS:
        assert traffic[lb].failures == [], (lb, traffic[lb].summary())
    assert_fleet_on(fleet, F[2])


def test_a_canary_abort_sends_both_back_and_is_never_a_rollback_target(fleet):
    live = state_on(fleet, "lb1")["live"]
    idle = "blue" if live == "green" else "green"
    canary_host = f"{idle}1"
    set_vars(fleet, {"turnout_canary_watch_s": 8})
    try:
        with Probes(fleet) as traffic:
            proc = Background(fleet, Path(fleet.inventories) / "canary.log", "deploy",
                              "--version", F[3], "--canary", "50")
            wait_until("the canary step", lambda: "switch every load balancer" in proc.output())
            wait_until(f"{F[3]} served", lambda: F[3] in traffic["lb1"].versions, 120)
            ssh(fleet, canary_host, "systemctl stop app.service")
            code = proc.wait()
    finally:
        set_vars(fleet, {})
        ssh(fleet, canary_host, "systemctl start app.service")
    assert code == 1, proc.output()[-2000:]
    assert "canary aborted at 50%" in proc.output()
    for lb in LBS:
        assert traffic[lb].failures == [], (lb, traffic[lb].summary())
        assert versions_through(fleet, lb) == {F[2]}
        assert "canary_pct 0" in ssh(fleet, lb, "echo 'show map /etc/haproxy/pool.map' | "
                                                "socat stdio /run/haproxy/admin.sock")
    state = state_on(fleet, "lb1")
    assert state["pools"][idle]["status"] == "canary_aborted" and state["live"] == live
    entry = manifest(fleet)["history"][-1]
    assert entry["result"] == "failed" and "canary aborted" in entry["message"]
    refused = run("rollback", fleet)
    assert refused.returncode == 2 and "its canary aborted, never live" in refused.stderr


def test_a_flip_back_is_never_a_rollback_target(fleet):
    set_vars(fleet, {"pool_switch_verify_url": "http://{{ ansible_host }}:80/no-such-path"})
    try:
        proc = run("deploy", fleet, "--version", F[4])
    finally:
        set_vars(fleet, {})
    assert proc.returncode == 1, proc.stderr
    entry = manifest(fleet)["history"][-1]
    assert entry["result"] == "flipped_back", entry
    for lb in LBS:
        assert versions_through(fleet, lb) == {F[2]}
    refused = run("rollback", fleet)
    assert refused.returncode == 2 and "flipped back, never live" in refused.stderr


def test_one_of_two_lbs_dies_mid_flip_and_comes_back_on_the_old_pool(fleet, tmp_path):
    live_version = F[2]
    with Probes(fleet, lbs=("lb1",)) as traffic:
        proc = Background(fleet, tmp_path / "deploy.log", "deploy", "--version", F[5])
        wait_until("the flip", lambda: "switch every load balancer" in proc.output())
        lab_fleet.power_off(fleet.config, "lb2")
        code = proc.wait()
    try:
        assert code == 1, proc.output()[-3000:]
        assert traffic["lb1"].failures == [], traffic["lb1"].summary()
        assert set(traffic["lb1"].versions) <= {live_version, F[5]}
        assert versions_through(fleet, "lb1") == {live_version}
        entry = manifest(fleet)["history"][-1]
        assert entry["result"] in ("failed", "flipped_back") and "lb2" in entry["message"]
    finally:
        lab_fleet.power_on(fleet.config, "lb2")
    wait_until("HAProxy on lb2", lambda: _answers(fleet, "lb2"), 120)
    assert versions_through(fleet, "lb2") == {live_version}  # the prestart restored the map
    status = run("status", fleet)
    assert status.returncode == 3 and "lb2" in status.stdout, status.stdout
    again = run("deploy", fleet, "--version", F[5])
    assert again.returncode == 0, again.stdout + again.stderr
    assert_fleet_on(fleet, F[5])


def test_a_rebuilt_load_balancer_is_provisioned_onto_the_live_pool(fleet):
    live = state_on(fleet, "lb1")["live"]
    live_version = state_on(fleet, "lb1")["pools"][live]["version"]
    # rebuilt: no HAProxy running, no map, no release state (its first provision starts blue)
    ssh(fleet, "lb2", f"systemctl stop haproxy; rm -f /etc/haproxy/pool.map "
                      f"/etc/haproxy/release.map {STATE}")
    proc = run("provision", fleet)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ssh(fleet, "lb2", "cat /etc/haproxy/pool.map").strip() == f"active be_{live}"
    assert versions_through(fleet, "lb2") == {live_version}
    assert state_on(fleet, "lb2") == state_on(fleet, "lb1")
    assert_fleet_on(fleet, live_version)


def active_since(lab, host: str) -> int:
    """When app.service last started on ``host`` (CLOCK_MONOTONIC of the host, microseconds)."""
    return int(ssh(lab, host, "systemctl show -p ActiveEnterTimestampMonotonic --value "
                              "app.service").strip())


def test_provision_after_a_unit_change_restarts_live_hosts_one_at_a_time_under_load(fleet):
    """A changed unit restarts the app: the idle pool changes in parallel, the live pool one
    host at a time, each drained on both LBs first; no request fails through either LB."""
    live = state_on(fleet, "lb1")["live"]
    idle = "blue" if live == "green" else "green"
    lab_vars = yaml.safe_load((REPO / "inventories/lab/group_vars/all.yml").read_text())
    app = {**lab_vars["turnout_app"], "env": {"TURNOUT_DRILL": "provision"}}
    before = {h: active_since(fleet, h) for h in (f"{live}1", f"{live}2", f"{idle}1")}
    set_vars(fleet, {"turnout_app": app})
    try:
        with Probes(fleet) as traffic:
            proc = run("provision", fleet)
    finally:
        set_vars(fleet, {})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for lb in LBS:
        assert traffic[lb].failures == [], (lb, traffic[lb].summary())
        assert traffic[lb].total > 50, traffic[lb].summary()
    for host in before:
        unit = ssh(fleet, host, "cat /etc/systemd/system/app.service")
        assert 'Environment=TURNOUT_DRILL="provision"' in unit, unit
    after = {h: active_since(fleet, h) for h in before}
    assert all(after[h] > before[h] for h in before), (before, after)  # every host restarted
    # one live host at a time: the second started after the first had drained, restarted and
    # been seen UP by both LBs (seconds apart; the lab's hosts share one monotonic clock)
    gap_s = abs(after[f"{live}2"] - after[f"{live}1"]) / 1e6
    assert gap_s > 2, gap_s
    assert_fleet_on(fleet, state_on(fleet, "lb1")["pools"][live]["version"])
    say(f"provision with a unit change: live hosts restarted {gap_s:.1f}s apart; "
        f"{traffic['lb1'].summary()} / {traffic['lb2'].summary()}")


def test_status_sees_a_leftover_canary_share_and_the_next_run_ends_it(fleet):
    live = state_on(fleet, "lb1")["live"]
    idle = "blue" if live == "green" else "green"
    version = state_on(fleet, "lb1")["pools"][live]["version"]
    ssh(fleet, "lb2", f"echo 'add map /etc/haproxy/pool.map canary_backend be_{idle}; "
                      "add map /etc/haproxy/pool.map canary_pct 30' | "
                      "socat stdio /run/haproxy/admin.sock")
    status = run("status", fleet)
    assert status.returncode == 3 and "lb2 sends 30% of requests" in status.stdout, status.stdout
    again = run("deploy", fleet, "--version", version)  # live already: a no-op, under the lock
    assert again.returncode == 0, again.stdout + again.stderr
    assert "canary_pct 0" in ssh(fleet, "lb2", "echo 'show map /etc/haproxy/pool.map' | "
                                              "socat stdio /run/haproxy/admin.sock")
    assert_fleet_on(fleet, version)


def _answers(lab, lb: str) -> bool:
    try:
        get_json(f"http://{address(lab, lb)}/version")
        return True
    except OSError:
        return False


def _flip_started(lab) -> Callable[[], bool]:
    return lambda: bool((state_on(lab, "lb1") or {}).get("pending"))


def with_a_previous_release(lab) -> dict:
    """The release state, after a deploy when the idle pool holds no release a rollback
    may go to (so the case runs alone as well as after the others)."""
    state = state_on(lab, "lb1")
    idle = "blue" if state["live"] == "green" else "green"
    if (state["pools"].get(idle) or {}).get("status") != "previous":
        used = {(p or {}).get("version") for p in state["pools"].values()}
        run("deploy", lab, "--version", next(v for v in F if v not in used), check=True)
        state = state_on(lab, "lb1")
    return state


@pytest.mark.parametrize("moment", ["smoke", "flip", "record"])
def test_a_rollback_killed_at_each_step_converges_on_its_target(fleet, tmp_path, moment):
    before = with_a_previous_release(fleet)
    live = before["live"]
    target_pool = "blue" if live == "green" else "green"
    target = before["pools"][target_pool]["version"]
    with Probes(fleet) as traffic:
        proc = Background(fleet, tmp_path / "rollback.log", "rollback")
        if moment == "smoke":
            wait_until("the smoke phase", lambda: "== Smoke |" in proc.output())
        elif moment == "flip":
            wait_until("the pending flip", _flip_started(fleet))
        else:
            wait_until("the record phase", lambda: "== Record |" in proc.output())
        proc.kill()
        rerun = run("rollback", fleet)
    for lb in LBS:
        assert traffic[lb].failures == [], (lb, traffic[lb].summary())
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_fleet_on(fleet, target)
    say(f"rollback killed at {moment}: re-run went to {target}; "
        f"{traffic['lb1'].summary()}")
    # undo it for the next case: deploy what was live again
    if moment != "record":
        assert run("rollback", fleet, "--to", before["pools"][live]["version"]).returncode == 0


@pytest.mark.parametrize("moment", ["smoke", "flip"])
def test_a_promote_killed_at_each_step_converges(fleet, tmp_path, moment):
    live_version = state_on(fleet, "lb1")["pools"][state_on(fleet, "lb1")["live"]]["version"]
    version = F[6] if moment == "smoke" else F[3]
    assert run("deploy", fleet, "--version", version, "--approval").returncode == 0
    with Probes(fleet) as traffic:
        proc = Background(fleet, tmp_path / "promote.log", "promote")
        if moment == "smoke":
            wait_until("the smoke phase", lambda: "== Smoke |" in proc.output())
        else:
            wait_until("the pending flip", _flip_started(fleet))
        proc.kill()
        rerun = run("promote", fleet)
    for lb in LBS:
        assert traffic[lb].failures == [], (lb, traffic[lb].summary())
        assert set(traffic[lb].versions) <= {live_version, version}
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_fleet_on(fleet, version)
