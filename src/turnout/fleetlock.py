"""The controller side of the deploy lock: who this controller is, whether a holder that ran
here is still alive, and the invoke side over SSH (a fast pre-check, `unlock`).

The playbooks take and release the lock through the ``turnout_lock`` action plugin, which
asks this module about the controller and dead local holders; the fleet side (the policy and
the file on the load balancer) is turnout.lock. Scripts for the load balancer
(:func:`lock_script`) carry turnout.contracts and turnout.lock with them, so nothing of
turnout needs to be installed there.

A holder is judged dead here, at once, only when it ran on this very controller: the same host
name AND the same :func:`controller_id` (the kernel's boot id and this PID namespace), so two
CI agents in containers that share a host name never judge each other by a pid they cannot see.
"""

from __future__ import annotations

import json
import os
import re
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
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
PID_NS_PATH = "/proc/self/ns/pid"
_BOOT_ID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_PID_NS = re.compile(r"\Apid:\[(\d+)\]\Z")


class LockHeld(InputError):
    """Another run holds the environment's deploy lock (exit 2, naming the holder)."""


class LockChanged(InputError):
    """The lock changed between showing its holder and removing it (exit 2, nothing removed)."""


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
    identity = controller_identity()
    request = {"op": "acquire", "run_id": "precheck", "owner": by.replace(" ", "_") or "unknown",
               "action": action, "env": env.name, **identity}
    if holder_is_dead(holder, identity):
        request["steal_run_id"] = holder.get("run_id")
    decision = lock.decide(holder, request, datetime.now(UTC))
    if decision.op == "refuse":
        raise LockHeld(f"{env.name}: {decision.message}")
    return "; ".join(decision.warnings) or None


def lock_script(request: dict[str, Any], path: str = lock.LOCK_PATH) -> str:
    """A self-contained Python script that carries out one lock ``request`` on the load
    balancer (turnout.lock.apply on ``path``) and prints what happened as one JSON line:
    ``{op, message, holder, previous, warnings}``, or ``{error}`` with exit 2. turnout.contracts
    and turnout.lock travel inside it as modules: no turnout is installed there."""
    return (  # contracts and lock as modules (a future import must come first in each)
        "import json, sys, types\n"
        "contracts = types.ModuleType('turnout_contracts')\n"
        f"exec({CONTRACTS_SOURCE.read_text()!r}, contracts.__dict__)\n"
        "sys.modules['turnout_contracts'] = contracts\n"
        "lock = sys.modules['turnout_lock'] = types.ModuleType('turnout_lock')\n"
        f"exec({LOCK_SOURCE.read_text()!r}, lock.__dict__)\n"
        "try:\n"
        f"    decision, previous = lock.apply({request!r}, {path!r})\n"
        "except (lock.LockError, OSError) as error:\n"
        "    print(json.dumps({'error': str(error)}))\n"
        "    sys.exit(2)\n"
        "print(json.dumps({'op': decision.op, 'message': decision.message,\n"
        "                  'holder': decision.record, 'previous': previous,\n"
        "                  'warnings': decision.warnings}))\n")


def script_result(stdout: str) -> dict[str, Any] | None:
    """The JSON line a :func:`lock_script` printed last, or None if there is none."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def force_release(env: Environment, expect_run_id: str | None = None) -> dict | None:
    """Remove env's deploy lock and return the holder that was removed (None if it was free).

    With ``expect_run_id`` (what ``invoke unlock`` showed), only that holder is removed: a lock
    taken by another run in the meantime raises LockChanged and stays."""
    request: dict[str, Any] = {"op": "break"}
    if expect_run_id is not None:
        request["expect_run_id"] = expect_run_id
    lb = env.lb[0]
    proc = _ssh(lb, "python3 -", stdin=lock_script(request))
    result = script_result(proc.stdout)
    if proc.returncode != 0 or result is None or "error" in result:
        reason = (result or {}).get("error") or (proc.stderr.strip().splitlines()[-1]
                                                 if proc.stderr.strip() else "ssh failed")
        raise DeployFailed(f"cannot remove the deploy lock on {lb.name}: {reason}")
    if result.get("op") == "refuse":
        raise LockChanged(f"{env.name}: {result.get('message')}; run 'invoke unlock --env "
                          f"{env.name}' again to see the holder")
    return result.get("previous") if result.get("op") == "remove" else None


# ------------------------------------------------------------- who this controller is

def identity_token(boot_id: str, pid_ns_link: str) -> str | None:
    """Pure: ``<boot id>/pidns-<inode>`` from the kernel's boot id and the target of
    /proc/self/ns/pid (``pid:[4026531836]``); None when either is not what Linux gives."""
    boot, link = boot_id.strip().lower(), pid_ns_link.strip()
    match = _PID_NS.match(link)
    if not _BOOT_ID.match(boot) or not match:
        return None
    return f"{boot}/pidns-{match.group(1)}"


def controller_id(boot_id_path: str = BOOT_ID_PATH, pid_ns_path: str = PID_NS_PATH) -> str | None:
    """What a process here shares only with processes that see the same pids: the kernel's
    boot id (another machine, or this one rebooted, has another) and the PID namespace
    (another container on the same node has another). None when unreadable: then no holder
    is ever judged dead here, only by its TTL."""
    try:
        with open(boot_id_path, encoding="ascii") as handle:
            boot = handle.read()
        link = os.readlink(pid_ns_path)
    except OSError:
        return None
    return identity_token(boot, link)


def controller_identity() -> dict[str, Any]:
    """This controller as the lock records it: host name and :func:`controller_id`."""
    return {"controller": socket.gethostname(), "controller_id": controller_id()}


# ------------------------------------------------------------- this controller's processes

def holder_is_dead(holder: dict[str, Any] | None, identity: dict[str, Any],
                   alive: Any = None) -> bool:
    """True when the holder ran on this controller (``identity``: the same host name and the
    same controller_id, so its pid means the same process here) and that process is gone.

    ``alive(pid, pid_start)`` answers whether that process still runs (default: /proc)."""
    if not holder or holder.get("corrupt"):
        return False
    if holder.get("controller") != identity.get("controller"):
        return False
    here = identity.get("controller_id")
    if not here or holder.get("controller_id") != here:
        return False  # another container with this host name, or an older record: TTL only
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
