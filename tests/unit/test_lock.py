"""turnout.lock: the deploy lock's policy (pure) and its file operations (on a temp dir)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from turnout import fleetlock, lock

NOW = datetime(2026, 11, 22, 15, 0, 0, tzinfo=UTC)


def req(op: str = "acquire", run_id: str = "run-b", **extra) -> dict:
    base = {"op": op, "run_id": run_id, "owner": "bob@ws2", "action": "deploy",
            "version": "1.0.0", "env": "prod", "controller": "ws2", "pid": 42, "ttl_s": 900}
    return {**base, **extra}


ME = {"controller": "me", "controller_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/pidns-4026531836"}


def holder(run_id: str = "run-a", beat: datetime = NOW, controller: str = "ws1",
           pid: int = 7, controller_id: str | None = None, ttl_s: int | None = None) -> dict:
    stamp = lock.format_ts(beat)
    record = {"owner": "alice@ws1", "run_id": run_id, "action": "deploy", "version": "0.9",
              "env": "prod", "controller": controller, "pid": pid, "pid_start": None,
              "started_at": stamp, "heartbeat_at": stamp}
    if controller_id is not None:
        record["controller_id"] = controller_id
    if ttl_s is not None:
        record["ttl_s"] = ttl_s
    return record


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


def test_the_holders_ttl_counts_not_the_requesters() -> None:
    """A run that wrote a one-hour TTL keeps its lock for an hour without a heartbeat, even
    against a controller configured with 30 s; one that wrote 30 s loses it after 30 s."""
    long_held = holder(beat=NOW - timedelta(seconds=1000), ttl_s=3600)
    assert lock.decide(long_held, req(ttl_s=30), NOW).op == "refuse"
    short_held = holder(beat=NOW - timedelta(seconds=31), ttl_s=30)
    recovered = lock.decide(short_held, req(ttl_s=3600), NOW)
    assert recovered.op == "write" and "its 30s TTL" in recovered.warnings[0]
    # no ttl_s in the record (an older turnout): the default, whatever the requester says
    assert lock.decide(holder(beat=NOW - timedelta(seconds=100)), req(ttl_s=30), NOW).op == \
        "refuse"
    assert lock.holder_ttl(holder(ttl_s=True)) == lock.DEFAULT_TTL_S


def test_acquire_records_the_ttl_and_the_identity_and_heartbeats_keep_them() -> None:
    record = lock.decide(None, req(ttl_s=60, controller_id="x/pidns-1"), NOW).record
    assert record["ttl_s"] == 60 and record["controller_id"] == "x/pidns-1"
    later = NOW + timedelta(seconds=20)
    beat = lock.decide(record, req("heartbeat", ttl_s=900), later).record
    assert beat["ttl_s"] == 60 and beat["heartbeat_at"] == lock.format_ts(later)
    assert "ttl 60s" in lock.describe(beat)


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
    mine = holder(controller="me", controller_id=ME["controller_id"])
    assert fleetlock.holder_is_dead(mine, ME, alive=lambda pid, start: False)
    assert not fleetlock.holder_is_dead(mine, ME, alive=lambda pid, start: True)
    assert not fleetlock.holder_is_dead(holder(controller="other", controller_id=ME[
        "controller_id"]), ME, alive=lambda pid, start: False)
    assert not fleetlock.holder_is_dead(None, ME)


def test_a_holder_with_this_host_name_in_another_pid_namespace_is_not_judged_here() -> None:
    """Two CI agents in containers on one node share a host name, not a PID namespace: the
    pid of the other one's run means nothing here, so only its TTL counts."""
    other_ns = ME["controller_id"].replace("4026531836", "4026532511")
    gone = lambda pid, start: False  # noqa: E731 - the pid is not in our /proc
    assert not fleetlock.holder_is_dead(holder(controller="me", controller_id=other_ns), ME,
                                        alive=gone)
    other_boot = "aaaaaaaa" + ME["controller_id"][8:]
    assert not fleetlock.holder_is_dead(holder(controller="me", controller_id=other_boot), ME,
                                        alive=gone)
    # a record without an identity (an older turnout) is never judged by its pid
    assert not fleetlock.holder_is_dead(holder(controller="me"), ME, alive=gone)
    # nor by a controller that cannot tell its own identity
    assert not fleetlock.holder_is_dead(holder(controller="me", controller_id=ME[
        "controller_id"]), {"controller": "me", "controller_id": None}, alive=gone)


def test_controller_identity_is_the_boot_id_and_the_pid_namespace(tmp_path: Path) -> None:
    boot = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\n"
    assert fleetlock.identity_token(boot, "pid:[4026531836]") == ME["controller_id"]
    assert fleetlock.identity_token("not-a-uuid", "pid:[4026531836]") is None
    assert fleetlock.identity_token(boot, "mnt:[4026531840]") is None
    mine = fleetlock.controller_id()
    assert mine is not None and mine.endswith(
        "/pidns-" + os.readlink("/proc/self/ns/pid")[5:-1])
    assert lock.decide(None, req(controller_id=mine), NOW).record["controller_id"] == mine
    assert fleetlock.controller_id(str(tmp_path / "missing")) is None


def test_the_pid_namespace_part_differs_in_a_new_pid_namespace() -> None:
    """What the drill relies on: unshare --pid gives another controller_id, same boot id."""
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "readlink",
                           "/proc/self/ns/pid"], capture_output=True, text=True, timeout=30,
                          check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot create a PID namespace here: {proc.stderr.strip()[:80]}")
    other = fleetlock.identity_token(Path(fleetlock.BOOT_ID_PATH).read_text(),
                                     proc.stdout.strip())
    mine = fleetlock.controller_id()
    assert other and mine and other != mine and other.split("/")[0] == mine.split("/")[0]


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


def run_script(request: dict, path: Path) -> dict:
    """What invoke unlock and the heartbeat ship to the LB, run on a Python without turnout."""
    proc = subprocess.run(["/usr/bin/python3", "-I", "-"],
                          input=fleetlock.lock_script(request, str(path)),
                          capture_output=True, text=True, cwd=path.parent, timeout=30,
                          check=False)
    result = fleetlock.script_result(proc.stdout)
    assert result is not None, proc.stderr
    return result


def test_the_lock_script_runs_without_turnout_installed(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    held = {"owner": "jenkins:x", "run_id": "20261122T000000Z-abc", "action": "deploy"}
    path.write_text(json.dumps(held))
    result = run_script({"op": "break"}, path)
    assert result["op"] == "remove" and result["previous"]["owner"] == "jenkins:x"
    assert not path.exists()


def test_unlock_removes_only_the_holder_it_showed(tmp_path: Path) -> None:
    """unlock shows a holder, asks, then breaks the lock by compare-and-swap on that run id:
    a run that took the lock in between keeps it."""
    assert lock.decide(holder("run-a"), {"op": "break", "expect_run_id": "run-a"}, NOW).op == \
        "remove"
    changed = lock.decide(holder("run-c"), {"op": "break", "expect_run_id": "run-a"}, NOW)
    assert changed.op == "refuse" and "changed since it was shown" in changed.message
    assert "run-c" in changed.message and "nothing was removed" in changed.message
    assert lock.decide(None, {"op": "break", "expect_run_id": "run-a"}, NOW).op == "none"
    corrupt = lock.parse("{not json")
    assert lock.decide(corrupt, {"op": "break", "expect_run_id": corrupt["run_id"]}, NOW).op == \
        "remove"
    with pytest.raises(lock.LockError, match="expect_run_id"):
        lock.decide(None, {"op": "break", "expect_run_id": "a b"}, NOW)
    path = tmp_path / "deploy.lock"
    lock.apply(req(run_id="run-c"), str(path), NOW)
    result = run_script({"op": "break", "expect_run_id": "run-a"}, path)
    assert result["op"] == "refuse" and json.loads(path.read_text())["run_id"] == "run-c"
    result = run_script({"op": "break", "expect_run_id": "run-c"}, path)
    assert result["op"] == "remove" and not path.exists()


def test_a_heartbeat_through_the_lock_script(tmp_path: Path) -> None:
    path = tmp_path / "deploy.lock"
    lock.apply(req(run_id="run-a"), str(path), NOW)
    assert run_script(req("heartbeat", run_id="run-a"), path)["op"] == "write"
    assert json.loads(path.read_text())["heartbeat_at"] != lock.format_ts(NOW)
    lost = run_script(req("heartbeat", run_id="run-b"), path)
    assert lost["op"] == "refuse" and "lost the deploy lock" in lost["message"]
    bad = run_script({"op": "heartbeat"}, path)
    assert "run_id must be" in bad["error"]
