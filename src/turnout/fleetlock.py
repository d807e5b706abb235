"""The controller side of the deploy lock: who this controller is, whether a holder that ran
here is still alive, and the invoke side over SSH (a fast pre-check, `unlock`).

The playbooks take and release the lock through the ``turnout_lock`` action plugin, which
asks this module about the controller and dead local holders; the fleet side (the policy and
the file on the load balancer) is turnout.lock.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from turnout import contracts, lock
from turnout.errors import DeployFailed, InputError
from turnout.facts import SSH_TIMEOUT_S, _sudo
from turnout.inventory import Environment, Host, ssh_argv

LOCK_SOURCE = Path(lock.__file__)
CONTRACTS_SOURCE = Path(contracts.__file__)


class LockHeld(InputError):
    """Another run holds the environment's deploy lock (exit 2, naming the holder)."""


def _ssh(host: Host, command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(ssh_argv(host, _sudo(host, command)), input=stdin,
                              capture_output=True, text=True, timeout=SSH_TIMEOUT_S,
                              stdin=None if stdin is not None else subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise DeployFailed(f"load balancer {host.name} unreachable: ssh timed out after "
                           f"{SSH_TIMEOUT_S:.0f}s; nothing was changed") from exc


def read(env: Environment) -> dict | None:
    """The current holder of env's deploy lock, or None when it is free."""
    lb = env.lb[0]
    proc = _ssh(lb, f"cat {lock.LOCK_PATH} 2>/dev/null || true")
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "ssh failed"
        raise DeployFailed(f"load balancer {lb.name} unreachable: {reason}; nothing was changed")
    return lock.parse(proc.stdout) if proc.stdout.strip() else None


def precheck(env: Environment, action: str, by: str) -> str | None:
    """Refuse (LockHeld, exit 2) when another live run holds the lock; return a warning when
    the holder looks stale (the playbook will recover it)."""
    holder = read(env)
    if holder is None:
        return None
    controller = socket.gethostname()
    request = {"op": "acquire", "run_id": "precheck", "owner": by.replace(" ", "_") or "unknown",
               "action": action, "env": env.name, "controller": controller}
    if holder_is_dead(holder, controller):
        request["steal_run_id"] = holder.get("run_id")
    decision = lock.decide(holder, request, datetime.now(UTC))
    if decision.op == "refuse":
        raise LockHeld(f"{env.name}: {decision.message}")
    return "; ".join(decision.warnings) or None


def unlock_script(path: str = lock.LOCK_PATH) -> str:
    """A self-contained Python script that breaks the lock at ``path`` on the load balancer and
    prints the holder it removed (JSON): turnout.contracts and turnout.lock as modules, no
    turnout installed there."""
    return (  # contracts and lock as modules (a future import must come first in each)
        "import json, sys, types\n"
        "contracts = types.ModuleType('turnout_contracts')\n"
        f"exec({CONTRACTS_SOURCE.read_text()!r}, contracts.__dict__)\n"
        "sys.modules['turnout_contracts'] = contracts\n"
        "lock = sys.modules['turnout_lock'] = types.ModuleType('turnout_lock')\n"
        f"exec({LOCK_SOURCE.read_text()!r}, lock.__dict__)\n"
        f"_, previous = lock.apply({{'op': 'break'}}, {path!r})\n"
        "print(json.dumps(previous))\n")


def force_release(env: Environment) -> dict | None:
    """Remove env's deploy lock whoever holds it; return the holder that was removed."""
    script = unlock_script()
    proc = _ssh(env.lb[0], "python3 -", stdin=script)
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "ssh failed"
        raise DeployFailed(f"cannot remove the deploy lock on {env.lb[0].name}: {reason}")
    out = proc.stdout.strip().splitlines()
    return json.loads(out[-1]) if out else None


# ------------------------------------------------------------- this controller's processes

def holder_is_dead(holder: dict[str, Any] | None, controller: str,
                   alive: Any = None) -> bool:
    """True when the holder ran on ``controller`` (this machine) and its process is gone.

    ``alive(pid, pid_start)`` answers whether that process still runs (default: /proc)."""
    if not holder or holder.get("corrupt") or holder.get("controller") != controller:
        return False
    pid = holder.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    return not (alive or process_alive)(pid, holder.get("pid_start"))


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 on (after the command name), or [] if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return []
    return stat.rsplit(")", 1)[-1].split()


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else None


def process_state(pid: int) -> str | None:
    """The process's state letter (/proc/PID/stat field 3), e.g. R, S, Z; None if gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def process_alive(pid: int, pid_start: Any = None) -> bool:
    """True if pid runs (a zombie, killed but not yet reaped, holds nothing: not alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if process_state(pid) in ("Z", "X"):
        return False
    return pid_start is None or process_start(pid) in (None, str(pid_start))
