"""The manifest's schema: its keys, the field validators and :func:`validate`. Pure.

docs/manifest.md is the reference for people; every rule it states is enforced here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from turnout.contracts import POOLS, SHA256_RE, format_timestamp
from turnout.errors import InputError

# 2: history entries may carry traffic_moved_at and check (a version 1 file reads as it is)
SCHEMA_VERSION = 2
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
    "traffic_moved_at",
    "check",
)
# how a rollback proved its target before the flip: the quick check from the load balancers,
# or the full path (release.json on every host, the full smoke test)
CHECKS = ("quick", "full")
EVENT_KEYS = (*HISTORY_KEYS, "hosts")
EVENT_HOST_KEYS = ("version", "sha256", "deployed_at", "smoke")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
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
    if not isinstance(value, str) or not SHA256_RE.match(value):
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
    moved = _timestamp(ctx, raw.get("traffic_moved_at"), _join(where, "traffic_moved_at"))
    if moved is not None:
        entry["traffic_moved_at"] = moved
    if raw.get("check") is not None:
        entry["check"] = _choice(ctx, raw["check"], _join(where, "check"), CHECKS)
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
