"""The fleet-wide deploy lock: one JSON file on the load balancer host.

``/var/lib/turnout/deploy.lock`` holds who runs a deploy or rollback on an environment
(owner, run id, action, version, env, the controller's host name, identity and pid, the
holder's TTL, started and heartbeat times). Every controller (a workstation, Jenkins, AWX)
sees it because it lives on the fleet. A holder's heartbeat is judged by the TTL the holder
wrote (``ttl_s``), never by the TTL of whoever asks.

This is the fleet side of the lock: it is shipped to the load balancer by the ``turnout_lock``
module (through ``plugins/module_utils/turnout_lock.py``, a symlink to this file, with
``turnout_contracts``), so it is stdlib only and runs on the hosts' Python (3.11 on Debian
12). The controller side (who holds it, is that process alive, the invoke pre-check and
unlock) is turnout.fleetlock. :func:`decide` is the whole policy and is pure; :func:`apply`
does the I/O: an exclusive ``flock`` on the lock's directory for every
read-compare-write, and ``link(2)`` of a fully written temporary file so the lock file
appears atomically with its content (a crash never leaves a half-written lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

try:  # on the load balancer, in the turnout_lock module: shipped beside it as module_utils
    from ansible.module_utils.turnout_contracts import PATHS, format_timestamp, parse_timestamp
except ImportError:
    try:  # on the controller
        from turnout.contracts import PATHS, format_timestamp, parse_timestamp
    except ImportError:  # on the load balancer as a script (turnout.fleetlock.force_release)
        from turnout_contracts import PATHS, format_timestamp, parse_timestamp

LOCK_PATH = PATHS["lock"]
DEFAULT_TTL_S = 900
MIN_TTL_S = 30
MAX_TTL_S = 86400
OPS = ("read", "acquire", "heartbeat", "release", "break")
ACTIONS = ("deploy", "rollback", "promote", "provision", "reconcile")
FIELDS = ("owner", "run_id", "action", "version", "env", "controller", "controller_id", "pid",
          "pid_start", "ttl_s", "started_at", "heartbeat_at")
HELD_MARKER = "deploy lock held"
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+/-]{0,127}$")


class LockError(Exception):
    """A lock request that cannot be carried out (bad arguments, unreadable file)."""


@dataclass
class Decision:
    """What to do with the lock file: write ``record``, remove it, or nothing; and why."""

    op: str  # write | remove | none | refuse
    record: dict[str, Any] | None = None
    changed: bool = False
    warnings: list[str] = field(default_factory=list)
    message: str = ""


format_ts = format_timestamp
parse_ts = parse_timestamp


def holder_ttl(holder: dict[str, Any]) -> int:
    """The TTL a holder wrote into its record; DEFAULT_TTL_S for a record without a valid one
    (written by an older turnout)."""
    ttl = holder.get("ttl_s")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_S <= ttl <= MAX_TTL_S:
        return DEFAULT_TTL_S
    return ttl


def parse(text: str) -> dict[str, Any]:
    """The lock file's JSON; an unreadable lock is kept as held by an unknown owner."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        return {"owner": "unknown (unreadable lock file)", "run_id": "?", "corrupt": True}
    return {key: data.get(key) for key in FIELDS}


def describe(holder: dict[str, Any]) -> str:
    """One line naming a holder: owner, run, action/version, controller pid, since when."""
    what = " ".join(str(holder[k]) for k in ("action", "version") if holder.get(k))
    where = f"pid {holder.get('pid')} on {holder.get('controller')}" \
        if holder.get("controller") else "unknown controller"
    ttl = f", ttl {holder['ttl_s']}s" if isinstance(holder.get("ttl_s"), int) else ""
    return (f"{holder.get('owner') or 'unknown'} (run {holder.get('run_id')}"
            f"{', ' + what if what else ''}, {where}, since {holder.get('started_at') or '?'}, "
            f"heartbeat {holder.get('heartbeat_at') or '?'}{ttl})")


def check_request(request: dict[str, Any]) -> None:
    """Reject malformed requests before anything is read or written (one line each)."""
    op = request.get("op")
    if op not in OPS:
        raise LockError(f"op must be one of {', '.join(OPS)} (got {op!r})")
    if op == "read":
        return
    if op == "break":
        expect = request.get("expect_run_id")
        if expect is not None and (not isinstance(expect, str) or
                                   not (expect == "?" or _TOKEN.match(expect))):
            raise LockError(f"expect_run_id must be the run id of the holder shown (got "
                            f"{expect!r})")
        return
    for key in ("run_id", "owner", "env", "controller"):
        value = request.get(key)
        if not isinstance(value, str) or not _TOKEN.match(value):
            raise LockError(f"{key} must be 1-128 letters, digits or _.:@+/- (got {value!r})")
    controller_id = request.get("controller_id")
    if controller_id is not None and (not isinstance(controller_id, str)
                                      or not _TOKEN.match(controller_id)):
        raise LockError(f"controller_id must be 1-128 letters, digits or _.:@+/- (got "
                        f"{controller_id!r})")
    if op == "acquire" and request.get("action") not in ACTIONS:
        raise LockError(f"action must be one of {', '.join(ACTIONS)} "
                        f"(got {request.get('action')!r})")
    ttl = request.get("ttl_s", DEFAULT_TTL_S)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL_S <= ttl <= MAX_TTL_S:
        raise LockError(f"ttl_s must be a whole number of seconds from {MIN_TTL_S} to "
                        f"{MAX_TTL_S} (got {ttl!r})")


def decide(current: dict[str, Any] | None, request: dict[str, Any], now: datetime) -> Decision:
    """Pure policy. ``current`` is the parsed lock (None when free); ``request`` has ``op``,
    the caller's identity, ``ttl_s`` and ``steal_run_id`` (the run id of a holder the caller
    found dead: stealing is a compare-and-swap on that id). A ``break`` with
    ``expect_run_id`` removes only that holder (``invoke unlock`` removes the holder it showed).
    """
    check_request(request)
    op, stamp = request["op"], format_ts(now)
    if op == "read":
        return Decision("none", current)
    if op == "break":
        if current is None:
            return Decision("none", None, message="the deploy lock was not held")
        expect = request.get("expect_run_id")
        if expect is not None and expect != current.get("run_id"):
            return Decision("refuse", current, message=(
                f"the deploy lock changed since it was shown (run {expect}); it is now held by "
                f"{describe(current)}; nothing was removed"))
        return Decision("remove", current, changed=True,
                        message=f"removed the deploy lock of {describe(current)}")
    mine = current is not None and current.get("run_id") == request["run_id"]
    if op == "heartbeat":
        if not mine:
            held = describe(current) if current else "nobody"
            return Decision("refuse", current, message=f"run {request['run_id']} lost the deploy "
                            f"lock (now held by {held}); stop and check the fleet")
        return Decision("write", {**current, "heartbeat_at": stamp}, changed=True)
    if op == "release":
        if current is None:
            return Decision("none", None, message="the deploy lock was already free")
        if not mine:
            return Decision("none", current, warnings=[
                f"deploy lock now belongs to {describe(current)}; left it in place"])
        return Decision("remove", current, changed=True, message="released the deploy lock")
    # acquire
    record = {key: request.get(key) for key in FIELDS}
    record.update(ttl_s=request.get("ttl_s", DEFAULT_TTL_S), started_at=stamp, heartbeat_at=stamp)
    if current is None:
        return Decision("write", record, changed=True, message="acquired the deploy lock")
    if mine:
        return Decision("write", {**current, "heartbeat_at": stamp}, changed=True,
                        message="already held by this run")
    if current.get("corrupt"):
        return Decision("refuse", current, message=(
            f"{HELD_MARKER}: the lock file {LOCK_PATH} is unreadable; check no deploy runs, "
            f"then run 'invoke unlock --env {request['env']}'"))
    steal = request.get("steal_run_id")
    if steal and steal == current.get("run_id"):
        return Decision("write", record, changed=True, message="acquired the deploy lock",
                        warnings=[f"recovered a stale deploy lock: its holder is gone "
                                  f"({describe(current)})"])
    beat = parse_ts(current.get("heartbeat_at")) or parse_ts(current.get("started_at"))
    ttl = holder_ttl(current)  # the holder's TTL: it chose how often it refreshes
    if beat is None or (now - beat).total_seconds() > ttl:
        return Decision("write", record, changed=True, message="acquired the deploy lock",
                        warnings=[f"recovered an expired deploy lock: no heartbeat for more "
                                  f"than its {ttl}s TTL ({describe(current)})"])
    return Decision("refuse", current, message=(
        f"{HELD_MARKER} by {describe(current)}; wait for it to finish or, if it is gone, "
        f"run 'invoke unlock --env {request['env']}'"))


@contextlib.contextmanager
def _dir_lock(directory: str):
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return parse(handle.read())
    except FileNotFoundError:
        return None


def _write(path: str, record: dict[str, Any], exclusive: bool) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".deploy.lock.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fchmod(handle.fileno(), 0o640)
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # fails with FileExistsError if someone else got there first
        else:
            os.replace(tmp, path)
            tmp = ""
    finally:
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def apply(request: dict[str, Any], path: str = LOCK_PATH,
          now: datetime | None = None) -> tuple[Decision, dict[str, Any] | None]:
    """Carry out one request on the lock file; return the decision and the previous holder."""
    check_request(request)
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    with _dir_lock(directory):
        current = _read(path)
        decision = decide(current, request, now or datetime.now(UTC))
        if decision.op == "write":
            _write(path, decision.record or {}, exclusive=current is None)
        elif decision.op == "remove":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return decision, current
