"""turnout.heartbeat: when the lock is refreshed, what a refresh said, how the loop ends, and
the real process on this machine (a local lock file, connection 'local')."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from turnout import fleetlock, heartbeat, lock

NOW = datetime(2026, 11, 22, 15, 0, 0, tzinfo=UTC)


def spec(**extra) -> heartbeat.Spec:
    base = {"run_id": "run-a", "owner": "alice@ws1", "env": "prod", "controller": "ws1",
            "controller_id": None, "pid": os.getpid(),
            "pid_start": fleetlock.process_start(os.getpid()), "ttl_s": 30,
            "host": {"name": "lb1", "address": "192.0.2.2", "user": "deploy", "port": 2222,
                     "key_file": "/k", "ssh_args": ["-o", "StrictHostKeyChecking=yes"]},
            "control_dir": "/home/ci/.ansible/cp"}
    return heartbeat.Spec(**{**base, **extra})


def test_the_lock_is_refreshed_three_times_per_ttl_and_retried_sooner() -> None:
    assert heartbeat.interval_s(900) == 300 and heartbeat.interval_s(30) == 10
    assert heartbeat.retry_s(900) == heartbeat.MAX_RETRY_S and heartbeat.retry_s(3) == 1.0


def test_a_refresh_goes_over_openssh_as_ansible_connects_with_sudo_when_become() -> None:
    argv = spec(become=True).argv()
    assert argv[0] == "ssh" and argv[-2:] == ["deploy@192.0.2.2", "sudo -n python3 -"]
    assert "ControlPath=/home/ci/.ansible/cp/%C" in argv and "BatchMode=yes" in argv
    assert "StrictHostKeyChecking=yes" in argv and ["-p", "2222"] == argv[
        argv.index("-p"):argv.index("-p") + 2]
    assert spec().argv()[-1] == "python3 -"
    assert spec(become=True, become_user="lockkeeper").remote_command() == \
        "sudo -n -u lockkeeper python3 -"
    assert spec(local=True).argv() == ["sh", "-c", "python3 -"]
    assert spec().request() == {"op": "heartbeat", "run_id": "run-a", "owner": "alice@ws1",
                                "env": "prod", "controller": "ws1", "controller_id": None,
                                "ttl_s": 30}


def test_what_a_refresh_said() -> None:
    ok = heartbeat.judge(0, 'noise\n{"op": "write", "holder": {}}\n', "")
    assert ok.ok and not ok.lost
    lost = heartbeat.judge(0, json.dumps({"op": "refuse", "message": "run run-a lost the "
                                          "deploy lock"}), "")
    assert lost.lost and "lost the deploy lock" in lost.message
    down = heartbeat.judge(255, "", "ssh: connect to host 192.0.2.2 port 22: No route to host\n")
    assert not down.ok and not down.lost and "No route to host" in down.message
    sudo = heartbeat.judge(1, "", "sudo: a password is required\n")
    assert not sudo.ok and "password is required" in sudo.message
    assert heartbeat.judge(2, '{"error": "ttl_s must be"}', "").message == "ttl_s must be"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_keep(results: list[heartbeat.Beat], ends_after: int | None = None):
    """keep() with refreshes taken from ``results``; the run ends after ``ends_after`` waits."""
    clock, waits, saved = Clock(), [], []
    results = list(results)

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        clock.now += seconds
        return ends_after is not None and len(waits) > ends_after

    state = heartbeat.State(run_id="run-a", pid=1, pid_start=None, started_at="t")
    final = heartbeat.keep(spec(), state, lambda: results.pop(0), wait, clock, lambda: "ts",
                           lambda s: saved.append(s.status))
    return final, waits, saved


def test_refreshes_until_the_run_ends() -> None:
    final, waits, _ = run_keep([heartbeat.Beat(ok=True)] * 3, ends_after=3)
    assert final.status == "run ended" and final.beats == 3 and final.failures == 0
    assert waits == [10.0] * 4 and final.max_gap_s == 10.0


def test_a_refused_refresh_ends_it_and_a_failed_one_is_retried_sooner() -> None:
    final, waits, _ = run_keep([heartbeat.Beat(ok=True), heartbeat.Beat(ok=False, message="x"),
                                heartbeat.Beat(ok=True),
                                heartbeat.Beat(ok=False, lost=True, message="lost it")])
    assert final.status == "lost" and final.last_error == "lost it"
    assert waits == [10.0, 10.0, 5.0, 10.0]
    assert final.beats == 2 and final.failures == 1 and final.max_gap_s == 15.0


def test_the_run_watch_sees_a_process_end_at_once() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    watch = heartbeat.RunWatch(child.pid, fleetlock.process_start(child.pid))
    assert watch.wait(0.1) is False
    started = time.monotonic()
    child.stdin.close()
    assert watch.wait(30) is True and time.monotonic() - started < 5
    child.wait()
    # a pid whose start time is not the one recorded (reused) counts as ended
    assert heartbeat.RunWatch(os.getpid(), "1").wait(0) is True


def test_the_heartbeat_process_refreshes_a_real_lock_and_stops(tmp_path: Path) -> None:
    """The real process, against a lock file on this machine (connection 'local'): it
    refreshes, and stop() ends it before the lock is released."""
    path = tmp_path / "lock" / "deploy.lock"
    owner = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # stands in for ansible-playbook
    request = {"op": "acquire", "run_id": "run-a", "owner": "alice@ws1", "action": "deploy",
               "env": "prod", "controller": "ws1", "ttl_s": 30}
    lock.apply(request, str(path), NOW)
    the_spec = spec(local=True, python=sys.executable, lock_path=str(path), pid=owner.pid,
                    pid_start=fleetlock.process_start(owner.pid))
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    assert heartbeat.beat(the_spec).ok
    assert json.loads(path.read_text())["heartbeat_at"] != lock.format_ts(NOW)
    pid = heartbeat.start(the_spec, directory)
    try:
        assert heartbeat.running("run-a", directory)
        assert not heartbeat.ensure(the_spec, directory)  # it runs: nothing to start
        final = heartbeat.stop("run-a", directory)
        assert final["status"] == "stopped" and not fleetlock.process_alive(pid)
        assert list(directory.iterdir()) == []
        # the run ending ends it too, without touching the lock
        pid = heartbeat.start(the_spec, directory)
        before = path.read_text()
        owner.stdin.close()
        owner.wait()
        deadline = time.monotonic() + 30
        while fleetlock.process_alive(pid):
            assert time.monotonic() < deadline, "the heartbeat outlived its run"
            time.sleep(0.05)
        assert heartbeat.read_state("run-a", directory)["status"] == "run ended"
        assert path.read_text() == before
    finally:
        if owner.poll() is None:
            owner.kill()
        heartbeat.stop("run-a", directory)


def test_a_heartbeat_that_cannot_start_says_why(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    with pytest.raises(heartbeat.HeartbeatError, match="exited at once"):
        heartbeat.start(spec(run_id="run-b", pid=-1), directory)
