"""The deploy lock seen from the controller, over SSH: a fast pre-check and `unlock`.

The playbooks take and release the lock themselves (plugins/action/turnout_lock.py); this is
the invoke side: refuse early, naming the holder, and break a lock on request. The policy is
turnout.lock (pure); this module only moves bytes over OpenSSH.
"""

from __future__ import annotations

import json
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from turnout import lock
from turnout.errors import DeployFailed, InputError
from turnout.facts import SSH_TIMEOUT_S, _sudo
from turnout.inventory import Environment, Host, ssh_argv

LOCK_SOURCE = Path(lock.__file__)


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
    if lock.holder_is_dead(holder, controller):
        request["steal_run_id"] = holder.get("run_id")
    decision = lock.decide(holder, request, datetime.now(UTC))
    if decision.op == "refuse":
        raise LockHeld(f"{env.name}: {decision.message}")
    return "; ".join(decision.warnings) or None


def force_release(env: Environment) -> dict | None:
    """Remove env's deploy lock whoever holds it; return the holder that was removed."""
    script = LOCK_SOURCE.read_text() + (
        "\nimport json as _j\n_d, _prev = apply({'op': 'break'})\nprint(_j.dumps(_prev))\n")
    proc = _ssh(env.lb[0], "python3 -", stdin=script)
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "ssh failed"
        raise DeployFailed(f"cannot remove the deploy lock on {env.lb[0].name}: {reason}")
    out = proc.stdout.strip().splitlines()
    return json.loads(out[-1]) if out else None
