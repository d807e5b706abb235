"""HAProxy Runtime API output, parsed: which pool the map points to, server states, counters.

Pure: no I/O. The ``turnout_lb`` module reads the admin socket on each load balancer (this file
ships there as module_utils/turnout_haproxy, so it is stdlib only) and the ``turnout`` filters
hand Runtime API text to the same functions on the controller.

Names (turnout.contracts, docs/contracts.md): the pool map holds ``active be_<pool>``; the
backends are ``be_blue`` and ``be_green``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

try:  # on the load balancer: shipped as module_utils/turnout_haproxy (turnout_lb module)
    from ansible.module_utils.turnout_contracts import (
        BACKEND_PREFIX,
        MAP_ACTIVE_KEY,
        POOLS,
        pool_of_backend,
    )

    InputError = ValueError
except ImportError:  # on the controller
    from turnout.contracts import BACKEND_PREFIX, MAP_ACTIVE_KEY, POOLS, pool_of_backend
    from turnout.errors import InputError

MAP_KEY = MAP_ACTIVE_KEY
ERROR_COUNTERS = ("hrsp_5xx", "eresp", "econ")
# What a canary watches on the target backend. HAProxy's retries and redispatch hide a dead
# server from clients (and from econ); wretr, wredis and chkdown do not.
CANARY_COUNTERS = ERROR_COUNTERS + ("wretr", "wredis", "chkdown")
_INT_FIELDS = (
    "qcur", "scur", "smax", "stot", "econ", "eresp", "ereq", "wretr", "wredis",
    "chkfail", "chkdown", "hrsp_2xx", "hrsp_4xx", "hrsp_5xx", "weight", "act", "bck",
)
_TEXT_FIELDS = ("status", "check_status", "lastchg")


def backend_for(pool: str) -> str:
    """The backend name for a pool: ``blue`` -> ``be_blue``."""
    if pool not in POOLS:
        raise InputError(f"unknown pool {pool!r}; use blue or green")
    return BACKEND_PREFIX + pool


def pool_for(backend: str) -> str | None:
    """The pool a backend serves (``be_green`` -> ``green``), or None for anything else."""
    return pool_of_backend(backend)


def parse_show_map(text: str, strict: bool = True) -> dict[str, str]:
    """Entries of ``show map <file>``: lines ``<0xref> <key> <value>`` -> {key: value}.

    An error reply from HAProxy (for example ``Unknown map identifier``) raises InputError;
    with ``strict=False`` such lines are skipped (a retry loop judges the entries instead).
    """
    entries: dict[str, str] = {}
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) != 3 or not parts[0].startswith("0x"):
            if not strict:
                continue
            raise InputError(
                f"unexpected 'show map' output line {line[:80]!r}; check that HAProxy loaded "
                "the map file and that the admin socket answers"
            )
        entries[parts[1]] = parts[2].strip()
    return entries


def active_pool(text: str, strict: bool = True) -> str | None:
    """The pool the ``active`` map entry routes to (``blue``/``green``), or None if unset."""
    return pool_for(parse_show_map(text, strict).get(MAP_KEY, ""))


def render_map(pool: str) -> str:
    """The content of the map file that routes to ``pool``: ``active be_<pool>\\n``."""
    return f"{MAP_KEY} {backend_for(pool)}\n"


def render_release_map(entries: Mapping[str, str] | None, pool: str | None = None,
                       version: str | None = None) -> str:
    """The release map file: ``be_<pool> <version>`` lines, sorted; ``pool``/``version``
    (when given) set that backend's entry first."""
    merged = dict(entries or {})
    if pool is not None and version is not None:
        merged[backend_for(pool)] = str(version)
    return "".join(f"{backend} {release}\n" for backend, release in sorted(merged.items()))


def _number(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def parse_show_stat(csv_text: str) -> dict[str, Any]:
    """``show stat`` CSV -> {"backends": {be: fields}, "servers": {be: {server: fields}}}.

    Fields kept: status, check_status, scur, the error counters (hrsp_5xx, eresp, econ) and a
    few more; numbers are ints (empty cells are 0). Frontends are left out.
    """
    lines = [line for line in (csv_text or "").splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise InputError(
            "unexpected 'show stat' output (no '# pxname,...' header); check the admin socket"
        )
    header = lines[0][2:]
    reader = csv.DictReader(io.StringIO("\n".join([header, *lines[1:]])))
    backends: dict[str, dict[str, Any]] = {}
    servers: dict[str, dict[str, dict[str, Any]]] = {}
    for row in reader:
        proxy, name = row.get("pxname"), row.get("svname")
        if not proxy or not name or name == "FRONTEND":
            continue
        fields: dict[str, Any] = {key: _number(row.get(key, "")) for key in _INT_FIELDS}
        fields.update({key: (row.get(key) or "").strip() for key in _TEXT_FIELDS})
        if name == "BACKEND":
            backends[proxy] = fields
        else:
            servers.setdefault(proxy, {})[name] = fields
    return {"backends": backends, "servers": servers}


def error_counters(stats: Mapping[str, Any], backend: str) -> dict[str, int]:
    """{hrsp_5xx, eresp, econ} of ``backend`` from :func:`parse_show_stat` output (0 if absent)."""
    return _backend_counters(stats, backend, ERROR_COUNTERS)


def _backend_counters(stats: Mapping[str, Any], backend: str,
                      keys: tuple[str, ...]) -> dict[str, int]:
    fields = (stats.get("backends") or {}).get(backend) or {}
    return {key: int(fields.get(key, 0) or 0) for key in keys}


def all_error_counters(stats: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """error_counters for every pool backend present: {be_blue: {...}, be_green: {...}}."""
    backends = stats.get("backends") or {}
    return {
        backend: error_counters(stats, backend)
        for backend in sorted(backends)
        if pool_for(backend) is not None
    }


def server_states(stats: Mapping[str, Any], backend: str) -> dict[str, str]:
    """{server: status} for ``backend`` (``UP``, ``DOWN``, ``MAINT``, ``UP 1/2`` ...)."""
    servers = (stats.get("servers") or {}).get(backend) or {}
    return {name: str(fields.get("status", "")) for name, fields in sorted(servers.items())}


def servers_up(stats: Mapping[str, Any], backend: str, expected: list[str] | None = None) -> bool:
    """True if ``backend`` has servers and every one (or every ``expected`` one) is ``UP``.

    A server in a transition (``UP 1/2``, ``DOWN 1/2``) is not up yet.
    """
    states = server_states(stats, backend)
    names = list(expected) if expected is not None else list(states)
    if not names:
        return False
    return all(states.get(name) == "UP" for name in names)


def canary_counters(stats: Mapping[str, Any], backend: str) -> dict[str, int]:
    """The :data:`CANARY_COUNTERS` of ``backend`` (0 if absent): the baseline of a canary.

    ``chkdown`` is summed over the servers: the backend's own chkdown only counts the whole
    backend going down.
    """
    counters = _backend_counters(stats, backend, CANARY_COUNTERS)
    servers = ((stats.get("servers") or {}).get(backend) or {}).values()
    counters["chkdown"] = sum(int(server.get("chkdown", 0) or 0) for server in servers)
    return counters


def canary_check(stats: Mapping[str, Any], backend: str, baseline: Mapping[str, Any],
                 max_errors: int = 0) -> dict[str, Any]:
    """Judge a canary step: {"ok", "new_errors", "not_up", "reason"}.

    Bad when the counters grew by more than ``max_errors`` since ``baseline`` (summed over
    :data:`CANARY_COUNTERS`) or when any server of ``backend`` is not ``UP`` — a server the
    health check took down is a failed canary even if retries kept every client answered.
    """
    now = canary_counters(stats, backend)
    grown = {key: now[key] - int((baseline or {}).get(key, 0) or 0) for key in CANARY_COUNTERS}
    grown = {key: value for key, value in grown.items() if value > 0}
    new_errors = sum(grown.values())
    not_up = sorted(name for name, state in server_states(stats, backend).items()
                    if state != "UP")
    reasons = []
    if new_errors > int(max_errors):
        detail = ", ".join(f"{key} +{value}" for key, value in sorted(grown.items()))
        reasons.append(f"{backend} had {new_errors} new errors ({detail}; max {max_errors})")
    if not_up:
        reasons.append(f"{backend} server(s) not UP: {', '.join(not_up)}")
    return {"ok": not reasons, "new_errors": new_errors, "not_up": not_up,
            "reason": "; ".join(reasons)}


def split_map_stat(text: str) -> dict[str, str]:
    """Output of one ``show map <file>; show stat`` exchange -> {"map": ..., "stat": ...}.

    The stat part starts at the CSV header line (``# pxname,...``); the map part is everything
    before it. One socat run reads both (one module run instead of two).
    """
    lines = (text or "").splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.startswith("# pxname"):
            return {"map": "".join(lines[:index]), "stat": "".join(lines[index:])}
    return {"map": "".join(lines), "stat": ""}


def canary_bad(watched: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """The load balancers whose canary watch went bad: ["lb1: <reason>", ...]. An LB that
    returned no verdict (unreachable, failed) counts as bad."""
    bad = []
    for name in sorted(watched):
        result = watched[name] or {}
        verdict = result.get("verdict") or {}
        if not verdict:
            bad.append(f"{name}: no canary verdict ({result.get('msg') or 'unreachable'})")
        elif not verdict.get("ok"):
            bad.append(f"{name}: {verdict.get('reason')}")
    return bad


LB_FACTS = ("live_pool", "map_file_pool", "canary", "releases", "stats", "fleet_state",
            "fleet_state_error")


def lb_facts(read: Mapping[str, Any]) -> dict[str, Any]:
    """The turnout_lb ``read`` result without Ansible's own keys (what the plan reads)."""
    return {key: read.get(key) for key in LB_FACTS}
