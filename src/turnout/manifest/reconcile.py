"""A manifest rebuilt from the fleet (the LB's live pool, each host's release.json). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.contracts import POOLS
from turnout.manifest.schema import empty, validate


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
