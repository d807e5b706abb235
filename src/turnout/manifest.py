"""The deploy manifest: what each pool runs, which pool is live, and the history of runs.

The manifest lives beside the inventory (``inventories/<env>/manifest.yml``) and is written
by the ``turnout_manifest`` action plugin at the end of every deploy, rollback, promote,
unlock and reconcile through :func:`record_event`. Everything here is pure except
:func:`load`, :func:`write_atomic` and :func:`record_event`. The on-disk form is plain YAML
dicts; docs/manifest.md is the user-facing reference for the format.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from turnout.errors import InputError, TurnoutError

SCHEMA_VERSION = 1
POOLS = ("blue", "green")
ACTIONS = ("deploy", "rollback", "promote", "unlock", "reconcile")
RESULTS = ("success", "failed", "noop", "flipped_back", "awaiting_approval")
PHASES = ("lock", "preflight", "stage", "smoke", "flip", "verify", "record")
SMOKE_RESULTS = ("passed", "failed", "skipped", "unreachable")
FILE_MODE = 0o644

TOP_KEYS = ("schema_version", "env", "app", "live_pool", "updated_at", "pools", "history")
POOL_KEYS = ("version", "sha256", "deployed_at", "deployed_by", "run_id", "hosts")
HOST_KEYS = ("version", "sha256", "deployed_at", "deployed_by", "run_id", "smoke", "staged")
SMOKE_KEYS = ("result", "latency_ms", "checks")
CHECK_KEYS = ("name", "ok", "detail")
ENDPOINT_KEYS = ("pool", "version", "sha256")
LB_ERROR_PHASES = ("before", "after", "delta")
HISTORY_REQUIRED = ("id", "action", "result", "env", "by", "started_at", "finished_at")
HISTORY_KEYS = (
    *HISTORY_REQUIRED,
    "duration_s",
    "from",
    "to",
    "phase",
    "message",
    "smoke",
    "lb_errors",
    "release_notes",
)
EVENT_KEYS = (*HISTORY_KEYS, "hosts")
EVENT_HOST_KEYS = ("version", "sha256", "deployed_at", "smoke")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
_RUN_ID_SUFFIX = re.compile(r"^[0-9a-z]{1,32}$")
_MESSAGE_MAX = 1000


class ManifestCorrupt(InputError):
    """The manifest file cannot be read or is not valid YAML."""


@dataclass(frozen=True)
class _Ctx:
    """Where a value comes from, for error messages; strict=False drops unknown keys."""

    subject: str
    fix: str
    strict: bool = True

    def fail(self, where: str, what: str) -> InputError:
        """Build the one-line error: subject, location, problem, fix."""
        location = f"{where} " if where else ""
        return InputError(f"{self.subject}: {location}{what}; {self.fix}")


def _got(value: Any) -> str:
    """A short repr of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _default(value: Any, default: Any) -> Any:
    """``default`` for a missing (None) value; a present but wrong value is kept to be reported."""
    return default if value is None else value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


# ---------------------------------------------------------------------------- helpers


def other_pool(pool: str) -> str:
    """The pool that is not ``pool``: blue <-> green."""
    if pool not in POOLS:
        raise InputError(f"unknown pool {pool!r}; use blue or green")
    return POOLS[1] if pool == POOLS[0] else POOLS[0]


def format_timestamp(moment: datetime) -> str:
    """``2026-11-22T14:00:00Z`` for a datetime (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(now: datetime, rand: str | None = None) -> str:
    """A sortable run id, ``20261122T140000Z-1a2b3c``; ``rand`` defaults to 6 random hex."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    suffix = secrets.token_hex(3) if rand is None else rand
    if not _RUN_ID_SUFFIX.match(suffix):
        raise InputError(f"run id suffix must be 1-32 lowercase letters/digits (got {suffix!r})")
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{suffix}"


def empty_pool() -> dict[str, Any]:
    """The state of a pool that was never deployed."""
    return {
        "version": None,
        "sha256": None,
        "deployed_at": None,
        "deployed_by": None,
        "run_id": None,
        "hosts": {},
    }


def empty(env: str, app: str = "app") -> dict[str, Any]:
    """A manifest for a fleet that was never deployed."""
    return {
        "schema_version": SCHEMA_VERSION,
        "env": env,
        "app": app,
        "live_pool": None,
        "updated_at": None,
        "pools": {pool: empty_pool() for pool in POOLS},
        "history": [],
    }


def reconciled(
    env: str,
    pools: Mapping[str, list[str]],
    live_pool: str | None,
    releases: Mapping[str, Mapping[str, Any] | None],
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """Pure: a manifest rebuilt from the fleet (LB live pool, each host's release.json).

    A pool's version and sha256 are set only when every host of it reports the same ones;
    hosts without a readable release are left out. ``history`` is kept as given.
    """
    data = empty(env)
    data["history"] = list(history)
    data["live_pool"] = live_pool if live_pool in POOLS else None
    for pool in POOLS:
        hosts: dict[str, Any] = {}
        for host in pools.get(pool, []):
            release = releases.get(host) or {}
            version, sha = release.get("version"), release.get("sha256")
            if not isinstance(version, str) or not isinstance(sha, str) or release.get("error"):
                continue
            hosts[host] = {
                "version": version,
                "sha256": sha,
                "deployed_at": release.get("activated_at"),
                "deployed_by": release.get("activated_by"),
                "run_id": release.get("run_id"),
                "smoke": None,
            }
        versions = {(h["version"], h["sha256"]) for h in hosts.values()}
        complete = len(hosts) == len(pools.get(pool, [])) and len(versions) == 1
        version, sha = next(iter(versions)) if complete else (None, None)
        newest = max((h["deployed_at"] or "" for h in hosts.values()), default="") or None
        data["pools"][pool] = {
            "version": version,
            "sha256": sha,
            "deployed_at": newest if complete else None,
            "deployed_by": None,
            "run_id": None,
            "hosts": hosts,
        }
    return validate(data)


def last_success(data: Mapping[str, Any], action: str | None = None) -> dict[str, Any] | None:
    """The newest history entry with result ``success`` (of ``action`` if given), or None."""
    if action is not None and action not in ACTIONS:
        raise InputError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    for entry in reversed(data.get("history") or []):
        if entry.get("result") == "success" and (action is None or entry.get("action") == action):
            return copy.deepcopy(entry)
    return None


def previous_live(data: Mapping[str, Any]) -> str | None:
    """The pool a rollback would flip to, or None if there is nothing to go back to.

    That is the idle pool, if it has a version and none of its hosts is ``staged`` (a staged
    host runs a release that never went live: a failed or unapproved deploy).
    """
    live = data.get("live_pool")
    if live not in POOLS:
        return None
    idle = other_pool(live)
    state = (data.get("pools") or {}).get(idle) or {}
    if not state.get("version"):
        return None
    if any((host or {}).get("staged") for host in (state.get("hosts") or {}).values()):
        return None
    return idle


# ------------------------------------------------------------------------- validation


def _mapping(ctx: _Ctx, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """Check ``value`` is a mapping; unknown keys fail (strict) or are dropped."""
    if not isinstance(value, Mapping):
        raise ctx.fail(where, f"must be a mapping (got {_got(value)})")
    if ctx.strict:
        for key in value:
            if key not in allowed:
                raise ctx.fail(
                    where, f"has unknown key {_got(key)} (allowed: {', '.join(allowed)})"
                )
    return {key: value[key] for key in allowed if key in value}


def _str(ctx: _Ctx, value: Any, where: str, *, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ctx.fail(where, f"must be a non-empty string (got {_got(value)})")
    return value


def _name(ctx: _Ctx, value: Any, where: str) -> str:
    """A host or environment name."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ctx.fail(
            where, f"must be a name of letters, digits, '.', '_', '-' (got {_got(value)})"
        )
    return value


def _version(ctx: _Ctx, value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ctx.fail(where, f"must be a string (got the number {value!r}); quote it: '{value}'")
    if not isinstance(value, str) or not value or any(ch.isspace() for ch in value):
        raise ctx.fail(where, f"must be a version string without spaces (got {_got(value)})")
    return value


def _sha256(ctx: _Ctx, value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and not ctx.strict:
        value = value.strip().lower()
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ctx.fail(where, f"must be 64 lowercase hex characters (got {_got(value)})")
    return value


def _pool(ctx: _Ctx, value: Any, where: str, *, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if value not in POOLS:
        choices = "blue, green or null" if nullable else "blue or green"
        raise ctx.fail(where, f"must be {choices} (got {_got(value)})")
    return value


def _timestamp(ctx: _Ctx, value: Any, where: str, *, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return value
    raise ctx.fail(where, f"must be an ISO 8601 time like 2026-11-22T14:00:00Z (got {_got(value)})")


def _number(ctx: _Ctx, value: Any, where: str) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.fail(where, f"must be a number (got {_got(value)})")
    return value


def _choice(ctx: _Ctx, value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ctx.fail(where, f"must be one of {', '.join(choices)} (got {_got(value)})")
    return value


def _message(ctx: _Ctx, value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not ctx.strict:
        value = " ".join(str(value).split())
        if len(value) > _MESSAGE_MAX:
            value = value[: _MESSAGE_MAX - 3] + "..."
        return value or None
    if not isinstance(value, str) or "\n" in value:
        raise ctx.fail(where, f"must be a one-line string (got {_got(value)})")
    return value


def _smoke(ctx: _Ctx, value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    raw = _mapping(ctx, value, where, SMOKE_KEYS)
    checks = _default(raw.get("checks"), [])
    if not isinstance(checks, list):
        raise ctx.fail(_join(where, "checks"), f"must be a list (got {_got(checks)})")
    clean_checks = []
    for index, check in enumerate(checks):
        check_where = f"{_join(where, 'checks')}[{index}]"
        raw_check = _mapping(ctx, check, check_where, CHECK_KEYS)
        ok = raw_check.get("ok")
        if not isinstance(ok, bool):
            raise ctx.fail(_join(check_where, "ok"), f"must be true or false (got {_got(ok)})")
        detail = raw_check.get("detail")
        if detail is not None and not isinstance(detail, str):
            if ctx.strict:
                raise ctx.fail(
                    _join(check_where, "detail"), f"must be a string (got {_got(detail)})"
                )
            detail = str(detail)
        clean_checks.append(
            {
                "name": _str(
                    ctx, raw_check.get("name"), _join(check_where, "name"), nullable=False
                ),
                "ok": ok,
                "detail": detail,
            }
        )
    return {
        "result": _choice(ctx, raw.get("result"), _join(where, "result"), SMOKE_RESULTS),
        "latency_ms": _number(ctx, raw.get("latency_ms"), _join(where, "latency_ms")),
        "checks": clean_checks,
    }


def _host_entry(ctx: _Ctx, value: Any, where: str) -> dict[str, Any]:
    raw = _mapping(ctx, value, where, HOST_KEYS)
    staged = raw.get("staged", False)
    if not isinstance(staged, bool):
        raise ctx.fail(_join(where, "staged"), f"must be true or false (got {_got(staged)})")
    entry = {
        "version": _version(ctx, raw.get("version"), _join(where, "version")),
        "sha256": _sha256(ctx, raw.get("sha256"), _join(where, "sha256")),
        "deployed_at": _timestamp(ctx, raw.get("deployed_at"), _join(where, "deployed_at")),
        "deployed_by": _str(ctx, raw.get("deployed_by"), _join(where, "deployed_by")),
        "run_id": _str(ctx, raw.get("run_id"), _join(where, "run_id")),
        "smoke": _smoke(ctx, raw.get("smoke"), _join(where, "smoke")),
    }
    if staged:
        entry["staged"] = True
    return entry


def _pool_state(ctx: _Ctx, value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return empty_pool()
    raw = _mapping(ctx, value, where, POOL_KEYS)
    hosts = _default(raw.get("hosts"), {})
    if not isinstance(hosts, Mapping):
        raise ctx.fail(
            _join(where, "hosts"), f"must be a mapping of host -> state (got {_got(hosts)})"
        )
    clean_hosts = {}
    for host in sorted(hosts, key=str):
        host_where = _join(_join(where, "hosts"), str(host))
        clean_hosts[_name(ctx, host, host_where)] = _host_entry(ctx, hosts[host], host_where)
    return {
        "version": _version(ctx, raw.get("version"), _join(where, "version")),
        "sha256": _sha256(ctx, raw.get("sha256"), _join(where, "sha256")),
        "deployed_at": _timestamp(ctx, raw.get("deployed_at"), _join(where, "deployed_at")),
        "deployed_by": _str(ctx, raw.get("deployed_by"), _join(where, "deployed_by")),
        "run_id": _str(ctx, raw.get("run_id"), _join(where, "run_id")),
        "hosts": clean_hosts,
    }


def _endpoint(ctx: _Ctx, value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {"pool": None, "version": None, "sha256": None}
    raw = _mapping(ctx, value, where, ENDPOINT_KEYS)
    return {
        "pool": _pool(ctx, raw.get("pool"), _join(where, "pool")),
        "version": _version(ctx, raw.get("version"), _join(where, "version")),
        "sha256": _sha256(ctx, raw.get("sha256"), _join(where, "sha256")),
    }


def _counters(ctx: _Ctx, value: Any, where: str) -> dict[str, dict[str, int | float]]:
    """backend -> {counter: number}."""
    if not isinstance(value, Mapping):
        raise ctx.fail(where, f"must be a mapping of backend -> counters (got {_got(value)})")
    clean: dict[str, dict[str, int | float]] = {}
    for backend, counters in value.items():
        backend_where = _join(where, str(backend))
        _name(ctx, backend, backend_where)
        if not isinstance(counters, Mapping):
            raise ctx.fail(
                backend_where, f"must be a mapping of counter -> number (got {_got(counters)})"
            )
        clean[backend] = {}
        for counter, number in counters.items():
            counter_where = _join(backend_where, str(counter))
            _name(ctx, counter, counter_where)
            if number is None:
                raise ctx.fail(counter_where, "must be a number (got None)")
            clean[backend][counter] = _number(ctx, number, counter_where)
    return clean


def _lb_errors(ctx: _Ctx, value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    raw = _mapping(ctx, value, where, LB_ERROR_PHASES)
    clean = {
        phase: _counters(ctx, raw[phase], _join(where, phase))
        for phase in LB_ERROR_PHASES
        if raw.get(phase) is not None
    }
    if not ctx.strict and "delta" not in clean and "before" in clean and "after" in clean:
        clean["delta"] = {
            backend: {
                counter: number - clean["before"].get(backend, {}).get(counter, 0)
                for counter, number in counters.items()
            }
            for backend, counters in clean["after"].items()
        }
    return clean


def _duration(started_at: str, finished_at: str) -> float | None:
    try:
        delta = datetime.fromisoformat(finished_at) - datetime.fromisoformat(started_at)
    except (TypeError, ValueError):
        return None
    return round(delta.total_seconds(), 1)


def _history_entry(ctx: _Ctx, value: Any, where: str) -> dict[str, Any]:
    raw = _mapping(ctx, value, where, HISTORY_KEYS)
    for key in HISTORY_REQUIRED:
        if raw.get(key) is None:
            raise ctx.fail(where, f"is missing required key {key!r}")
    smoke = _default(raw.get("smoke"), {})
    if not isinstance(smoke, Mapping):
        raise ctx.fail(
            _join(where, "smoke"), f"must be a mapping of host -> smoke (got {_got(smoke)})"
        )
    entry: dict[str, Any] = {
        "id": _str(ctx, raw["id"], _join(where, "id"), nullable=False),
        "action": _choice(ctx, raw["action"], _join(where, "action"), ACTIONS),
        "result": _choice(ctx, raw["result"], _join(where, "result"), RESULTS),
        "env": _name(ctx, raw["env"], _join(where, "env")),
        "by": _str(ctx, raw["by"], _join(where, "by"), nullable=False),
        "started_at": _timestamp(
            ctx, raw["started_at"], _join(where, "started_at"), nullable=False
        ),
        "finished_at": _timestamp(
            ctx, raw["finished_at"], _join(where, "finished_at"), nullable=False
        ),
        "duration_s": _number(ctx, raw.get("duration_s"), _join(where, "duration_s")),
        "from": _endpoint(ctx, raw.get("from"), _join(where, "from")),
        "to": _endpoint(ctx, raw.get("to"), _join(where, "to")),
        "phase": None,
        "message": _message(ctx, raw.get("message"), _join(where, "message")),
        "smoke": {
            _name(ctx, host, _join(_join(where, "smoke"), str(host))): _smoke(
                ctx, smoke[host], _join(_join(where, "smoke"), str(host))
            )
            for host in sorted(smoke, key=str)
        },
        "lb_errors": _lb_errors(ctx, raw.get("lb_errors"), _join(where, "lb_errors")),
    }
    if raw.get("phase") is not None:
        entry["phase"] = _choice(ctx, raw["phase"], _join(where, "phase"), PHASES)
    if entry["duration_s"] is None and not ctx.strict:
        entry["duration_s"] = _duration(entry["started_at"], entry["finished_at"])
    notes = raw.get("release_notes")
    if notes is not None:
        if not isinstance(notes, str):
            raise ctx.fail(_join(where, "release_notes"), f"must be a string (got {_got(notes)})")
        entry["release_notes"] = notes
    return entry


def _manifest_ctx(data: Any, path: str | os.PathLike[str] | None) -> _Ctx:
    env = data.get("env") if isinstance(data, Mapping) else None
    if not isinstance(env, str) or not _NAME.match(env):
        env = Path(path).parent.name if path is not None and Path(path).parent.name else "<env>"
    subject = f"manifest {os.fspath(path)}" if path is not None else "manifest"
    return _Ctx(subject, f"fix the file or rebuild it with 'invoke reconcile --env {env}'")


def validate(data: Any, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Check a manifest and return a normalized deep copy in canonical key order.

    Raises InputError with one line naming the problem (and ``path`` if given) and the fix.
    Missing pools are filled in as never deployed; YAML timestamps become strings.
    """
    ctx = _manifest_ctx(data, path)
    if not isinstance(data, Mapping):
        raise ctx.fail("", f"must be a YAML mapping (got {type(data).__name__})")
    schema = data.get("schema_version")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise ctx.fail("schema_version", f"must be a positive integer (got {_got(schema)})")
    if schema > SCHEMA_VERSION:
        raise InputError(
            f"{ctx.subject}: schema_version {schema} is newer than this turnout supports "
            f"({SCHEMA_VERSION}); upgrade turnout to read it"
        )
    raw = _mapping(ctx, data, "", TOP_KEYS)
    pools = _default(raw.get("pools"), {})
    if not isinstance(pools, Mapping):
        raise ctx.fail("pools", f"must be a mapping with blue and green (got {_got(pools)})")
    for pool in pools:
        if pool not in POOLS:
            raise ctx.fail("pools", f"has unknown pool {_got(pool)}; pools are blue and green")
    history = _default(raw.get("history"), [])
    if not isinstance(history, list):
        raise ctx.fail("history", f"must be a list (got {_got(history)})")
    app = raw.get("app", "app")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "env": _name(ctx, raw.get("env"), "env"),
        "app": _name(ctx, app, "app"),
        "live_pool": _pool(ctx, raw.get("live_pool"), "live_pool"),
        "updated_at": _timestamp(ctx, raw.get("updated_at"), "updated_at"),
        "pools": {pool: _pool_state(ctx, pools.get(pool), f"pools.{pool}") for pool in POOLS},
        "history": [
            _history_entry(ctx, entry, f"history[{index}]") for index, entry in enumerate(history)
        ],
    }
    both = set(manifest["pools"]["blue"]["hosts"]) & set(manifest["pools"]["green"]["hosts"])
    if both:
        raise ctx.fail("pools", f"list host {min(both)!r} under both blue and green")
    seen: set[str] = set()
    for index, entry in enumerate(manifest["history"]):
        if entry["id"] in seen:
            raise ctx.fail(f"history[{index}].id", f"repeats id {entry['id']!r}; ids are unique")
        seen.add(entry["id"])
    return manifest


# ----------------------------------------------------------------------------- events

_EVENT_CTX = _Ctx(
    "manifest event",
    "the recording task must pass id, action, result, env, by, started_at, finished_at "
    "(see docs/manifest.md)",
    strict=False,
)


def _clean_event(event: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Whitelist an event: the history entry, and host -> {version, sha256, deployed_at, smoke}.

    Keys outside the schema are dropped at every level, so a variable carrying a secret that
    rode along with the event never reaches the file.
    """
    ctx = _EVENT_CTX
    if not isinstance(event, Mapping):
        raise ctx.fail("", f"must be a mapping (got {type(event).__name__})")
    for key in HISTORY_REQUIRED:
        if event.get(key) is None:
            raise ctx.fail("", f"is missing required key {key!r}")
    hosts_raw = _default(event.get("hosts"), {})
    if not isinstance(hosts_raw, Mapping):
        raise ctx.fail("hosts", f"must be a mapping of host -> release (got {_got(hosts_raw)})")
    hosts: dict[str, dict[str, Any]] = {}
    for host in sorted(hosts_raw, key=str):
        where = f"hosts.{host}"
        raw = _mapping(ctx, _default(hosts_raw[host], {}), where, EVENT_HOST_KEYS)
        hosts[_name(ctx, host, where)] = {
            "version": _version(ctx, raw.get("version"), _join(where, "version")),
            "sha256": _sha256(ctx, raw.get("sha256"), _join(where, "sha256")),
            "deployed_at": _timestamp(ctx, raw.get("deployed_at"), _join(where, "deployed_at")),
            "smoke": _smoke(ctx, raw.get("smoke"), _join(where, "smoke")),
        }
    history_part = {key: event[key] for key in HISTORY_KEYS if key in event}
    if not history_part.get("smoke"):
        history_part["smoke"] = {h: s["smoke"] for h, s in hosts.items() if s["smoke"]}
    entry = _history_entry(ctx, history_part, "")
    target = entry["to"]
    success = entry["result"] == "success"
    if success and entry["action"] in ("deploy", "promote", "rollback") and target["pool"] is None:
        raise ctx.fail("to.pool", f"is required for a successful {entry['action']}")
    if entry["result"] == "success" and entry["action"] in ("deploy", "promote"):
        for key in ("version", "sha256"):
            if target[key] is None:
                raise ctx.fail(f"to.{key}", f"is required for a successful {entry['action']}")
    if hosts and target["pool"] is None and entry["result"] != "noop":
        raise ctx.fail("to.pool", "is required when the event carries hosts")
    return entry, hosts


def _host_state(entry: dict[str, Any], release: dict[str, Any], *, staged: bool) -> dict[str, Any]:
    """A manifest host entry for a host this run deployed (or staged)."""
    state = {
        "version": release["version"] or entry["to"]["version"],
        "sha256": release["sha256"] or entry["to"]["sha256"],
        "deployed_at": release["deployed_at"] or entry["finished_at"],
        "deployed_by": entry["by"],
        "run_id": entry["id"],
        "smoke": release["smoke"],
    }
    if staged:
        state["staged"] = True
    return state


def _set_pool(
    manifest: dict[str, Any],
    entry: dict[str, Any],
    hosts: dict[str, dict[str, Any]],
) -> None:
    """Record that ``to.pool`` now serves ``to.version`` on ``hosts`` (replacing its hosts)."""
    pool = entry["to"]["pool"]
    previous_hosts = manifest["pools"][pool]["hosts"]
    if hosts:
        pool_hosts = {h: _host_state(entry, r, staged=False) for h, r in hosts.items()}
    else:  # a promote: the hosts were staged by the run that awaited approval
        pool_hosts = {
            h: {k: v for k, v in s.items() if k != "staged"} for h, s in previous_hosts.items()
        }
    manifest["pools"][pool] = {
        "version": entry["to"]["version"],
        "sha256": entry["to"]["sha256"],
        "deployed_at": entry["finished_at"],
        "deployed_by": entry["by"],
        "run_id": entry["id"],
        "hosts": pool_hosts,
    }
    for host in pool_hosts:
        manifest["pools"][other_pool(pool)]["hosts"].pop(host, None)


def _stage_hosts(
    manifest: dict[str, Any],
    entry: dict[str, Any],
    hosts: dict[str, dict[str, Any]],
) -> None:
    """Record the hosts a failed or unapproved run staged; the pool's version stays."""
    pool = entry["to"]["pool"]
    for host, release in hosts.items():
        manifest["pools"][pool]["hosts"][host] = _host_state(entry, release, staged=True)
        manifest["pools"][other_pool(pool)]["hosts"].pop(host, None)


def apply_event(data: Mapping[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new manifest with ``event`` appended to history and the pool state updated.

    Pure: ``data`` and ``event`` are not modified. Recording the same event twice is a no-op;
    a different event reusing an id, or an event for another env, is an InputError.
    """
    manifest = validate(data)
    entry, hosts = _clean_event(event)
    if entry["env"] != manifest["env"]:
        raise InputError(
            f"manifest event: env {entry['env']!r} does not match the manifest's env "
            f"{manifest['env']!r}; record it in inventories/{entry['env']}/manifest.yml"
        )
    for existing in manifest["history"]:
        if existing["id"] == entry["id"]:
            if existing == entry:
                return manifest
            raise InputError(
                f"manifest event: history already has a different entry with id {entry['id']!r}; "
                "use a new run id (turnout.manifest.new_run_id)"
            )
    manifest["history"].append(entry)
    manifest["updated_at"] = entry["finished_at"]
    action, result, target = entry["action"], entry["result"], entry["to"]["pool"]
    if result == "success":
        reconciled = action == "reconcile" and entry["to"]["version"] is not None
        if action in ("deploy", "promote") or (reconciled and target is not None):
            _set_pool(manifest, entry, hosts)
        if action in ("deploy", "promote", "rollback", "reconcile"):
            manifest["live_pool"] = target
    elif result in ("failed", "flipped_back", "awaiting_approval") and hosts:
        _stage_hosts(manifest, entry, hosts)
    return validate(manifest)


# -------------------------------------------------------------------------------- I/O


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a manifest; a missing file is an empty manifest for its env.

    The env of a missing manifest is the name of the directory it would live in.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty(path.resolve().parent.name)
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestCorrupt(
            f"manifest {path}: cannot be read ({error}); check its permissions or restore it "
            "from version control"
        ) from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ManifestCorrupt(
            f"manifest {path}: is not valid YAML ({detail}); restore it from version control or "
            f"rebuild it with 'invoke reconcile --env {path.resolve().parent.name}'"
        ) from error
    if data is None:
        raise ManifestCorrupt(
            f"manifest {path}: is empty; restore it from version control or rebuild it with "
            f"'invoke reconcile --env {path.resolve().parent.name}'"
        )
    return validate(data, path)


_HEADER = (
    "# turnout manifest: written by turnout at the end of every deploy; see docs/manifest.md.\n"
    "# Edit by hand only to repair it; 'invoke reconcile' rebuilds it from the fleet.\n"
)


def dump(data: Mapping[str, Any]) -> str:
    """The YAML text of a validated manifest (stable: the same data gives the same bytes)."""
    body = yaml.safe_dump(
        dict(data), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )
    return _HEADER + body


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Validate and write the manifest so readers see the old file or the new one, never a part.

    Temp file in the same directory, fsync, os.replace, fsync of the directory; mode 0644.
    """
    path = Path(path)
    text = dump(validate(data, path))
    directory = path.parent
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), FILE_MODE)
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(directory)
    except OSError as error:
        raise TurnoutError(
            f"manifest {path}: cannot be written ({error}); it was left as it was"
        ) from error
    finally:
        if tmp_name is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive advisory lock on the manifest's directory for one read-modify-write."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        raise InputError(
            f"manifest directory {directory}: cannot be opened ({error}); check the --env and "
            "that inventories/<env>/ exists"
        ) from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_event(path: str | os.PathLike[str], event: Mapping[str, Any]) -> dict[str, Any]:
    """Load the manifest at ``path``, apply ``event`` and write it atomically; return it."""
    path = Path(path)
    with _dir_lock(path.parent):
        current = load(path)
        manifest = apply_event(current, event)
        if manifest != current or not path.exists():
            write_atomic(path, manifest)
    return manifest
