"""The deploy lock's heartbeat: keeps a run's lock fresh for as long as the run lives.

The ``turnout_lock`` action plugin starts it when a playbook takes the lock, so
ansible-playbook, AWX and invoke all get it: a detached process on the controller,
``python -m turnout.heartbeat --run-id ID``, that reads its :class:`Spec` as JSON on stdin.
Every ``ttl_s / 3`` seconds it refreshes the lock on the load balancer (a compare-and-swap on
the run id, turnout.lock) with :func:`turnout.fleetlock.lock_script` over OpenSSH, with the
connection settings Ansible uses for that host (its control socket directory too) and host key
checking on. It ends when:

- the run's ansible-playbook process ends (a pidfd on it becomes readable): a killed run stops
  refreshing, so another controller recovers its lock after the TTL (this controller at once,
  turnout.fleetlock.holder_is_dead);
- a refresh is refused: the lock was released or taken over, there is nothing left to keep;
- the release stops it (SIGTERM, :func:`stop`), before the lock is removed.

A refresh that fails (the LB unreachable for a moment) is retried every few seconds. Its state
(pid, refreshes, failures, the longest gap between two refreshes) is a JSON file in a directory
only this user can write; :func:`stop` returns it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from turnout import fleetlock, lock
from turnout.contracts import format_timestamp
from turnout.errors import TurnoutError
from turnout.inventory import Host, ensure_private_dir, ssh_argv

STATE_DIR = "~/.ansible/turnout/heartbeat"
MODULE = "turnout.heartbeat"
START_DEADLINE_S = 10.0
STOP_DEADLINE_S = 15.0
MAX_BEAT_TIMEOUT_S = 15.0
MAX_RETRY_S = 5.0


class HeartbeatError(TurnoutError):
    """The heartbeat cannot refresh the lock or cannot be started."""


class Stopped(Exception):
    """SIGTERM: the release stops the heartbeat."""


@dataclass(frozen=True)
class Spec:
    """Everything the heartbeat needs: whose lock, how long it lives, how to reach the LB."""

    run_id: str
    owner: str
    env: str
    controller: str
    controller_id: str | None
    pid: int  # the run's ansible-playbook process: the heartbeat ends with it
    pid_start: str | None
    ttl_s: int
    lock_path: str = lock.LOCK_PATH
    host: dict[str, Any] = field(default_factory=dict)  # turnout.inventory.Host fields
    local: bool = False  # the LB is this machine (connection 'local'): no ssh
    become: bool = False  # sudo -n, as Ansible becomes root for the lock module
    become_user: str | None = None
    control_dir: str | None = None
    python: str = "python3"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Spec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def request(self) -> dict[str, Any]:
        """The lock request of one refresh."""
        return {"op": "heartbeat", "run_id": self.run_id, "owner": self.owner, "env": self.env,
                "controller": self.controller, "controller_id": self.controller_id,
                "ttl_s": self.ttl_s}

    def remote_command(self) -> str:
        command = f"{shlex.quote(self.python)} -"
        if not self.become:
            return command
        user = self.become_user if self.become_user not in (None, "", "root") else None
        return f"sudo -n{' -u ' + shlex.quote(user) if user else ''} {command}"

    def argv(self) -> list[str]:
        """The command one refresh runs; the lock script goes to its stdin."""
        if self.local:
            return ["sh", "-c", self.remote_command()]
        host = Host(name=str(self.host.get("name") or self.host.get("address")),
                    address=str(self.host["address"]), user=self.host.get("user"),
                    port=self.host.get("port"), key_file=self.host.get("key_file"),
                    ssh_args=tuple(self.host.get("ssh_args") or ()))
        return ssh_argv(host, self.remote_command(), self.control_dir)

    def problem(self) -> str | None:
        """Why this spec cannot be kept alive, or None."""
        if isinstance(self.pid, bool) or not isinstance(self.pid, int) or self.pid <= 0:
            return f"pid must be the run's ansible-playbook pid (got {self.pid!r})"
        if isinstance(self.ttl_s, bool) or not isinstance(self.ttl_s, int) or \
                not lock.MIN_TTL_S <= self.ttl_s <= lock.MAX_TTL_S:
            return f"ttl_s must be {lock.MIN_TTL_S}-{lock.MAX_TTL_S} (got {self.ttl_s!r})"
        if not self.local and not self.host.get("address"):
            return "the load balancer's address is missing"
        return None

    @property
    def where(self) -> str:
        return "this machine" if self.local else str(self.host.get("name") or
                                                      self.host.get("address"))


def interval_s(ttl_s: int) -> float:
    """How often the lock is refreshed: three times per TTL."""
    return max(1.0, ttl_s / 3)


def retry_s(ttl_s: int) -> float:
    """How soon a failed refresh is tried again."""
    return min(MAX_RETRY_S, interval_s(ttl_s))


@dataclass
class Beat:
    """One refresh: done, refused (the lock is no longer this run's), or failed to run."""

    ok: bool
    lost: bool = False
    message: str = ""


def judge(returncode: int, stdout: str, stderr: str) -> Beat:
    """Pure: what a refresh's ssh command said."""
    result = fleetlock.script_result(stdout)
    if result and result.get("op") == "write":
        return Beat(ok=True)
    if result and result.get("op") == "refuse":
        return Beat(ok=False, lost=True, message=str(result.get("message") or "refused"))
    if result and result.get("error"):
        return Beat(ok=False, message=str(result["error"]))
    lines = stderr.strip().splitlines()
    return Beat(ok=False, message=lines[-1] if lines else f"exit {returncode}, no answer")


def beat(spec: Spec) -> Beat:
    """Refresh the lock once."""
    timeout = min(MAX_BEAT_TIMEOUT_S, max(5.0, interval_s(spec.ttl_s)))
    try:
        proc = subprocess.run(spec.argv(), input=fleetlock.lock_script(spec.request(),
                                                                        spec.lock_path),
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Beat(ok=False, message=f"no answer from {spec.where} within {timeout:.0f}s")
    except OSError as error:
        return Beat(ok=False, message=str(error))
    return judge(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class State:
    """What the heartbeat did, as its state file holds it."""

    run_id: str
    pid: int
    pid_start: str | None
    started_at: str
    status: str = "running"  # running | stopped | lost | run ended
    beats: int = 0
    failures: int = 0
    last_ok_at: str | None = None
    last_error: str = ""
    max_gap_s: float = 0.0  # longest time between two refreshes that reached the lock


def keep(spec: Spec, state: State, refresh: Callable[[], Beat],
         wait: Callable[[float], bool], clock: Callable[[], float],
         stamp: Callable[[], str], save: Callable[[State], None]) -> State:
    """Refresh every interval until the run ends (``wait`` returns True) or a refresh is
    refused. The acquire that started the heartbeat counts as the first refresh."""
    last_ok = clock()
    delay = interval_s(spec.ttl_s)
    while True:
        if wait(delay):
            state.status = "run ended"
            break
        result = refresh()
        now = clock()
        if result.ok:
            state.beats += 1
            state.max_gap_s = round(max(state.max_gap_s, now - last_ok), 1)
            state.last_ok_at = stamp()
            last_ok, delay = now, interval_s(spec.ttl_s)
        elif result.lost:
            state.status, state.last_error = "lost", result.message
            break
        else:
            state.failures += 1
            state.last_error = result.message
            delay = retry_s(spec.ttl_s)
        save(state)
    save(state)
    return state


class RunWatch:
    """Tells when the run's ansible-playbook process ends: a pidfd, else polling /proc."""

    def __init__(self, pid: int, pid_start: str | None) -> None:
        self.pid, self.pid_start, self.fd = pid, pid_start, None
        if pid > 0:
            with contextlib.suppress(OSError, AttributeError):
                self.fd = os.pidfd_open(pid)  # the process itself, even if its pid is reused

    def ended(self) -> bool:
        return self.pid <= 0 or not fleetlock.process_alive(self.pid, self.pid_start)

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the run has ended."""
        deadline = time.monotonic() + seconds
        while not self.ended():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.fd is not None:
                readable, _, _ = select.select([self.fd], [], [], left)
                if readable:
                    return True
            else:
                time.sleep(min(1.0, left))  # no pidfd (old kernel): poll once a second
        return True


# ---------------------------------------------------------------------------- state files

def state_dir() -> Path:
    return ensure_private_dir(Path(STATE_DIR).expanduser(), "lock heartbeat directory")


def _paths(run_id: str, directory: Path) -> tuple[Path, Path]:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return directory / f"{safe}.json", directory / f"{safe}.log"


def read_state(run_id: str, directory: Path | None = None) -> dict[str, Any] | None:
    path, _ = _paths(run_id, directory or state_dir())
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save(path: Path, state: State) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), sort_keys=True))
    os.replace(tmp, path)


def _is_heartbeat(pid: Any, run_id: str) -> bool:
    """True if pid is the heartbeat of run_id (its command line says so), not a reused pid."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return MODULE.encode() in argv and run_id.encode() in argv and \
        fleetlock.process_alive(pid)


def _sweep(directory: Path, max_age_s: float = 86400) -> None:
    """Remove state files of heartbeats that ended more than a day ago."""
    now = time.time()
    for path in directory.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            if now - path.stat().st_mtime > max_age_s and \
                    not _is_heartbeat(json.loads(path.read_text()).get("pid"), path.stem):
                path.unlink()
                path.with_suffix(".log").unlink(missing_ok=True)


# ---------------------------------------------------------------------------- start, stop

def start(spec: Spec, directory: Path | None = None) -> int:
    """Start the heartbeat of spec's run, detached (its own session, no inherited output);
    return its pid once it runs. HeartbeatError if it does not come up."""
    directory = directory or state_dir()
    _sweep(directory)
    state_path, log_path = _paths(spec.run_id, directory)
    state_path.unlink(missing_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--run-id", spec.run_id, "--state-dir",
             str(directory)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True, close_fds=True, cwd="/")
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(asdict(spec)).encode())
    proc.stdin.close()
    deadline = time.monotonic() + START_DEADLINE_S
    while (read_state(spec.run_id, directory) or {}).get("pid") != proc.pid:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["-"]
            raise HeartbeatError(f"the lock heartbeat exited at once (exit {proc.returncode}: "
                                 f"{tail[0][:200]})")
        if time.monotonic() > deadline:
            proc.kill()
            raise HeartbeatError(f"the lock heartbeat did not start within "
                                 f"{START_DEADLINE_S:.0f}s")
        time.sleep(0.02)
    return proc.pid


def running(run_id: str, directory: Path | None = None) -> bool:
    """True if run_id's heartbeat runs."""
    return _is_heartbeat((read_state(run_id, directory) or {}).get("pid"), run_id)


def ensure(spec: Spec, directory: Path | None = None) -> bool:
    """Start spec's heartbeat again if it died; True if it had to."""
    if running(spec.run_id, directory):
        return False
    start(spec, directory)
    return True


def stop(run_id: str, directory: Path | None = None) -> dict[str, Any] | None:
    """Stop run_id's heartbeat and wait for it to end; return its final state (None if it
    never ran here). Its files are removed."""
    directory = directory or state_dir()
    state = read_state(run_id, directory)
    if state is None:
        return None
    pid = state.get("pid")
    if _is_heartbeat(pid, run_id):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE_S
        while fleetlock.process_alive(pid, state.get("pid_start")):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        state = read_state(run_id, directory) or state
    for path in _paths(run_id, directory):
        path.unlink(missing_ok=True)
    return state


# ---------------------------------------------------------------------------- the process

def _stopped(signum: int, frame: Any) -> None:
    raise Stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description="Keep a run's deploy lock fresh (started by "
                                                 "the turnout_lock action plugin).")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    spec = Spec.from_json(json.load(sys.stdin))
    problem = (f"the spec is for run {spec.run_id}, not {args.run_id}"
               if spec.run_id != args.run_id else spec.problem())
    if problem:
        print(f"turnout: error: heartbeat: {problem}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stopped)
    state_path, _ = _paths(spec.run_id, Path(args.state_dir))
    state = State(run_id=spec.run_id, pid=os.getpid(), pid_start=fleetlock.process_start(
        os.getpid()), started_at=format_timestamp(datetime.now(UTC)))
    watch = RunWatch(spec.pid, spec.pid_start)
    try:
        _save(state_path, state)
        keep(spec, state, lambda: beat(spec), watch.wait, time.monotonic,
             lambda: format_timestamp(datetime.now(UTC)), lambda s: _save(state_path, s))
    except Stopped:
        state.status = "stopped"
        _save(state_path, state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
