"""The release state of the fleet, kept on every load balancer: what each pool runs, whether
and when it went live and was verified, by which run, and the flip in progress.

Every controller (a workstation, Jenkins, an AWX job whose private data dir is thrown away)
reads the same state from the load balancers, so rollback decisions never depend on which
controller holds which copy of the manifest. The manifest stays the record of runs.

``/var/lib/turnout/fleet-state.json`` on each LB, beside the deploy lock. Every write carries a
``serial`` one higher than the newest copy any LB holds; the newest copy wins (an LB that was
down during a run, or rebuilt, is behind). This module is the fleet side: the pure transitions
(:func:`apply`), :func:`newest` and :func:`rollback_target`, and the atomic file write. It is
stdlib only and ships to the LBs as ``module_utils/turnout_fleetstate`` (a symlink).

A pool's ``status``:

- ``live``: the committed live pool's release.
- ``previous``: went live and was verified, then the other pool took over; still warm, a
  rollback target.
- ``rolled_back``: went live, then a rollback moved traffic away from it.
- ``staging`` / ``staged`` / ``awaiting_approval`` / ``failed`` / ``flipped_back`` /
  ``canary_aborted``: never went live (or its earlier content was replaced).
- ``unknown``: seeded from a fleet that had no state file (not a rollback target).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
from typing import Any

try:  # on the load balancer: shipped beside this file as module_utils
    from ansible.module_utils.turnout_contracts import PATHS, POOLS, other_pool
except ImportError:  # on the controller
    from turnout.contracts import PATHS, POOLS, other_pool

SCHEMA = 1
STATE_PATH = PATHS["fleet_state"]
HISTORY_MAX = 50
LIVE, PREVIOUS, ROLLED_BACK = "live", "previous", "rolled_back"
NEVER_LIVE = ("staging", "staged", "awaiting_approval", "failed", "flipped_back",
              "canary_aborted", "unknown")
STATUSES = (LIVE, PREVIOUS, ROLLED_BACK, *NEVER_LIVE)
OPS = ("seed", "stage", "staged", "awaiting", "failed", "begin", "commit", "abort")


class StateError(ValueError):
    """A transition that the state does not allow (one line: what and why)."""


def empty(env: str | None = None) -> dict[str, Any]:
    return {"schema": SCHEMA, "serial": 0, "env": env, "live": None,
            "pools": {pool: None for pool in POOLS}, "pending": None, "history": []}


def newest(copies: dict[str, dict[str, Any] | None]) -> tuple[dict[str, Any], list[str]]:
    """The newest state among the LBs' copies (highest serial) and the LBs whose copy is
    behind it (a missing copy is behind any written one)."""
    present = {lb: state for lb, state in copies.items() if state}
    if not present:
        return empty(), []
    best = max(present.values(), key=lambda s: int(s.get("serial") or 0))
    serial = int(best.get("serial") or 0)
    behind = sorted(lb for lb, state in copies.items()
                    if not state or int(state.get("serial") or 0) < serial)
    return copy.deepcopy(best), behind


def _release(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if not value else {k: value.get(k) for k in ("version", "sha256")}


def _require(state: dict[str, Any], pool: Any) -> str:
    if pool not in POOLS:
        raise StateError(f"unknown pool {pool!r}; use blue or green")
    return pool


def apply(state: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """A new state: ``state`` with ``event`` applied (``serial`` not changed; see bump).

    event: {op, run_id, at, pool?, version?, sha256?, action?, to?, status?, verified_at?}.
    """
    new = copy.deepcopy(state) if state else empty()
    op = event.get("op")
    at, run_id = event.get("at"), event.get("run_id")
    if op not in OPS:
        raise StateError(f"unknown fleet state op {op!r}; use one of {', '.join(OPS)}")
    if op == "seed":  # a fleet that had no state file: what the LB and the hosts say
        live = event.get("live")
        new["live"] = live if live in POOLS else None
        for pool in POOLS:
            seen = (event.get("pools") or {}).get(pool)
            if seen and seen.get("version"):
                status = LIVE if pool == new["live"] else "unknown"
                new["pools"][pool] = {**_release(seen), "run_id": seen.get("run_id"),
                                      "status": status, "since": at, "verified_at": None}
        if new["live"] and new["pools"].get(new["live"]):
            verified = at if event.get("verified") else None
            new["pools"][new["live"]]["verified_at"] = verified
            entry = {**_release(new["pools"][new["live"]]), "pool": new["live"],
                     "run_id": new["pools"][new["live"]]["run_id"], "action": "seed",
                     "live_at": at, "verified_at": verified, "left_at": None,
                     "rolled_back": False}
            new["history"] = [entry]
        return new
    if op in ("stage", "staged", "awaiting", "failed"):
        pool = _require(new, event.get("pool"))
        if op == "stage":
            if pool == new["live"] and not new.get("pending"):
                raise StateError(f"pool {pool} is live: a deploy never stages the live pool")
            new["pools"][pool] = {"version": event.get("version"), "sha256": event.get("sha256"),
                                  "run_id": run_id, "status": "staging", "since": at,
                                  "verified_at": None}
            return new
        current = new["pools"].get(pool) or {}
        if current.get("run_id") != run_id or current.get("status") in (LIVE, PREVIOUS):
            return new  # another run's release (or a live one): nothing to mark
        status = {"staged": "staged", "awaiting": "awaiting_approval",
                  "failed": event.get("status") or "failed"}[op]
        if status not in NEVER_LIVE:
            raise StateError(f"status {status!r} is not a never-live status")
        new["pools"][pool] = {**current, "status": status, "since": at}
        return new
    if op == "begin":
        to = _require(new, event.get("to"))
        new["pending"] = {"run_id": run_id, "action": event.get("action"),
                          "from": new["live"], "to": to,
                          **(_release(new["pools"].get(to)) or {"version": None,
                                                               "sha256": None}),
                          "at": at}
        return new
    pending = new.get("pending")
    if not pending:
        return new  # nothing in progress: commit/abort of a run that is gone is a no-op
    if op == "abort":
        to = pending["to"]
        current = new["pools"].get(to) or {}
        if current.get("status") not in (LIVE, PREVIOUS):
            new["pools"][to] = {**current, "status": event.get("status") or "flipped_back",
                                "since": at}
        new["pending"] = None
        return new
    # commit: traffic is on pending.to on every LB and was verified through them. Only a plain
    # rollback marks what it left as rolled back (an explicit rollback --to is a choice).
    source, target = pending.get("from"), pending["to"]
    rollback = pending.get("action") == "rollback"
    if source in POOLS and source != target and new["pools"].get(source):
        leaving = new["pools"][source]
        new["pools"][source] = {**leaving, "status": ROLLED_BACK if rollback else PREVIOUS,
                                "since": at}
        for entry in reversed(new["history"]):
            if entry.get("sha256") == leaving.get("sha256") and not entry.get("left_at"):
                entry["left_at"] = at
                entry["rolled_back"] = rollback
                break
    arriving = new["pools"].get(target) or {}
    new["pools"][target] = {**arriving, "status": LIVE, "since": at,
                            "verified_at": event.get("verified_at") or at}
    new["live"] = target
    new["history"].append({**_release(arriving), "pool": target, "run_id": pending["run_id"],
                           "action": pending.get("action"), "live_at": at,
                           "verified_at": event.get("verified_at") or at, "left_at": None,
                           "rolled_back": False})
    new["history"] = new["history"][-HISTORY_MAX:]
    new["pending"] = None
    return new


def bump(state: dict[str, Any], serial: int) -> dict[str, Any]:
    """``state`` as the next write: ``serial`` + 1 of the newest copy."""
    return {**state, "serial": int(serial) + 1}


def transition(state: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """The next state to write to every LB: ``event`` applied, the serial one higher."""
    return bump(apply(state, event), int((state or {}).get("serial") or 0))


def once_live(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Releases that went live and were verified, newest first, one entry per sha256."""
    seen, found = set(), []
    for entry in reversed(state.get("history") or []):
        if entry.get("verified_at") and entry.get("sha256") not in seen:
            seen.add(entry.get("sha256"))
            found.append(entry)
    return found


def rollback_target(state: dict[str, Any]) -> dict[str, Any] | None:
    """The release a plain rollback goes to: the newest one that went live and was verified
    before the current one, the last time it was live not left by a rollback. None when there
    is none.

    A rollback that was interrupted mid-flip converges on the same target: its pending flip.
    """
    pending = state.get("pending")
    if pending and pending.get("action") == "rollback":
        return {"version": pending.get("version"), "sha256": pending.get("sha256"),
                "pool": pending.get("to"), "run_id": pending.get("run_id")}
    live = state.get("live")
    current = (state.get("pools") or {}).get(live or "") or {}
    for entry in reversed(state.get("history") or []):
        if entry.get("sha256") == current.get("sha256"):
            continue
        if entry.get("rolled_back") or not entry.get("verified_at"):
            continue  # traffic was rolled back away from it that time (or never verified)
        return {"version": entry.get("version"), "sha256": entry.get("sha256"),
                "pool": entry.get("pool"), "run_id": entry.get("run_id")}
    return None


# ---------------------------------------------------------------------------- the file

def read(path: str = STATE_PATH) -> dict[str, Any] | None:
    """The state file's content, None when absent; an unreadable file raises StateError."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise StateError(f"{path} cannot be read ({error}); run 'invoke reconcile'") from error
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise StateError(f"{path} is not a turnout fleet state (schema {SCHEMA})")
    return data


def write(state: dict[str, Any], path: str = STATE_PATH) -> None:
    """Write atomically: temp file, fsync, rename, fsync of the directory."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fleet-state.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, sort_keys=True, indent=1)
            handle.write("\n")
            handle.flush()
            os.fchmod(handle.fileno(), 0o640)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = ""
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def pool_release(state: dict[str, Any], pool: str) -> dict[str, Any] | None:
    return (state.get("pools") or {}).get(pool)


def idle(state: dict[str, Any]) -> str | None:
    return other_pool(state["live"]) if state.get("live") in POOLS else None
