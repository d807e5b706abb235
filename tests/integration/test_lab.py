"""The lab itself: reachable over key-checked SSH, systemd running, separate filesystems."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import invoke
from turnout import runner
from turnout.lab import fleet
from turnout.lab.config import LabConfig, ssh_options

pytestmark = pytest.mark.lab


def ssh(lab, host: str, command: str) -> subprocess.CompletedProcess[str]:
    address = lab.config.host(host).address
    return subprocess.run(["ssh", *ssh_options(lab.config), f"root@{address}", command],
                          capture_output=True, text=True, timeout=30, check=False)


def test_ansible_ping_through_ansible_runner_with_host_key_checking(lab):
    result = runner.run_module(lab.hosts_file, "all", "ansible.builtin.ping")
    assert result.ok, result.failure_messages
    assert sorted(result.stats) == ["blue1", "blue2", "green1", "green2", "lb1", "lb2"]
    assert all(s.ok == 1 and s.failures == 0 for s in result.stats.values())


def test_wrong_host_key_is_refused(lab, tmp_path):
    """Host key checking is really on: a known_hosts with another key makes every host fail."""
    wrong = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    other_key = (tmp_path / "k.pub").read_text().split()
    wrong.write_text("".join(f"{h.address} {other_key[0]} {other_key[1]}\n"
                             for h in lab.config.hosts()))
    hosts = lab.hosts_file.read_text().replace(str(lab.config.known_hosts), str(wrong))
    (tmp_path / "hosts.yml").write_text(hosts)
    # A fresh ControlPath dir: an SSH master opened by another test would skip the key check.
    control_dir = tempfile.mkdtemp(prefix="cp", dir="/tmp")
    environ = {**os.environ, "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir}
    result = runner.run_module(tmp_path / "hosts.yml", "blue1", "ansible.builtin.ping",
                               environ=environ)
    shutil.rmtree(control_dir, ignore_errors=True)
    assert not result.ok and result.unreachable_hosts == ["blue1"]


def test_every_host_runs_systemd_as_pid1(lab):
    for host in lab.config.hosts():
        proc = ssh(lab, host.name, "systemctl is-system-running; cat /proc/1/comm; hostname")
        state, pid1, hostname = proc.stdout.split()
        assert (state, pid1, hostname) == ("running", "systemd", host.name), proc.stderr


def test_filesystems_are_separate(lab):
    marker = f"/root/marker-{os.getpid()}"
    assert ssh(lab, "blue1", f"echo blue1 > {marker}").returncode == 0
    assert ssh(lab, "blue1", f"cat {marker}").stdout.strip() == "blue1"
    proc = ssh(lab, "green1", f"test -e {marker} && echo present || echo absent")
    assert proc.stdout.strip() == "absent"
    assert ssh(lab, "blue1", f"rm {marker}").returncode == 0


def test_lab_up_is_idempotent(lab):
    before = (lab.config.state_dir / "state.json").read_text()
    assert fleet.up(lab.config, lab.env_dir) is False
    assert (lab.config.state_dir / "state.json").read_text() == before


def test_lab_status_task(lab):
    proc = invoke("lab.status", "--name", lab.config.name, "--subnet", lab.config.subnet)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["lb1", "lb2", "blue1", "blue2", "green1", "green2"]
    assert all(r[3:] == ["yes", "up", "running"] for r in rows)


def test_lab_ssh_task_runs_a_command(lab):
    proc = invoke("lab.ssh", "green2", "-c", "hostname", "--name", lab.config.name,
                  "--subnet", lab.config.subnet)
    assert proc.returncode == 0 and proc.stdout.strip() == "green2", proc.stderr


@pytest.mark.parametrize("args, message", [
    (["lab.up", "--app-hosts", "0"], "--app-hosts must be a whole number from 1 to 10"),
    (["lab.up", "--app-hosts", "99"], "--app-hosts must be a whole number from 1 to 10"),
    (["lab.up", "--app-hosts", "two"], "--app-hosts must be a whole number from 1 to 10"),
    (["lab.up", "--name", "Bad!"], "invalid lab name"),
    (["lab.ssh", "blue7", "--name", "t"], "unknown lab host 'blue7'"),
])
def test_lab_bad_input_is_one_line_exit_2(lab, args, message):
    before = sorted(p.name for p in lab.config.state_root.iterdir())
    args = [lab.config.name if arg == "t" else arg for arg in args]  # the session lab's name
    proc = invoke(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    assert sorted(p.name for p in lab.config.state_root.iterdir()) == before  # nothing started


def test_lab_without_root_is_refused(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        ["unshare", "--user",  # euid 65534 inside, files still readable
         str(repo / ".venv/bin/invoke"), "lab.up", "--name", "nr", "--subnet", "10.231.7.0/24"],
        cwd=repo, capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "turnout: error: the lab needs root (it creates bridges, mounts and containers): "
        "run it as root, e.g. 'sudo -E invoke lab.up'"]
    assert not Path("/var/lib/turnout/labs/nr").exists()


def test_down_leaves_nothing_behind():
    """A second, separate lab (one host per pool): up, then down removes every trace."""
    config = LabConfig(name=os.environ.get("TURNOUT_TEST_LAB2", "td"),
                       subnet=os.environ.get("TURNOUT_TEST_SUBNET2", "10.231.8.0/24"),
                       app_hosts=1)
    try:
        fleet.up(config, None)
        assert fleet.status(config) and all(s.sshd for s in fleet.status(config))
    finally:
        fleet.down(config)
    assert fleet._nspawn_pids(f"{config.name}-") == {}
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(config.state_dir) not in mounts
    links = os.listdir("/sys/class/net")
    assert config.bridge not in links
    assert not [n for n in links if n.startswith(f"vb-{config.name}-")]
    for hierarchy in fleet.CGROUP_HIERARCHIES:
        if hierarchy.is_dir():
            assert not [p for p in hierarchy.iterdir()
                        if p.name.startswith(f"turnout.{config.name}-")]
    assert not config.state_dir.exists()
    assert (Path("/var/cache/turnout") / "base-bookworm" / ".turnout-base").is_file()
