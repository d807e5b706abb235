"""The rules every part of turnout shares, written once: pools, names, syntaxes, paths, times.

Python imports them from here; the playbooks and roles reach them through the ``turnout``
filters and Jinja tests (``is turnout_version``, ``'admin_socket' | turnout_path``,
``pool | turnout_other_pool``); the modules shipped to the hosts get them as
``ansible.module_utils.turnout_contracts`` (a symlink to this file). So this file is stdlib
only and runs on the hosts' Python (3.11 on Debian 12).

docs/contracts.md lists the names for people; this is what the code obeys.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

# ------------------------------------------------------------------------------- pools

POOLS = ("blue", "green")
# The pool the very first release goes to (and the map points to when it is first created).
FIRST_POOL = "blue"
BACKEND_PREFIX = "be_"


def other_pool(pool: str) -> str:
    """The pool that is not ``pool``: blue <-> green (ValueError for anything else)."""
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; use blue or green")
    return POOLS[1] if pool == POOLS[0] else POOLS[0]


def is_pool(value: object) -> bool:
    return isinstance(value, str) and value in POOLS


def backend(pool: str) -> str:
    """The HAProxy backend of a pool: ``blue`` -> ``be_blue``."""
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; use blue or green")
    return BACKEND_PREFIX + pool


def pool_of_backend(name: object) -> str | None:
    """The pool a backend serves (``be_green`` -> ``green``), or None for anything else."""
    if isinstance(name, str) and name.startswith(BACKEND_PREFIX):
        pool = name[len(BACKEND_PREFIX):]
        if pool in POOLS:
            return pool
    return None


# ---------------------------------------------------------------------------- syntaxes

# A release version: letters, digits, '.', '_', '+', '-', max 64, no '..' (it names a
# directory on the hosts). \Z, not $: "1.0\n" is not a version.
VERSION_RE = re.compile(r"\A[0-9A-Za-z][0-9A-Za-z._+-]{0,63}\Z")
VERSION_RULE = "use letters, digits, '.', '_', '+', '-' (max 64 chars, no '..')"
# An artifact checksum: 64 lowercase hex digits.
SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")


def is_version(value: object) -> bool:
    return isinstance(value, str) and bool(VERSION_RE.match(value)) and ".." not in value


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(SHA256_RE.match(value))


# ------------------------------------------------------------------------------- paths

# On each load balancer. A team that keeps its own haproxy.cfg needs these three.
PATHS = {
    "admin_socket": "/run/haproxy/admin.sock",  # Runtime API, admin level, mode 600
    "pool_map": "/etc/haproxy/pool.map",  # "active be_<pool>" (+ canary entries at runtime)
    "release_map": "/etc/haproxy/release.map",  # "be_<pool> <version>" (X-Turnout-Release)
    "lock": "/var/lib/turnout/deploy.lock",  # the fleet-wide deploy lock (JSON)
    "fleet_state": "/var/lib/turnout/fleet-state.json",  # the release state (turnout.fleetstate)
}
# The inventory variable that overrides each path (on the lb hosts), where one exists.
PATH_OVERRIDES = {
    "admin_socket": "turnout_haproxy_socket",
    "pool_map": "turnout_pool_map",
    "release_map": "turnout_release_map",
}
MAP_ACTIVE_KEY = "active"
MAP_CANARY_BACKEND_KEY = "canary_backend"
MAP_CANARY_PCT_KEY = "canary_pct"


def path(name: str, host_vars: dict | None = None) -> str:
    """The path ``name`` (a key of :data:`PATHS`), honouring its override in ``host_vars``."""
    if name not in PATHS:
        raise ValueError(f"unknown turnout path {name!r}; use one of {', '.join(PATHS)}")
    override = PATH_OVERRIDES.get(name)
    value = (host_vars or {}).get(override) if override else None
    return str(value) if value else PATHS[name]


# ------------------------------------------------------------------------------- times

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
RUN_ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
RUN_ID_RE = re.compile(r"\A[0-9]{8}T[0-9]{6}Z-[0-9a-z]{1,32}\Z")
_RUN_ID_SUFFIX = re.compile(r"\A[0-9a-z]{1,32}\Z")


def format_timestamp(moment: datetime) -> str:
    """``2026-11-22T14:00:00Z`` for a datetime (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: object) -> datetime | None:
    """The UTC datetime of a :data:`TIMESTAMP_FORMAT` string, or None if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def new_run_id(now: datetime, rand: str | None = None) -> str:
    """A sortable run id, ``20261122T140000Z-1a2b3c``; ``rand`` defaults to 6 random hex."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    suffix = secrets.token_hex(3) if rand is None else rand
    if not _RUN_ID_SUFFIX.match(suffix):
        raise ValueError(f"run id suffix must be 1-32 lowercase letters/digits (got {suffix!r})")
    return f"{now.astimezone(UTC).strftime(RUN_ID_TIME_FORMAT)}-{suffix}"
