"""Questions asked of a manifest: a host's entry, a run's entry, the latest smoke results. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from turnout.contracts import POOLS


def host_entry(manifest: Mapping[str, Any], host: str) -> tuple[str | None, dict[str, Any]]:
    """(pool, entry) of ``host`` in the manifest's pools, or (None, {})."""
    for pool in POOLS:
        entry = ((manifest.get("pools") or {}).get(pool) or {}).get("hosts", {}).get(host)
        if entry is not None:
            return pool, dict(entry)
    return None, {}


def run_entry(manifest: Mapping[str, Any], run_id: str) -> dict[str, Any] | None:
    """The history entry of run ``run_id`` (the newest if repeated), or None."""
    return next((dict(h) for h in reversed(manifest.get("history") or [])
                 if h.get("id") == run_id), None)


@dataclass(frozen=True)
class SmokeRecord:
    """A host's latest smoke result and the run that produced it."""

    host: str
    pool: str | None
    result: Mapping[str, Any]
    run_id: str | None
    at: str | None


def latest_smoke(manifest: Mapping[str, Any]) -> dict[str, SmokeRecord]:
    """host -> its latest smoke result: the last history entry's ``smoke``, else the pools'."""
    latest: dict[str, SmokeRecord] = {}
    for pool in POOLS:
        hosts = ((manifest.get("pools") or {}).get(pool) or {}).get("hosts") or {}
        for host, entry in hosts.items():
            smoke = (entry or {}).get("smoke")
            if isinstance(smoke, Mapping):
                latest[host] = SmokeRecord(host, pool, smoke, entry.get("run_id"),
                                           entry.get("deployed_at"))
    history = manifest.get("history") or []
    if history:
        last = history[-1]
        for host, smoke in (last.get("smoke") or {}).items():
            if isinstance(smoke, Mapping):
                pool, _ = host_entry(manifest, host)
                pool = pool or (last.get("to") or {}).get("pool")
                latest[host] = SmokeRecord(host, pool, smoke, last.get("id"),
                                           last.get("finished_at"))
    return latest
