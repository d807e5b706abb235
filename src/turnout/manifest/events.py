"""Applying one run's event to a manifest: history appended, pool state updated. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.contracts import other_pool
from turnout.errors import InputError
from turnout.manifest.schema import (
    EVENT_HOST_KEYS,
    HISTORY_KEYS,
    HISTORY_REQUIRED,
    _Ctx,
    _default,
    _got,
    _history_entry,
    _join,
    _mapping,
    _name,
    _sha256,
    _smoke,
    _timestamp,
    _version,
    validate,
)

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
    else:  # a promote or rollback: the pool's hosts already hold the release...
        pool_hosts = {
            h: {k: v for k, v in s.items() if k != "staged"} for h, s in previous_hosts.items()
        }
        # ...unless this run restaged them (rollback --to after the pool held another release,
        # found by `invoke chaos`: the hosts kept a failed deploy's version, status said drift).
        # Traffic moved only after every one passed its smoke test of exactly this release.
        smoke = entry.get("smoke") or {}
        for host, state in pool_hosts.items():
            if (state.get("version"), state.get("sha256")) != (entry["to"]["version"],
                                                               entry["to"]["sha256"]):
                pool_hosts[host] = _host_state(entry, {
                    "version": None, "sha256": None, "deployed_at": None,
                    "smoke": smoke.get(host) or state.get("smoke")}, staged=False)
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


def _restaged(manifest: dict[str, Any], entry: dict[str, Any]) -> bool:
    """A rollback whose target pool's record is not the release it went back to: the run
    restaged it (``rollback --to`` after the pool held another release)."""
    pool = manifest["pools"].get(entry["to"]["pool"]) or {}
    release = (entry["to"]["version"], entry["to"]["sha256"])
    return (pool.get("version"), pool.get("sha256")) != release or any(
        (h.get("version"), h.get("sha256")) != release for h in (pool.get("hosts") or {}).values())


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
        if action in ("deploy", "promote") or (reconciled and target is not None) or (
                action == "rollback" and _restaged(manifest, entry)):
            _set_pool(manifest, entry, hosts)
        if action in ("deploy", "promote", "rollback", "reconcile"):
            manifest["live_pool"] = target
    elif result in ("failed", "flipped_back", "awaiting_approval") and hosts:
        _stage_hosts(manifest, entry, hosts)
    return validate(manifest)
