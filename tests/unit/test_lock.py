"""turnout.lock: the deploy lock's policy (pure) and its file operations (on a temp dir)."""

from __future__ import annotations

import json
import subprocess
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from turnout import fleetlock, lock

NOW = datetime(2026, 11, 22, 15, 0, 0, tzinfo=UTC)


def req(op: str = "acquire", run_id: str = "run-b", **extra) -> dict:
    base = {"op": op, "run_id": run_id, "owner": "bob@ws2", "action": "deploy",
            "version": "1.0.0", "env": "prod", "controller": "ws2", "pid": 42, "ttl_s": 900}
    return {**base, **extra}


def holder(run_id: str = "run-a", beat: datetime = NOW, controller: str = "ws1",
           pid: int = 7) -> dict:
    stamp = lock.format_ts(beat)
    return {"owner": "alice@ws1", "run_id": run_id, "action": "deploy", "version": "0.9",
            "env": "prod", "controller": controller, "pid": pid, "pid_start": None,
            "started_at": stamp, "heartbeat_at": stamp}


def test_acquire_free_lock_writes_full_record() -> None:
    decision = lock.decide(None, req(), NOW)
    assert decision.op == "write" and decision.changed
    assert decision.record["run_id"] == "run-b" and decision.record["owner"] == "bob@ws2"
    stamps = {decision.record["started_at"], decision.record["heartbeat_at"]}
    assert stamps == {"2026-11-22T15:00:00Z"}


def test_acquire_held_lock_refuses_naming_the_holder() -> None:
    decision = lock.decide(holder(), req(), NOW + timedelta(seconds=10))
    assert decision.op == "refuse"
    assert decision.message.startswith(lock.HELD_MARKER)
    assert "alice@ws1" in decision.message and "run-a" in decision.message
    assert "invoke unlock --env prod" in decision.message
    assert "\n" not in decision.message


def test_acquire_by_the_same_run_only_refreshes() -> None:
    decision = lock.decide(holder("run-b"), req(), NOW + timedelta(seconds=5))
    assert decision.op == "write" and decision.record["started_at"] == "2026-11-22T15:00:00Z"
    assert decision.record["heartbeat_at"] == "2026-11-22T15:00:05Z"


def test_expired_lock_is_recovered_with_a_warning() -> None:
    decision = lock.decide(holder(beat=NOW - timedelta(seconds=901)), req(), NOW)
    assert decision.op == "write" and decision.record["run_id"] == "run-b"
    assert decision.warnings and "expired" in decision.warnings[0]


def test_lock_within_ttl_is_not_expired() -> None:
    assert lock.decide(holder(beat=NOW - timedelta(seconds=899)), req(), NOW).op == "refuse"


def test_steal_is_compare_and_swap_on_run_id() -> None:
    assert lock.decide(holder(), req(steal_run_id="run-a"), NOW).op == "write"
    # the holder changed since it was found dead: no steal
    assert lock.decide(holder("run-c"), req(steal_run_id="run-a"), NOW).op == "refuse"


def test_heartbeat_and_release_only_for_the_holder() -> None:
    assert lock.decide(holder("run-b"), req("heartbeat"), NOW).op == "write"
    lost = lock.decide(holder("run-a"), req("heartbeat"), NOW)
    assert lost.op == "refuse" and "lost the deploy lock" in lost.message
    assert lock.decide(holder("run-b"), req("release"), NOW).op == "remove"
    other = lock.decide(holder("run-a"), req("release"), NOW)
    assert other.op == "none" and other.warnings
    assert lock.decide(None, req("release"), NOW).op == "none"


def test_break_removes_any_holder() -> None:
    assert lock.decide(holder(), {"op": "break"}, NOW).op == "remove"
    assert lock.decide(None, {"op": "break"}, NOW).op == "none"


def test_unreadable_lock_is_held_until_unlocked() -> None:
    parsed = lock.parse("{not json")
    assert parsed["corrupt"]
    decision = lock.decide(parsed, req(), NOW + timedelta(days=30))
    assert decision.op == "refuse" and "unreadable" in decision.message


@pytest.mark.parametrize(("change", "needle"), [
    ({"op": "grab"}, "op must be"),
    ({"run_id": "a b"}, "run_id"),
    ({"owner": ""}, "owner"),
    ({"env": "x;rm -rf /"}, "env"),
    ({"action": "destroy"}, "action"),
    ({"ttl_s": 5}, "ttl_s"),
    ({"ttl_s": True}, "ttl_s"),
])
def test_bad_requests_are_refused(change: dict, needle: str) -> None:
    with pytest.raises(lock.LockError, match=needle):
        lock.decide(None, req(**change), NOW)


def test_holder_is_dead_only_for_this_controller() -> None:
    assert fleetlock.holder_is_dead(holder(controller="me"), "me", alive=lambda pid, start: False)
    assert not fleetlock.holder_is_dead(holder(controller="me"), "me",
                                        alive=lambda pid, start: True)
    assert not fleetlock.holder_is_dead(holder(controller="other"), "me",
                                        alive=lambda pid, start: False)
    assert not fleetlock.holder_is_dead(None, "me")


def test_process_alive_for_this_process_and_not_for_a_reaped_child() -> None:
    assert fleetlock.process_alive(os.getpid(), fleetlock.process_start(os.getpid()))
    assert not fleetlock.process_alive(os.getpid(), "1")  # pid reused by another start time
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert not fleetlock.process_alive(pid)


def test_apply_on_disk_acquire_refuse_release(tmp_path: Path) -> None:
    path = str(tmp_path / "turnout" / "deploy.lock")
    decision, previous = lock.apply(req(run_id="run-a"), path, NOW)
    assert decision.op == "write" and previous is None
    assert json.loads(Path(path).read_text())["run_id"] == "run-a"
    assert oct(Path(path).stat().st_mode & 0o777) == "0o640"
    refused, previous = lock.apply(req(run_id="run-b"), path, NOW)
    assert refused.op == "refuse" and previous["run_id"] == "run-a"
    assert json.loads(Path(path).read_text())["run_id"] == "run-a"  # untouched
    lock.apply(req("release", run_id="run-a"), path, NOW)
    assert not Path(path).exists()
    assert [p.name for p in Path(path).parent.iterdir()] == []  # no temp files left


def test_module_utils_is_the_same_source() -> None:
    shipped = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "turnout_lock.py"
    assert shipped.resolve() == Path(lock.__file__).resolve()


def test_a_zombie_holder_is_not_alive():
    """A killed run whose process is not reaped yet (a zombie) must not keep its lock."""
    import os
    import time


    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while fleetlock.process_state(pid) != "Z":
            assert time.monotonic() < deadline, "child never became a zombie"
            time.sleep(0.01)
        os.kill(pid, 0)  # the kernel still knows the pid...
        assert fleetlock.process_alive(pid) is False  # ...but it holds nothing
        assert fleetlock.process_alive(os.getpid()) is True
    finally:
        os.waitpid(pid, 0)
    assert fleetlock.process_alive(pid) is False


def test_the_unlock_script_runs_without_turnout_installed(tmp_path: Path) -> None:
    """invoke unlock ships this script to the LB, whose Python has no turnout package."""
    path = tmp_path / "deploy.lock"
    holder = {"owner": "jenkins:x", "run_id": "20261122T000000Z-abc", "action": "deploy"}
    path.write_text(json.dumps(holder))
    proc = subprocess.run(["/usr/bin/python3", "-I", "-"], input=fleetlock.unlock_script(str(path)),
                          capture_output=True, text=True, cwd=tmp_path, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["owner"] == "jenkins:x"
    assert not path.exists()
