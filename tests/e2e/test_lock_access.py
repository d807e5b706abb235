"""The deploy lock and production access, on a lab run the way production runs it.

Every command here connects as the non-root user ``deploy`` with passwordless sudo and become
(``lab.up --user deploy``, like inventories/prod/hosts.yml.example); root's key is the lab's
own and turnout never has it, so a run that tried to log in as root would fail. The lock's TTL
is 30 s (its minimum), so its heartbeat refreshes every 10 s.

Drills (docs/security.md names each promise's drill):

- a before_stage hook longer than the TTL while a second controller (another host name and
  PID namespace) deploys: refused, the first run completes;
- a second controller with the same host name in another PID namespace (two CI agents in
  containers on one node): refused, although the holder's pid is not in its /proc;
- the inventory's approval requirement holds against launch-time extra vars;
- a refused promote through ansible-playbook leaves no lock (stale smoke results, and a
  setting that breaks the plan);
- unlock removes only the holder it showed;
- provision, deploy, promote and rollback as ``deploy`` with become; SSH control sockets in a
  directory only the invoking user can write.

Its own lab, one host per pool: TURNOUT_TEST_ACCESS_LAB / TURNOUT_TEST_ACCESS_SUBNET (default
'tu' on 10.231.12.0/24). Tests run in order and build on each other (one fleet, one history).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, Lab, invoke, require_lab_support
from tests.e2e.test_bluegreen import lb_versions, ssh
from tests.e2e.test_drills import Run, wait_until
from turnout import contracts
from turnout.inventory import control_dir
from turnout.lab import fleet
from turnout.lab.config import LabConfig, ssh_options

pytestmark = pytest.mark.e2e

ENV = "labu"
V1, V2 = "1.0.0-acc", "2.0.0-acc"
TTL_S = 30
LOCK = "/var/lib/turnout/deploy.lock"
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def say(line: str) -> None:
    print(f"DRILL {line}", file=sys.stderr, flush=True)


@dataclass
class Prod:
    lab: Lab
    hold_dir: Path  # the hold hook's gate files

    @property
    def environ(self) -> dict[str, str]:
        return self.lab.environ


def set_vars(prod: Prod, values: dict) -> None:
    """The test's own inventory variables (group_vars/all/test.yml), on top of the lab's."""
    base = {"turnout_lock_ttl_s": TTL_S, "test_hold_dir": str(prod.hold_dir),
            "test_lock_log": str(prod.hold_dir / "lock_seen.log"),
            "turnout_hooks": {"before_stage": str(REPO / "tests/e2e/hooks/hold.yml"),
                              "after_record": str(REPO / "tests/e2e/hooks/lock_seen.yml")}}
    path = prod.lab.env_dir / "group_vars" / "all" / "test.yml"
    path.write_text("---\n" + yaml.safe_dump({**base, **values}))


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    require_lab_support()
    config = LabConfig(name=os.environ.get("TURNOUT_TEST_ACCESS_LAB", "tu"),
                       subnet=os.environ.get("TURNOUT_TEST_ACCESS_SUBNET", "10.231.12.0/24"),
                       app_hosts=1, user="deploy")
    inventories = tmp_path_factory.mktemp("inventories")
    env_dir = inventories / ENV
    (env_dir / "group_vars" / "all").mkdir(parents=True)
    (env_dir / "group_vars" / "all" / "main.yml").symlink_to(
        REPO / "inventories" / "lab" / "group_vars" / "all.yml")
    the_prod = Prod(Lab(config, inventories, ENV), tmp_path_factory.mktemp("hold"))
    set_vars(the_prod, {})
    for version in (V1, V2):
        invoke("build", "--version", version, check=True)
    fleet.down(config)  # a lab left by an interrupted earlier run
    fleet.up(config, env_dir)
    try:
        yield the_prod
    finally:
        if os.environ.get("TURNOUT_KEEP_LAB") != "1":
            fleet.down(config)


def manifest(prod: Prod) -> dict:
    return yaml.safe_load((prod.lab.env_dir / "manifest.yml").read_text())


def history_length(prod: Prod) -> int:
    path = prod.lab.env_dir / "manifest.yml"
    return len(manifest(prod)["history"]) if path.exists() else 0


def lock_file(prod: Prod) -> str:
    return ssh(prod.lab, "lb1", f"cat {LOCK} 2>/dev/null || true").strip()


def fleet_state(prod: Prod) -> dict[str, str]:
    """What a refused run must not touch: manifest bytes, each host's release, the LB map."""
    path = prod.lab.env_dir / "manifest.yml"
    state = {"manifest": path.read_text() if path.exists() else "<absent>"}
    for host in ("blue1", "green1"):
        state[host] = ssh(prod.lab, host, "cat /srv/app/release.json 2>/dev/null; "
                          "readlink /srv/app/current || true")
    state["lb1"] = ssh(prod.lab, "lb1", "cat /etc/haproxy/pool.map; echo 'show map "
                       "/etc/haproxy/pool.map' | socat stdio /run/haproxy/admin.sock")
    return state


def playbook(prod: Prod, name: str, *extra: str,
             prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """A bare ansible-playbook run (as AWX or a person runs it), optionally inside ``prefix``."""
    return subprocess.run([*prefix, PLAYBOOK, "-i", str(prod.lab.hosts_file),
                           f"playbooks/{name}.yml", *extra], cwd=REPO, capture_output=True,
                          text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)


def other_pid_namespace(hostname: str | None = None) -> tuple[str, ...]:
    """Run a command as a second controller on this machine: its own PID namespace (its own
    /proc, as in a container), and its own host name when one is given."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is missing: it makes the second controller")
    flags = ("--uts",) if hostname else ()
    body = f'hostname {hostname} && "$@"' if hostname else '"$@"'
    # sh stays PID 1 of the namespace, the command runs below it as in a container
    return ("unshare", *flags, "--pid", "--fork", "--mount-proc", "--", "sh", "-c", body, "sh")


def heartbeat_age_s(prod: Prod) -> float:
    beat = contracts.parse_timestamp(json.loads(lock_file(prod))["heartbeat_at"])
    return (datetime.now(UTC) - beat).total_seconds()


# ------------------------------------------------------------------ provision as deploy

def test_provision_connects_as_the_deploy_user_with_become(prod):
    proc = invoke("provision", "--env", ENV, env=prod.environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ssh(prod.lab, "lb1", "systemctl is-active haproxy").strip() == "active"
    assert ssh(prod.lab, "blue1", "stat -c '%U %a' /srv/app").split() == ["root", "755"]
    logins = ssh(prod.lab, "lb1", "journalctl -u ssh --no-pager -o cat")
    assert "Accepted publickey for deploy" in logins
    # the inventory's key is the deploy user's: root refuses it, so nothing turnout runs
    # could have logged in as root
    config = prod.lab.config
    as_root = subprocess.run(
        ["ssh", *ssh_options(config, key=False), "-i", str(config.user_key_file),
         f"root@{config.host('lb1').address}", "true"],
        capture_output=True, text=True, timeout=30, check=False)
    assert as_root.returncode == 255 and "Permission denied" in as_root.stderr, as_root.stderr


# ------------------------------------------------------------------ the lock and its heartbeat

@dataclass
class Held:
    run: Run
    started: float  # time.monotonic() when the hook started holding
    ages: list[float]  # the lock's heartbeat age, sampled while held


@pytest.fixture(scope="module")
def held(prod, tmp_path_factory):
    """`invoke deploy V1` as deploy, held in its before_stage hook until a test opens it."""
    for name in ("started", "open"):
        (prod.hold_dir / name).unlink(missing_ok=True)
    (prod.hold_dir / "hold").touch()
    run = Run(prod.lab, V1, tmp_path_factory.mktemp("held") / "deploy.log")
    wait_until("the deploy to reach its before_stage hook",
               lambda: (prod.hold_dir / "started").exists() or run.proc.poll() is not None)
    assert run.proc.poll() is None, run.output()[-3000:]
    the_held = Held(run, time.monotonic(), [])
    try:
        yield the_held
    finally:
        (prod.hold_dir / "open").touch()
        (prod.hold_dir / "hold").unlink(missing_ok=True)
        if run.proc.poll() is None:
            run.wait(900)


def test_drill_same_hostname_in_another_pid_namespace_is_refused(prod, held):
    """Two CI agents in containers on one node: the same host name, their own PID namespaces.
    The holder's pid is not in the second one's /proc, which used to prove it dead."""
    holder = json.loads(lock_file(prod))
    before = history_length(prod)
    proc = subprocess.run([*other_pid_namespace(), sys.executable, "-m", "invoke", "deploy",
                           "--env", ENV, "--version", V2], cwd=REPO,
                          env={**os.environ, **prod.environ}, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"deploy lock held by {holder['owner']} (run {holder['run_id']}" in proc.stderr
    assert json.loads(lock_file(prod))["run_id"] == holder["run_id"]
    assert held.run.proc.poll() is None  # the holder runs on, undisturbed
    assert history_length(prod) == before
    say(f"same host name, another PID namespace: exit {proc.returncode} "
        f"({proc.stderr.strip().splitlines()[-1][:150]!r}); holder {holder['controller']} "
        f"{holder['controller_id']} pid {holder['pid']} kept the lock")


def test_provision_while_a_deploy_holds_the_lock_is_refused_and_changes_nothing(prod, held):
    """Provisioning restarts apps on a changed unit: it takes the deploy lock too, so a deploy
    never has its hosts restarted under it."""
    holder = json.loads(lock_file(prod))
    units = {h: ssh(prod.lab, h, "stat -c %Y /etc/systemd/system/app.service") for h in
             ("blue1", "green1")}
    proc = invoke("provision", "--env", ENV, env=prod.environ)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"deploy lock held by {holder['owner']} (run {holder['run_id']}" in proc.stderr
    assert json.loads(lock_file(prod))["run_id"] == holder["run_id"]
    assert held.run.proc.poll() is None
    assert units == {h: ssh(prod.lab, h, "stat -c %Y /etc/systemd/system/app.service")
                     for h in units}
    say(f"provision while a deploy holds the lock: exit 2 ({_refusal(proc.stderr)!r})")


def test_drill_hook_longer_than_the_ttl_second_controller_refused_first_completes(prod, held):
    """The hook holds the first run for longer than the lock's TTL; the heartbeat keeps the lock
    fresh, so a second controller (another host name and PID namespace) is refused after the
    TTL has passed, and the first run then completes."""
    holder = json.loads(lock_file(prod))
    assert holder["ttl_s"] == TTL_S
    deadline = held.started + TTL_S + 5
    while time.monotonic() < deadline:  # until the hook has outlived the TTL, by a deadline
        held.ages.append(heartbeat_age_s(prod))
        time.sleep(1)  # one sample a second
    proc = playbook(prod, "deploy", "-e", f"turnout_version={V2}",
                    prefix=other_pid_namespace("ci-agent-2"))
    held.ages.append(heartbeat_age_s(prod))
    held_for = time.monotonic() - held.started
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert f"deploy lock held by {holder['owner']} (run {holder['run_id']}" in proc.stdout, \
        proc.stdout[-3000:]
    assert max(held.ages) < TTL_S, held.ages
    (prod.hold_dir / "open").touch()
    code = held.run.wait(900)
    assert code == 0, held.run.output()[-3000:]
    entry = manifest(prod)["history"][-1]
    assert (entry["id"], entry["action"], entry["result"]) == (holder["run_id"], "deploy",
                                                               "success")
    assert lb_versions(prod.lab) == {V1}
    assert lock_file(prod) == ""
    say(f"hook held the first run {held_for:.0f}s (TTL {TTL_S}s); the lock's heartbeat was at "
        f"most {max(held.ages):.0f}s old over {len(held.ages)} samples; second controller "
        f"ci-agent-2 (own PID namespace) got exit {proc.returncode}: "
        f"{_refusal(proc.stdout)!r}; first run exit {code}, recorded {entry['result']}, "
        f"lock free")


def _refusal(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if "deploy lock held by" in line]
    return lines[0][:160] if lines else ""


# ------------------------------------------------------------------ approval gate, promote

def test_the_inventory_approval_gate_holds_against_launch_time_extra_vars(prod):
    (prod.hold_dir / "hold").unlink(missing_ok=True)
    set_vars(prod, {"turnout_approval_required": True})
    proc = playbook(prod, "deploy", "-e", f"turnout_version={V2}", "-e",
                    "turnout_approval=false", "-e", "turnout_approval_required=false")
    assert proc.returncode == 0, proc.stdout[-3000:]
    entry = manifest(prod)["history"][-1]
    assert (entry["action"], entry["result"], entry["to"]["version"]) == (
        "deploy", "awaiting_approval", V2), entry
    assert lb_versions(prod.lab) == {V1}  # staged and smoke-tested, not flipped
    assert "an extra var given at launch does not lift it" in proc.stdout
    assert lock_file(prod) == ""
    say("inventory turnout_approval_required: true, launched with -e turnout_approval=false "
        "-e turnout_approval_required=false: exit 0, awaiting_approval, LB still on "
        f"{V1}, lock free")


def test_the_after_record_hook_runs_under_the_deploy_lock(prod):
    """docs/security.md says the lock covers the hooks: after_record too, so it runs before
    the release (it used to run after it, on a free lock)."""
    seen = [json.loads(line) for line in
            (prod.hold_dir / "lock_seen.log").read_text().splitlines()]
    deploys = [e["id"] for e in manifest(prod)["history"] if e["action"] == "deploy"]
    calls = {call["run_id"]: call for call in seen if call["hook"] == "after_record"}
    assert set(deploys) <= set(calls), (deploys, seen)
    for run_id in deploys:
        assert calls[run_id]["lock"], f"after_record of {run_id} ran on a free lock"
        assert json.loads(calls[run_id]["lock"])["run_id"] == run_id
    say(f"after_record of {len(deploys)} deploys each saw its own run holding the lock")


@pytest.mark.parametrize(("max_age", "reason"), [
    ("0", "smoke results of run"),  # the AWX workflow: a 4 h approval against a 1 h max age
    ("soon", "cannot plan the run"),  # a setting that breaks the plan itself
])
def test_drill_refused_promote_through_ansible_playbook_leaves_no_lock(prod, max_age, reason):
    before = fleet_state(prod)
    proc = playbook(prod, "promote", "-e", f"turnout_promote_max_age_s={max_age}")
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "refused (preflight)" in proc.stdout and reason in proc.stdout, proc.stdout[-3000:]
    assert lock_file(prod) == "", "a refused promote left the deploy lock behind"
    assert fleet_state(prod) == before
    say(f"promote through ansible-playbook with turnout_promote_max_age_s={max_age}: exit "
        f"{proc.returncode}, refused ({reason}), no lock left, fleet and manifest unchanged")


def test_promote_and_rollback_as_the_deploy_user(prod):
    set_vars(prod, {})
    proc = invoke("promote", "--env", ENV, env=prod.environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lb_versions(prod.lab) == {V2}
    proc = invoke("rollback", "--env", ENV, env=prod.environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lb_versions(prod.lab) == {V1}
    assert [e["action"] for e in manifest(prod)["history"][-2:]] == ["promote", "rollback"]
    status = invoke("status", "--env", ENV, env=prod.environ)  # turnout.facts as deploy, sudo
    assert status.returncode == 0, status.stdout + status.stderr
    assert lock_file(prod) == ""


def test_control_sockets_live_in_a_directory_only_this_user_can_write(prod):
    directory = Path(control_dir())
    info = directory.stat()
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o700
    assert not str(directory).startswith("/tmp/.turnout-cp")
    invoke("status", "--env", ENV, env=prod.environ, check=True)  # leaves a master on lb1
    address = prod.lab.config.host("lb1").address
    shown = subprocess.run(["ssh", "-G", "-o", f"ControlPath={directory}/%C",
                            f"deploy@{address}"], capture_output=True, text=True, timeout=30,
                           check=True).stdout
    socket_path = next(line.split(" ", 1)[1] for line in shown.splitlines()
                       if line.startswith("controlpath "))
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode), socket_path


# ------------------------------------------------------------------ unlock

def test_unlock_removes_only_the_holder_it_showed(prod):
    shown = {"owner": "jenkins:deploy-41", "run_id": "20261122T000000Z-aaaaaa",
             "action": "deploy", "env": ENV, "controller": "agent-1", "pid": 41,
             "started_at": "2099-01-01T00:00:00Z", "heartbeat_at": "2099-01-01T00:00:00Z"}
    later = {**shown, "owner": "jenkins:deploy-42", "run_id": "20261122T000100Z-bbbbbb"}
    ssh(prod.lab, "lb1", f"echo '{json.dumps(shown)}' > {LOCK}")
    history = len(manifest(prod)["history"])
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "unlock", "--env", ENV], cwd=REPO,
                            env={**os.environ, **prod.environ}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        wait_until("unlock to show the holder", lambda: any("jenkins:deploy-41" in line
                                                             for line in said), 120)
        ssh(prod.lab, "lb1", f"echo '{json.dumps(later)}' > {LOCK}")  # another run took it
        proc.stdin.write("y\n")
        proc.stdin.close()
        out = proc.stdout.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=30)
    text = "".join(said)
    assert proc.returncode == 2, out + text
    assert "changed since it was shown" in text and "jenkins:deploy-42" in text, text
    assert json.loads(lock_file(prod))["owner"] == "jenkins:deploy-42"
    assert len(manifest(prod)["history"]) == history  # nothing removed, nothing recorded
    proc2 = invoke("unlock", "--env", ENV, "--yes", env=prod.environ)
    assert proc2.returncode == 0 and lock_file(prod) == "", proc2.stderr
    assert "jenkins:deploy-42" in manifest(prod)["history"][-1]["message"]
    say("unlock showed jenkins:deploy-41, the lock was taken by jenkins:deploy-42 before the "
        f"answer: exit {proc.returncode}, deploy-42 kept it; unlock --yes then removed "
        "deploy-42 and recorded it")
